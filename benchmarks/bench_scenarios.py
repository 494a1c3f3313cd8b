"""The scenario library's speed: each scenario played through the bench API
(twin.testing.open_bench) in-process and, where the link carries its steps, over HIL
with the firmware in a CPython process (lockstep on a pty). Prints, from one run of
this script, per scenario: simulated hours, ticks, wall seconds and ticks/s on each
backend, and the player's own cost in-process (ticks/s of the scenario against the
plain formation loop of twin.run.run_closed_loop).

Run: .venv/bin/python benchmarks/bench_scenarios.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0:0] = [str(ROOT), str(ROOT / "firmware")]

from twin.parameters import load_parameter_set  # noqa: E402
from twin.protocol import Protocol  # noqa: E402
from twin.run import run_closed_loop  # noqa: E402
from twin.scenario import StepRefused, scenarios  # noqa: E402
from twin.scenario_hil import check_hil_protocol  # noqa: E402
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
        try:
            check_hil_protocol(Protocol.from_file(path))
        except StepRefused:
            print(row + " %9s %9s" % ("-", "(no link)"))
            continue
        _, hil_ticks, hil_wall = play("cpython", path)
        print(row + " %9.2f %9.0f" % (hil_wall, hil_ticks / hil_wall))


if __name__ == "__main__":
    main()
