"""The scenario library's speed: each scenario played through the bench API
(twin.testing.open_bench) in-process and over HIL with the firmware in a CPython
process (lockstep on a pty; a power cut restarts the process). Prints, from one run of
this script, per scenario: simulated hours, ticks, wall seconds and ticks/s on each
backend, and the player's own cost in-process (ticks/s of the scenario against the
plain formation loop of twin.run.run_closed_loop); then what a power cut costs over
HIL on each kind the twin starts (the process stopped, started again, the link
connected), against a tick there.

Run: .venv/bin/python benchmarks/bench_scenarios.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0:0] = [str(ROOT), str(ROOT / "firmware")]

from twin.parameters import load_parameter_set  # noqa: E402
from twin.run import run_closed_loop  # noqa: E402
from twin.scenario import scenarios  # noqa: E402
from twin.testing import open_bench  # noqa: E402


def play(backend: str, path: Path) -> tuple:
    start = time.perf_counter()
    with open_bench(backend) as bench:
        bench.run(path)
        ticks = len(bench.frames)
        hours = bench.t_s / 3600
    return hours, ticks, time.perf_counter() - start


def main() -> None:
    start = time.perf_counter()
    plain = run_closed_loop(load_parameter_set("d111"), None)
    wall = time.perf_counter() - start
    print("reference: d111 formation, run_closed_loop: %d ticks in %.2f s, %.0f ticks/s"
          % (len(plain.rows), wall, len(plain.rows) / wall))
    print("%-28s %8s %8s | %9s %9s | %9s %9s" % ("scenario", "sim h", "ticks", "inproc s", "ticks/s",
                                                 "HIL cpy s", "ticks/s"))
    for name, path in scenarios().items():
        hours, ticks, wall = play("inprocess", path)
        row = "%-28s %8.2f %8d | %9.2f %9.0f |" % (name, hours, ticks, wall, ticks / wall)
        _, hil_ticks, hil_wall = play("cpython", path)
        print(row + " %9.2f %9.0f" % (hil_wall, hil_ticks / hil_wall))
    cut_costs()


def cut_costs() -> None:
    from twin.images import build_image

    images = {"unix-32": "unix-32", "qemu": "qemu-cortex-m3"}
    print("%-12s %12s %12s %8s" % ("power cut", "cut wall s", "tick wall s", "ratio"))
    for kind in ("cpython", "micropython", "unix-32", "qemu"):
        image = str(build_image(images[kind]).path) if kind in images else None
        with open_bench(kind, image=image) as bench:
            bench.wait(120)
            start = time.perf_counter()
            bench.wait(120)
            tick = (time.perf_counter() - start) / 120
            start = time.perf_counter()
            bench.run("Cut power for 1 minute")
            cut = time.perf_counter() - start
        print("%-12s %12.3f %12.5f %8.0f" % (kind, cut, tick, cut / tick))


if __name__ == "__main__":
    main()
