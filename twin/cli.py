"""The `bms-twin` command.

  bms-twin run --cell d111 --out runs/d111            firmware forms and cycles a shipped cell
  bms-twin simulate --cell d111 --protocol d111 --out runs/sim   open loop, no firmware
  bms-twin hil --port pty --cell d111                 the twin plays the cell for a firmware on a link
  bms-twin watch [--broker URL]                       live view of devices on an MQTT broker
  bms-twin params [NAME]                              parameter sets
  bms-twin sweep STUDY --out DIR                      a design study over many variants (docs/studies.md)
  bms-twin firmware build --target unix-32            MicroPython with the firmware frozen in (docs/board.md)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"
# summary "layer" as the one-line reports say it
LAYER_TEXT = {"intact": "layer intact", "cracked": "layer CRACKED", "none": "no protective layer"}


def load_protocol(name_or_path: str, option: str = "--protocol"):
    """A protocol file, or the name of a shipped one (d111, d042, d049) or of a scenario
    of the library (twin/scenarios); OptionError naming the option, the file and the
    line for anything that is not a protocol."""
    from twin.options import OptionError
    from twin.protocol import Protocol, ProtocolError
    from twin.textfile import InputFileError

    from twin.scenario import SCENARIO_DIR

    path = Path(name_or_path)
    if not path.exists():
        shipped = PROTOCOL_DIR / f"{name_or_path}.txt"
        if not shipped.is_file():
            shipped = SCENARIO_DIR / f"{name_or_path}.txt"
        if "/" in name_or_path or not shipped.is_file():
            names = ", ".join(sorted(p.stem for p in PROTOCOL_DIR.glob("*.txt")))
            scenario_names = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.txt")))
            raise OptionError(option, name_or_path, "no such file, nor a shipped protocol of that name "
                              f"(shipped: {names}; scenarios: {scenario_names})")
        path = shipped
    try:
        return Protocol.from_file(path)
    except InputFileError as error:
        raise OptionError(option, name_or_path, error.why) from None
    except ProtocolError as error:
        raise OptionError(option, name_or_path, error.brief) from None


def load_cell(name_or_path: str, option: str = "--cell"):
    """A parameter set the C core accepts too (its ranges are checked at once, not
    when the run starts)."""
    from twin import core
    from twin.options import OptionError
    from twin.parameters import load_parameter_set

    params = load_parameter_set(name_or_path)
    try:
        core.make_params(params.values)
    except core.CoreParameterError as error:
        raise OptionError(option, name_or_path, str(error)) from None
    return params


def _progress_bar(total: int, desc: str):
    """A tqdm bar on a terminal, nothing otherwise (CI logs stay clean)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not sys.stderr.isatty(), leave=False)


def check_simulate(args):
    """-> (params, cycler, protocol, out): every input of `simulate`, checked."""
    from twin import options
    from twin.cycler import Cycler, load_cycler
    from twin.simulate import check_rows

    options.positive("--sample-s", args.sample_s)
    options.ambient_c(args.ambient_c)
    options.seed(args.seed)
    out = options.out_dir(args.out)
    params = load_cell(args.cell)
    cycler = load_cycler(args.cycler, params) if args.cycler else Cycler.for_cell(params)
    protocol = load_protocol(args.protocol)
    try:
        protocol.check_open_loop()
    except ValueError as error:
        raise options.OptionError("--protocol", args.protocol, getattr(error, "brief", str(error))) from None
    cycler.check_ambient(args.ambient_c)
    cycler.check_protocol(protocol)
    check_rows(protocol, args.sample_s, field="--sample-s")
    return params, cycler, protocol, options.make_out_dir(out)


def cmd_simulate(args) -> int:
    from twin.display import charge_text, charge_unit
    from twin.simulate import simulate, write_outputs

    params, cycler, protocol, out = check_simulate(args)
    with _progress_bar(len(protocol), f"simulate {params.name}") as bar:
        result = simulate(params, protocol, ambient_c=args.ambient_c, seed=args.seed,
                          sample_interval_s=args.sample_s, progress=lambda step: bar.update(1),
                          cycler=cycler)
    written = write_outputs(result, out, title=f"{params.name}: {Path(args.protocol).name}")
    s = result.summary
    layer = LAYER_TEXT[s["layer"]]
    unit = charge_unit(max(s["plated_uAh_max"], s["charge_in_uAh"], s["charge_out_uAh"]))
    print(f"{params.name} on the {cycler.name} channel: plated max {charge_text(s['plated_uAh_max'], unit)}, "
          f"stripped {charge_text(s['stripped_uAh'], unit)} of lithium, "
          f"lost {charge_text(s['lithium_lost_uAh'], unit)}, {layer}, "
          f"{s['sim_seconds'] / 3600:.2f} h simulated in {s['wall_seconds'] * 1e3:.2f} ms")
    compliance = [st for st in result.steps if st["stop_reason"] == "compliance"]
    if compliance:
        shown = ", ".join(f"line {st['line']} " + ("at once: the cell cannot take its current within "
                                                  f"{cycler['compliance_min_V']:g}..{cycler['compliance_max_V']:g} V"
                                                  if st["elapsed_s"] == 0 else f"at {st['end_voltage_V']:.3f} V")
                          for st in compliance[:3])
        print(f"compliance: {len(compliance)} step(s) ended on it ({shown}{', ...' if len(compliance) > 3 else ''})")
    if s["copper_oxidised_uAh"] > 1e-3 * s["charge_out_uAh"]:    # more than the last whisker of a strip
        print(f"over-discharge: {charge_text(s['copper_oxidised_uAh'], unit)} came from the copper, not lithium")
    print("wrote " + ", ".join(str(p) for p in written))
    if not s["complete"]:
        print(f"bms-twin simulate: {s['why']}", file=sys.stderr)
        return 1
    return 0


def cmd_run(args) -> int:
    from twin import options
    from twin.run import run_closed_loop
    from twin.run_files import add_delivery, write_run_outputs

    from twin.run_options import check_run
    from twin.saved_bench import save_bench

    params, duty, out, bench = check_run(args)
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
        options.make_out_dir(out)     # once the sinks started: a refused run leaves no directory
        result = run_closed_loop(params, duty, ambient_c=args.ambient_c, seed=args.seed,
                                 power_cuts_s=args.power_cut_at, off_s=args.off_s,
                                 on_tick=_paced(progress, args.speed), sinks=sinks,
                                 device_id=args.device_id, bench=bench)
    finally:
        bar.close()
        for sink in sinks:
            sink.close()
    add_delivery(result.summary, [sink.delivery for sink in sinks if getattr(sink, "delivery", None)])
    write_run_outputs(result, out, title=f"{params.name}: firmware-formed, duty {Path(args.protocol or 'd111_duty').name}")
    save_bench(result.bench, out)
    s = result.summary
    f = s["formation"]
    print(f"{params.name}: final state {s['final_state']}, faults {s['faults'] or 'none'}, "
          f"{LAYER_TEXT[s['layer']]}")
    if f["plated_uAh"] is not None:
        print(f"formation: {f['plated_uAh']:.1f} µAh plated (firmware counted {f['counted_uAh']:.1f}) "
              f"in {f['duration_s'] / 3600:.2f} h at <= {f['max_current_density_uA_cm2']:.0f} µA/cm², "
              f"{f['record_writes']} record writes")
    if s["retained_fraction"] is not None:
        print(f"retained {100 * s['retained_fraction']:.2f} % of the charge put in; "
              f"{s['sim_seconds'] / 3600:.2f} h simulated in {s['wall_seconds']:.2f} s "
              f"({s['speed_factor']:.0f}x real time)")
    e = s["expectations"]
    if e["passed"] or e["failed"]:
        print(f"expectations: {e['passed']} met" + (f", line {e['failed']['line']} not" if e["failed"] else ""))
    print(f"wrote {out}/timeseries.csv, events.jsonl, summary.json, voltage.png, inventory.png, cycles.png, "
          "bench.json (bms-twin run --from resumes it)")
    if s.get("complete") is False:
        print(f"bms-twin run: {s['why']}", file=sys.stderr)
        return 1
    return 0


def check_hil(args) -> None:
    """The options of `hil` argparse lets through, checked before a port opens."""
    from twin import options

    options.ambient_c(args.ambient_c)
    options.seed(args.seed)
    for name, value in (("--tick-ms", args.tick_ms), ("--link-timeout-ms", args.link_timeout_ms)):
        if value is not None:
            options.at_least(name, value, 1, "a whole number of ms")
    options.at_least("--baud", args.baud, 1, "a baud rate")
    options.positive("--reply-timeout-s", args.reply_timeout_s)
    options.positive("--boot-timeout-s", args.boot_timeout_s)
    for name in ("retry_min_ms", "retry_max_ms", "write_timeout_s", "reconnect_s", "frame_gap_ms"):
        if getattr(args, name) is not None:
            options.positive("--" + name.replace("_", "-"), getattr(args, name), name.rsplit("_", 1)[1])
    if args.retry_min_ms > args.retry_max_ms:
        raise options.OptionError("--retry-max-ms", args.retry_max_ms, "at least --retry-min-ms expected")
    if args.duration_s is not None:
        options.positive("--duration-s", args.duration_s)
    load_cell(args.cell)
    args.protocol_steps = None
    if args.protocol is not None:
        from twin.scenario_hil import check_hil_protocol

        for name, bad in (("--duration-s", args.duration_s is not None), ("--realtime", args.mode != "lockstep")):
            if bad:
                raise options.OptionError(name, getattr(args, "duration_s") if name == "--duration-s" else None,
                                          "not with --protocol: the protocol says how long, in lockstep")
        args.protocol_steps = load_protocol(args.protocol)
        check_hil_protocol(args.protocol_steps, power_switch=args.firmware is not None)
    options.out_dir(args.out)


def cmd_hil(args) -> int:
    from twin import hil

    check_hil(args)
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
    from twin.cycler import Cycler
    from twin.parameters import available_parameter_sets
    from twin.parameters.report import json_report, text_report

    if not args.name:
        for name in available_parameter_sets():
            print(name)
        return 0
    params = load_cell(args.name, option="NAME")
    print((json_report if args.json else text_report)(params, Cycler.for_cell(params)))
    return 0


def cmd_sweep(args) -> int:
    from twin import options
    from twin.study import command

    options.finite("--flush-s", args.flush_s)
    options.out_dir(args.out)
    return command.run(args)


def cmd_firmware(args) -> int:
    from twin.images import cli as images_cli

    return images_cli.run(args)


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
    sim.add_argument("--cycler", default=None, metavar="FILE",
                     help="the channel's compliance, current range, hold limit and safety limits (TOML, "
                          "docs/cycler.md); what it leaves out, and the default: derived from the cell")
    sim.set_defaults(func=cmd_simulate)

    run = sub.add_parser("run", help="the firmware forms a shipped cell on the twin, then runs a duty cycle")
    run.add_argument("--cell", default=None, help="parameter set name or TOML path (default d111, "
                                                  "or the saved bench's with --from)")
    run.add_argument("--protocol", help="duty protocol (requests the firmware may limit) with bench steps and "
                                        "expectations (docs/testing.md); default: the seed's D111 cycling and strip")
    run.add_argument("--out", default="runs/latest", help="output directory (default runs/latest)")
    run.add_argument("--from", dest="from_dir", default=None, metavar="DIR",
                     help="resume the bench a previous run saved in DIR (bench.json: cell, board, firmware "
                          "record, clock); the firmware boots from its record")
    run.add_argument("--ambient-c", type=float, default=None, help="ambient temperature, °C (default 25)")
    run.add_argument("--seed", type=int, default=None, help="seeds the board's ADC noise (default 0)")
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

    par = sub.add_parser("params", help="list parameter sets, or show one: every number with its unit and source")
    par.add_argument("name", nargs="?", help="a shipped set's name or a TOML path")
    par.add_argument("--json", action="store_true", help="as JSON: value, unit, source of every entry")
    par.set_defaults(func=cmd_params)

    from twin.study import command as sweep_command

    sweep = sub.add_parser("sweep", help="run a design study: many variants on every core or a Dask cluster")
    sweep_command.add_arguments(sweep)
    sweep.set_defaults(func=cmd_sweep)

    from twin.images import cli as images_cli

    fw = sub.add_parser("firmware", help="firmware images: MicroPython with the firmware frozen in "
                                         "(bms-twin firmware build --help)")
    images_cli.add_arguments(fw)
    fw.set_defaults(func=cmd_firmware)
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
    from mqtt_bridge.errors import BridgeError
    from twin.core import TwinError

    try:
        return args.func(args)
    except (ValueError, OSError, BridgeError) as exc:   # our errors inherit ValueError: say it plainly;
        # a bridge that cannot start (its queue file, its broker) stops the run before it begins
        print(f"bms-twin {args.command}: {_one_line(exc)}", file=sys.stderr)
        return 2
    except TwinError as exc:               # the model failed while running (diverged, bad state)
        print(f"bms-twin {args.command}: the cell model failed: {_one_line(exc)}", file=sys.stderr)
        return 1


def _one_line(exc) -> str:
    """The convention's one line: a protocol error's brief, any other message joined."""
    return getattr(exc, "brief", None) or " ".join(str(exc).split())


if __name__ == "__main__":
    sys.exit(main())
