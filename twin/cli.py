"""The `bms-twin` command.

  bms-twin run --cell d111 --out runs/d111            firmware forms and cycles a shipped cell
  bms-twin simulate --cell d111 --protocol d111 --out runs/sim   open loop, no firmware
  bms-twin hil --port pty --cell d111                 the twin plays the cell for a firmware on a link
  bms-twin watch [--broker URL]                       live view of devices on an MQTT broker
  bms-twin params [NAME]                              parameter sets
  bms-twin sweep STUDY --out DIR                      a design study over many variants (docs/studies.md)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"


def load_protocol(name_or_path: str):
    """A protocol file, or the name of a shipped one (d111, d042, d049)."""
    from twin.protocol import Protocol

    path = Path(name_or_path)
    if not path.exists():
        shipped = PROTOCOL_DIR / f"{name_or_path}.txt"
        if not shipped.exists():
            names = ", ".join(sorted(p.stem for p in PROTOCOL_DIR.glob("*.txt")))
            raise SystemExit(f"bms-twin: no protocol file {name_or_path!r} and no shipped protocol "
                             f"of that name (shipped: {names})")
        path = shipped
    return Protocol.from_file(path)


def _progress_bar(total: int, desc: str):
    """A tqdm bar on a terminal, nothing otherwise (CI logs stay clean)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not sys.stderr.isatty(), leave=False)


def cmd_simulate(args) -> int:
    from twin.parameters import load_parameter_set
    from twin.simulate import simulate, write_outputs

    params = load_parameter_set(args.cell)
    protocol = load_protocol(args.protocol)
    with _progress_bar(len(protocol.steps()), f"simulate {params.name}") as bar:
        result = simulate(params, protocol, ambient_c=args.ambient_c, seed=args.seed,
                          sample_interval_s=args.sample_s, progress=lambda step: bar.update(1))
    out = Path(args.out)
    write_outputs(result, out, title=f"{params.name}: {Path(args.protocol).name}")
    s = result.summary
    print(f"{params.name}: plated max {s['plated_uAh_max']:.1f} µAh, stripped {s['stripped_uAh']:.1f} µAh, "
          f"lost {s['lithium_lost_uAh']:.2f} µAh, layer {'CRACKED' if s['layer_cracked'] else 'intact'}, "
          f"{s['sim_seconds'] / 3600:.2f} h simulated in {s['wall_seconds'] * 1e3:.2f} ms")
    print(f"wrote {out / 'timeseries.csv'}, {out / 'summary.json'}, {out / 'voltage.png'}")
    return 0


def cmd_run(args) -> int:
    from twin.parameters import load_parameter_set
    from twin.run import DUTY_D111, run_closed_loop
    from twin.run_files import add_delivery, write_run_outputs

    params = load_parameter_set(args.cell)
    duty = load_protocol(args.protocol) if args.protocol else load_protocol(str(DUTY_D111))
    sinks = mqtt_sinks(args)
    bar = _progress_bar(0, f"run {params.name}")
    bar.unit = "h"
    last = [0.0]

    def progress(bench):
        hours = bench.t_s / 3600.0
        if hours - last[0] >= 0.1:
            bar.update(hours - last[0])
            last[0] = hours
            bar.set_postfix_str(bench.controller.state if bench.controller else "OFF")

    try:
        result = run_closed_loop(params, duty, ambient_c=args.ambient_c, seed=args.seed,
                                 power_cuts_s=args.power_cut_at, off_s=args.off_s,
                                 on_tick=_paced(progress, args.speed), sinks=sinks,
                                 device_id=args.device_id)
    finally:
        bar.close()
        for sink in sinks:
            sink.close()
    add_delivery(result.summary, [sink.delivery for sink in sinks if getattr(sink, "delivery", None)])
    out = Path(args.out)
    write_run_outputs(result, out, title=f"{params.name}: firmware-formed, duty {Path(args.protocol or 'd111_duty').name}")
    s = result.summary
    f = s["formation"]
    print(f"{params.name}: final state {s['final_state']}, faults {s['faults'] or 'none'}, "
          f"layer {'CRACKED' if s['layer_cracked'] else 'intact'}")
    if f["plated_uAh"] is not None:
        print(f"formation: {f['plated_uAh']:.1f} µAh plated (firmware counted {f['counted_uAh']:.1f}) "
              f"in {f['duration_s'] / 3600:.2f} h at <= {f['max_current_density_uA_cm2']:.0f} µA/cm², "
              f"{f['record_writes']} record writes")
    if s["retained_fraction"] is not None:
        print(f"retained {100 * s['retained_fraction']:.2f} % of the charge put in; "
              f"{s['sim_seconds'] / 3600:.2f} h simulated in {s['wall_seconds']:.2f} s "
              f"({s['speed_factor']:.0f}x real time)")
    print(f"wrote {out}/timeseries.csv, events.jsonl, summary.json, voltage.png, inventory.png")
    if s.get("complete") is False:
        print(f"bms-twin run: {s['why']}", file=sys.stderr)
        return 1
    return 0


def cmd_hil(args) -> int:
    from twin import hil

    sinks = mqtt_sinks(args)
    try:
        return hil.main(args, sinks=sinks)
    finally:
        for sink in sinks:
            sink.close()


def cmd_watch(args) -> int:
    from mqtt_bridge.watch import main as watch_main

    return watch_main(args.watch_args)


def cmd_params(args) -> int:
    from twin.parameters import available_parameter_sets, load_parameter_set

    if not args.name:
        for name in available_parameter_sets():
            print(name)
        return 0
    params = load_parameter_set(args.name)
    print(json.dumps({"name": params.name, "values": params.values, "design": params.design},
                     indent=2, default=str))
    return 0


def cmd_sweep(args) -> int:
    from twin.study import command

    return command.run(args)


def build_parser() -> argparse.ArgumentParser:
    from mqtt_bridge.cli_options import add_broker_arguments

    parser = argparse.ArgumentParser(prog="bms-twin", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="run a protocol open-loop on the twin (no firmware)")
    sim.add_argument("--cell", default="d111", help="parameter set name or TOML path (default d111)")
    sim.add_argument("--protocol", required=True, help="protocol file, or a shipped name: d111, d042, d049")
    sim.add_argument("--out", required=True, help="output directory")
    sim.add_argument("--ambient-c", type=float, default=25.0, help="ambient temperature, °C")
    sim.add_argument("--seed", type=int, default=0, help="recorded; the open-loop model is deterministic")
    sim.add_argument("--sample-s", type=float, default=10.0, help="sample interval of timeseries.csv, s")
    sim.set_defaults(func=cmd_simulate)

    run = sub.add_parser("run", help="the firmware forms a shipped cell on the twin, then runs a duty cycle")
    run.add_argument("--cell", default="d111", help="parameter set name or TOML path (default d111)")
    run.add_argument("--protocol", help="duty protocol (requests the firmware may limit); "
                                        "default: the seed's D111 cycling and strip")
    run.add_argument("--out", default="runs/latest", help="output directory (default runs/latest)")
    run.add_argument("--ambient-c", type=float, default=25.0, help="ambient temperature, °C")
    run.add_argument("--seed", type=int, default=0, help="seeds the board's ADC noise")
    run.add_argument("--power-cut-at", type=float, action="append", default=[], metavar="SECONDS",
                     help="cut board power at this simulated time (repeatable); the firmware "
                          "restarts from its persistent record")
    run.add_argument("--off-s", type=float, default=60.0, help="how long each power cut lasts, s")
    run.add_argument("--device-id", default=None, help="device id in telemetry and MQTT topics "
                                                       "(default: <cell>-<seed>, e.g. d111-0000)")
    run.add_argument("--speed", type=float, default=None, metavar="FACTOR",
                     help="run at most FACTOR x real time (e.g. 600: ten simulated minutes a second, "
                          "to watch on a dashboard); default: as fast as the CPU allows")
    add_broker_arguments(run)
    # default telemetry period: see MqttSink (1 s when paced, 60 s flat out)
    run.set_defaults(func=cmd_run, telemetry_period_ms=None)

    from twin import hil

    hil_parser = sub.add_parser("hil", help="hardware-in-the-loop: the twin plays the cell for a firmware "
                                            "on a serial port, pty or tcp://")
    hil.add_arguments(hil_parser)
    add_broker_arguments(hil_parser)
    hil_parser.set_defaults(func=cmd_hil, telemetry_period_ms=None)

    # watch has its own parser (mqtt_bridge.watch); main() hands it every argument after "watch"
    watch = sub.add_parser("watch", help="live terminal view of devices on an MQTT broker "
                                         "(bms-twin watch --help)", add_help=False)
    watch.set_defaults(func=cmd_watch)

    par = sub.add_parser("params", help="list parameter sets, or show one")
    par.add_argument("name", nargs="?")
    par.set_defaults(func=cmd_params)

    from twin.study import command as sweep_command

    sweep = sub.add_parser("sweep", help="run a design study: many variants on every core or a Dask cluster")
    sweep_command.add_arguments(sweep)
    sweep.set_defaults(func=cmd_sweep)
    return parser


def mqtt_sinks(args) -> list:
    """The MQTT sink of a run or HIL session (mqtt_bridge.sink), unless --no-mqtt."""
    from mqtt_bridge.sink import mqtt_sinks as sinks_of

    return sinks_of(args)


def _paced(on_tick, speed):
    """Wrap an on_tick hook so simulated time runs at most `speed` x wall time."""
    if not speed:
        return on_tick
    import time

    start = time.monotonic()

    def hook(bench):
        if on_tick:
            on_tick(bench)
        ahead = bench.t_s / speed - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)

    return hook


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    # argparse cannot pass options through to a sub-parser (a REMAINDER positional
    # refuses a leading --option), so watch's arguments are what parsing leaves over;
    # every other command refuses leftovers, as parse_args would.
    args, leftover = parser.parse_known_args(argv)
    if leftover and args.command != "watch":
        parser.error("unrecognized arguments: %s" % " ".join(leftover))
    args.watch_args = leftover
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:   # our errors inherit ValueError: say it plainly
        print(f"bms-twin {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
