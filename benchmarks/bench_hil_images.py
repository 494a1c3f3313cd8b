"""HIL speed on the firmware images: lockstep ticks/s of a whole d111 formation
(seed 0, 1 s ticks) with the firmware started by the twin (twin/hil/firmware.py),
printed from one run of this script:
  - CPython firmware (python -m bmsfw.link_main on a pty): the reference;
  - the 32-bit single-precision unix build, firmware frozen in, on a pty;
  - the QEMU Cortex-M3 board (mps2-an385), firmware frozen in, its UART the link.
ticks/s counts the tick loop (after the firmware's HELLO and boot answer); the
speed factor is simulated seconds over the session's whole wall time. Each run is
checked against the CPython one (same timeseries rows). The images come from
`bms-twin firmware build` (the cache; built first if it lacks them, not timed).
Goal (issue 9): the QEMU board forms the d111 cell at >= 100x real time.

Run: .venv/bin/python benchmarks/bench_hil_images.py
"""
from __future__ import annotations

import os
import sys
import time

from twin.firmware_config import config_for
from twin.hil import HilServer
from twin.hil.firmware import image_path, start_firmware
from twin.parameters import load_parameter_set

DEVICE = "bench-images"
KINDS = ("cpython", "unix-32", "qemu")
GOAL_QEMU_SPEED = 100.0


def hil(params, config, kind, image):
    t0 = time.perf_counter()
    with start_firmware(kind, config, DEVICE, image=image) as fw:
        result = HilServer(params, fw.stream, config=config, reply_timeout_s=30.0).run()
    return result, time.perf_counter() - t0


def main() -> int:
    params = load_parameter_set("d111")
    config = config_for(params)
    images = {kind: image_path(kind) for kind in KINDS}
    load = os.getloadavg()[0]
    print(f"d111 formation over HIL, lockstep, {config.tick_ms} ms ticks, seed 0; "
          f"load average {load:.1f} on {os.cpu_count()} cores at the start")
    print(f"  {'firmware':34s} {'ticks':>6s} {'ticks/s':>9s} {'speed factor':>13s} {'wall s':>8s}  final")
    runs = {}
    for kind in KINDS:
        result, wall = hil(params, config, kind, images[kind])
        runs[kind] = result
        s = result.summary
        same = result.rows == runs["cpython"].rows
        print(f"  {kind:34s} {s['hil']['ticks_sent']:6d} {s['hil']['ticks_per_s']:9.0f} "
              f"{s['speed_factor']:12.0f}x {wall:8.2f}  {s['final_state']}"
              f"{'' if same else '  (DIFFERS from the CPython firmware!)'}")
    cp = runs["cpython"].summary["hil"]["ticks_per_s"]
    for kind in KINDS[1:]:
        print(f"  CPython firmware / {kind}: {cp / runs[kind].summary['hil']['ticks_per_s']:.1f}x")
    qemu_speed = runs["qemu"].summary["speed_factor"]
    print(f"  goal: the QEMU board at >= {GOAL_QEMU_SPEED:.0f}x real time: {qemu_speed:.0f}x, "
          f"{'met' if qemu_speed >= GOAL_QEMU_SPEED else 'NOT met'} ({qemu_speed / GOAL_QEMU_SPEED:.2f} of the goal)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
