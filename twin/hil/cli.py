"""`bms-twin hil`: its options (twin/cli.py adds the subcommand) and its run."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable

from twin.hil import firmware
from twin.hil.errors import FirmwareFailed, HilError
from twin.hil.link_end import FRAME_GAP_S
from twin.hil.server import HilServer

QEMU_FRAME_GAP_MS = 50.0        # the emulated UART stalls mid-answer while QEMU waits for a core
from twin.hil.transport import open_port


def add_arguments(parser) -> None:
    """Options of `bms-twin hil` (twin/cli.py adds the subcommand)."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port",
                       help="serial device (e.g. /dev/ttyACM0), pty (prints the path for the firmware), "
                            "or tcp://host:port (a serial-to-TCP bridge)")
    where.add_argument("--firmware", metavar="KIND",
                       help="start the firmware and run against it: " + "; ".join(
                           "%s: %s" % kv for kv in firmware.KINDS.items()))
    parser.add_argument("--image", default=None,
                        help="with --firmware unix-32 or qemu: the executable or ELF to run (default: "
                             "bms-twin firmware build's, built if the cache lacks it)")
    parser.add_argument("--device-id", default=None,
                        help="with --firmware: the firmware's device id (default <cell>-<seed>, as bms-twin run)")
    parser.add_argument("--cell", default="d111", help="parameter set name or TOML path (default d111)")
    parser.add_argument("--ambient-c", type=float, default=25.0, help="ambient temperature, °C")
    parser.add_argument("--seed", type=int, default=0, help="seeds the board's ADC noise")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--lockstep", dest="mode", action="store_const", const="lockstep",
                      help="wait for each reply (deterministic; default)")
    pace.add_argument("--realtime", dest="mode", action="store_const", const="realtime",
                      help="one TICK per tick_ms of wall time; a late firmware sees time move on")
    parser.set_defaults(mode="lockstep")
    parser.add_argument("--tick-ms", type=int, default=None,
                        help="simulated ms per tick (default: the firmware config's tick_ms, 1000)")
    parser.add_argument("--duration-s", type=float, default=None,
                        help="simulated seconds to run (default: until formation ends, READY or FAULT)")
    parser.add_argument("--protocol", default=None,
                        help="lockstep: play a protocol of bench steps and expectations (docs/testing.md) "
                             "instead: a file or a scenario name; a failed expectation exits 1")
    parser.add_argument("--out", default="runs/hil", help="output directory (default runs/hil)")
    parser.add_argument("--baud", type=int, default=115200, help="serial baud rate (device ports)")
    parser.add_argument("--reply-timeout-s", type=float, default=5.0,
                        help="lockstep: no reply this long (wall) marks the firmware dead")
    parser.add_argument("--link-timeout-ms", type=int, default=None,
                        help="realtime: no reply this long (wall) puts the board safe (default 3 ticks)")
    parser.add_argument("--boot-timeout-s", type=float, default=60.0,
                        help="wall seconds to wait for the firmware's HELLO")
    parser.add_argument("--retry-min-ms", type=float, default=5.0,
                        help="lockstep: the shortest wait before a TICK without answer is sent again "
                             "(the timer adapts to the round trip and its jitter; a NAK or a damaged frame retries at once)")
    parser.add_argument("--retry-max-ms", type=float, default=500.0,
                        help="lockstep: the longest wait before a TICK without answer is sent again")
    parser.add_argument("--frame-gap-ms", type=float, default=None,
                        help="a frame from the firmware quiet this long is cut short: evidence for a retry "
                             "(default 10; 50 with --firmware qemu, whose UART pauses when the machine is busy)")
    parser.add_argument("--write-timeout-s", type=float, default=2.0,
                        help="a write the firmware does not take within this ends the session (a peer that does not read)")
    parser.add_argument("--reconnect-s", type=float, default=10.0,
                        help="tcp://: how long to keep reconnecting after the bridge closed the connection")


def _frame_gap_ms(args) -> float:
    if args.frame_gap_ms is not None:
        return args.frame_gap_ms
    return QEMU_FRAME_GAP_MS if getattr(args, "firmware", None) == "qemu" else FRAME_GAP_S * 1000.0


def _session(params, stream, args, sinks, config=None, supply=None):
    stream.write_timeout_s = args.write_timeout_s
    server = HilServer(params, stream, mode=args.mode, ambient_c=args.ambient_c, seed=args.seed,
                       tick_ms=args.tick_ms, config=config, sinks=sinks, reply_timeout_s=args.reply_timeout_s,
                       link_timeout_ms=args.link_timeout_ms, boot_timeout_s=args.boot_timeout_s,
                       retry_min_s=args.retry_min_ms / 1000.0, retry_s=args.retry_max_ms / 1000.0,
                       frame_gap_s=_frame_gap_ms(args) / 1000.0)
    protocol = getattr(args, "protocol_steps", None)
    if protocol is None:
        return server.run(duration_s=args.duration_s, end_session=True)
    return _play(server, protocol, supply)


def _play(server, protocol, supply=None):
    """The protocol played on the session (twin/scenario_hil.py), its report in the summary."""
    from twin.scenario import Player
    from twin.scenario_hil import FirmwareGone, HilLoop

    from twin.run import player_limits

    loop = HilLoop(server, supply)
    player = Player(loop, player_limits(server.config, server.bench.ambient_c))
    try:
        player.play(protocol)
        player.finish()         # as bms-twin run: a minute at rest after the duty
    except FirmwareGone:
        pass                    # the summary says so: hil.firmware_dead, link_lost
    result = loop.result(end_session=True)
    result.summary.update(player.report(), steps=player.steps)
    if player.failed is not None:
        result.summary["complete"] = False
        result.summary["why"] = "; ".join(w for w in (result.summary.get("why"), player.why) if w)
    return result


def _with_firmware(params, args, sinks):
    """The session against the firmware --firmware starts (twin/hil/firmware.py), with
    the config and device id `bms-twin run` gives the in-process controller."""
    from twin.bench import Bench
    from twin.run import controller_settings

    kind = args.firmware
    firmware.check_kind(kind, args.image)
    config, device_id = controller_settings(Bench.build(params, ambient_c=args.ambient_c, seed=args.seed),
                                            None, args.device_id)
    image = firmware.image_path(kind, args.image)       # may build it: before anything starts
    with firmware.FirmwareSupply(kind, config, device_id, image=image,
                                 first_frame_timeout_s=args.boot_timeout_s) as supply:
        result = _session(params, supply.on().stream, args, sinks, config, supply)
        fw = supply.firmware    # the one running at the end (a power cut starts another)
        if fw is None:
            return result       # it did not start again after a power cut: the summary says so
        hil = result.summary["hil"]
        if hil["end_acked"]:
            hil["firmware_exit_code"] = fw.wait_exit()
        if hil["firmware_dead"]:
            print(f"bms-twin hil: the {kind} firmware stopped answering; its output: {fw.last_words() or 'none'}",
                  file=sys.stderr)
    return result


def main(args, sinks: Iterable = ()) -> int:
    from twin.images import BuildFailed
    from twin.parameters import load_parameter_set
    from twin.run_files import add_delivery, judge_closed_loop, write_run_outputs

    for name in ("image", "device_id"):
        if getattr(args, name) is not None and args.firmware is None:
            raise HilError("--" + name.replace("_", "-"), getattr(args, name), "only with --firmware")
    params = load_parameter_set(args.cell)
    try:
        if args.firmware is not None:
            try:
                result = _with_firmware(params, args, sinks)
            except (FirmwareFailed, BuildFailed) as failed:
                print(f"bms-twin hil: {failed}", file=sys.stderr)
                return 1
        else:
            stream, slave = open_port(args.port, args.baud, args.write_timeout_s, args.reconnect_s)
            try:
                if slave is not None:
                    print(f"bms-twin hil: firmware port {slave}", flush=True)
                result = _session(params, stream, args, sinks)
            finally:
                stream.close()
    finally:
        for sink in sinks:      # closed before the files are written, so summary.json has the delivery
            sink.close()
    add_delivery(result.summary, [sink.delivery for sink in sinks if getattr(sink, "delivery", None)])
    out = Path(args.out)
    s = result.summary
    # asked to form the cell unless given a duration: the same judgement as `bms-twin run`
    # (a protocol with bench steps is a scenario, judged by its expectations, as there)
    if not s.get("bench_steps"):
        judge_closed_loop(s, formation_asked=args.duration_s is None)
    write_run_outputs(result, out, title=f"{params.name}: HIL ({args.mode})")
    print(f"{params.name} over HIL ({args.mode}): final state {s['final_state']}, faults {s['faults'] or 'none'}, "
          f"link {'LOST' if s['link_lost'] else 'ok'}; {s['hil']['ticks_sent']} ticks, "
          f"{s['sim_seconds'] / 3600:.2f} h simulated in {s['wall_seconds']:.1f} s")
    bad = {k: v for k, v in s["link"]["twin"].items() if v and k not in ("frames", "rx_bytes", "frame_bytes")}
    if bad:
        print(f"link faults seen by the twin: {bad}", file=sys.stderr)
    print(f"wrote {out}/timeseries.csv, events.jsonl, summary.json, voltage.png, inventory.png")
    if s.get("complete") is False:
        print(f"bms-twin hil: {s['why']}", file=sys.stderr)
        return 1
    return 0
