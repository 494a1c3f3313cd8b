"""How fast the C core is (printed, not asserted).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_core.py [--quick]

Reports, on the d111 parameter set:
  1. single-cell internal steps/s through the segment runner (cell_run_segment)
  2. fleet cell-steps/s: N = 10,000 cells mid-formation at 100 uA, dt 1 s,
     100 calls of cell_fleet_step on a numpy array of STATE_DTYPE
  3. C against the pure-Python oracle (tests/twin/oracle.py) on the same short protocol
  4. wall time of the D111 protocol run open-loop through Cell.run_segment
     (10 uA 10 min; 100 uA 2 h; 20 x [discharge 100 uA 15 min, charge 100 uA
     15 min]; discharge 100 uA to 2.0 V; discharge 20 uA to 2.0 V), best of 5
and compares them with the goals: fleet >= 20 M cell-steps/s, C >= 100 x the
oracle, D111 < 5 ms.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0:0] = [str(ROOT), str(ROOT / "tests" / "twin")]

import oracle  # noqa: E402  (tests/twin is not a package)
from twin import core  # noqa: E402
from twin._core import ffi, lib  # noqa: E402
from twin.cell import Cell  # noqa: E402
from twin.parameters import load_parameter_set  # noqa: E402

UA = 1e-6
GOAL_FLEET_CELL_STEPS_S = 20e6
GOAL_ORACLE_RATIO = 100.0
GOAL_D111_S = 5e-3


def cc(current_A, duration_s, stop_V=None):
    seg = {"mode": core.MODE_CURRENT, "current_A": current_A, "duration_s": duration_s}
    if stop_V is not None:
        seg.update(use_stop_voltage=1, stop_voltage_V=stop_V)
    return seg


D111_PROTOCOL = ([cc(10 * UA, 600.0), cc(100 * UA, 7200.0)]
                 + [cc(-100 * UA, 900.0), cc(100 * UA, 900.0)] * 20
                 + [cc(-100 * UA, 1e6, stop_V=2.0), cc(-20 * UA, 1e6, stop_V=2.0)])

# the C-vs-oracle protocol: formation, a few cycles, a discharge to 2 V, a rest
SHORT_PROTOCOL = ([cc(10 * UA, 600.0), cc(100 * UA, 1200.0)]
                  + [cc(-100 * UA, 300.0), cc(100 * UA, 300.0)] * 3
                  + [cc(-100 * UA, 1e5, stop_V=2.0), {"mode": core.MODE_REST, "duration_s": 300.0}])


def d111_values() -> dict:
    return dict(load_parameter_set("d111").values)


def run_c(values, protocol) -> tuple[float, int]:
    """(wall s, internal steps) of a protocol through Cell.run_segment, no sampling."""
    cell = Cell(values)
    steps = 0
    start = time.perf_counter()
    for segment in protocol:
        result, _ = cell.run_segment(segment)
        steps += result["n_steps"]
    return time.perf_counter() - start, steps


def run_oracle(values, protocol) -> tuple[float, int]:
    p = oracle.params(values)
    state = oracle.cell_init(p, 298.15)
    steps = 0
    start = time.perf_counter()
    for segment in protocol:
        rc, result, _ = oracle.cell_run_segment(p, state, segment)
        if rc:
            raise RuntimeError(f"oracle status {rc}")
        steps += result["n_steps"]
    return time.perf_counter() - start, steps


def best_of(n, fn, *args):
    runs = [fn(*args) for _ in range(n)]
    return min(runs, key=lambda r: r[0])


def bench_single(values, repeats):
    wall, steps = best_of(repeats, run_c, values, D111_PROTOCOL)
    return steps / wall, steps, wall


def bench_fleet(values, n_cells, n_calls, repeats):
    """Cell-steps/s of cell_fleet_step, cells mid-formation at 100 uA."""
    template = Cell(values)
    template.run_segment(cc(100 * UA, 1800.0))  # 30 min into formation
    one = np.frombuffer(bytes(ffi.buffer(template.state, ffi.sizeof("cell_state_t"))),
                        dtype=core.STATE_DTYPE)
    currents = np.full(n_cells, 100 * UA)
    status = np.zeros(n_cells, dtype=np.int32)
    best = float("inf")
    for _ in range(repeats):
        states = np.repeat(one, n_cells)
        c_states = ffi.from_buffer("cell_state_t[]", states)
        c_currents = ffi.from_buffer("double[]", currents)
        c_status = ffi.from_buffer("int32_t[]", status)
        start = time.perf_counter()
        for _ in range(n_calls):
            code = lib.cell_fleet_step(template.params, c_states, c_currents, n_cells, 1.0, c_status)
            if code:
                core.check(code, "cell_fleet_step")
        best = min(best, time.perf_counter() - start)
    # internal substeps per 1 s fleet step: the oracle counts them (same dt rule)
    p = oracle.params(values)
    state = {name: getattr(template.state, name) for name in oracle.STATE_FIELDS}
    derived = oracle.derive(p)
    substeps = sum(oracle.core_advance(p, derived, state, 100 * UA, 1.0)[1]
                   for _ in range(n_calls)) / n_calls
    return n_cells * n_calls / best, best, substeps


def run_c_raw(values, protocol) -> tuple[float, int]:
    """As run_c, but calling lib.cell_run_segment directly with the segment
    structs made beforehand: the C time without the binding's per-call work."""
    cell = Cell(values)
    segments = []
    for fields in protocol:
        seg = ffi.new("cell_segment_t *")
        for name, value in fields.items():
            setattr(seg, name, value)
        segments.append(seg)
    result = ffi.new("cell_segment_result_t *")
    steps = 0
    start = time.perf_counter()
    for seg in segments:
        core.check(lib.cell_run_segment(cell.params, cell.state, seg, ffi.NULL, 0, result),
                   "cell_run_segment")
        steps += result.n_steps
    return time.perf_counter() - start, steps


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else 5
    values = d111_values()
    print(f"bms-twin C core benchmark  ({platform.machine()}, Python {platform.python_version()}, "
          f"cffi API mode, d111)")

    rate, steps, wall = bench_single(values, repeats)
    print(f"1. single cell, segment runner: {rate / 1e6:8.2f} M steps/s "
          f"({steps} internal steps in {wall * 1e3:.2f} ms)")

    fleet_rate, fleet_wall, substeps = bench_fleet(values, 10_000, 100, repeats)
    print(f"2. fleet N=10,000, dt 1 s x 100: {fleet_rate / 1e6:8.2f} M cell-steps/s "
          f"({fleet_wall * 1e3:.1f} ms; {substeps:.2f} internal steps per cell-step)  "
          f"goal >= {GOAL_FLEET_CELL_STEPS_S / 1e6:.0f} M: "
          f"{'met' if fleet_rate >= GOAL_FLEET_CELL_STEPS_S else 'NOT met'}")

    c_wall, c_steps = best_of(repeats, run_c, values, SHORT_PROTOCOL)
    raw_wall, _ = best_of(repeats, run_c_raw, values, SHORT_PROTOCOL)
    o_wall, o_steps = best_of(max(1, repeats // 2), run_oracle, values, SHORT_PROTOCOL)
    oracle_rate = o_steps / o_wall
    ratio = (c_steps / c_wall) / oracle_rate
    raw_ratio = (c_steps / raw_wall) / oracle_rate
    print(f"3. C vs oracle, short protocol ({c_steps} steps, {len(SHORT_PROTOCOL)} segments): "
          f"oracle {oracle_rate / 1e3:.1f} k steps/s;\n"
          f"   through Cell.run_segment: C {c_steps / c_wall / 1e6:.2f} M steps/s, ratio {ratio:.0f}x  "
          f"goal >= {GOAL_ORACLE_RATIO:.0f}x: {'met' if ratio >= GOAL_ORACLE_RATIO else 'NOT met'}\n"
          f"   lib.cell_run_segment direct: C {c_steps / raw_wall / 1e6:.2f} M steps/s, "
          f"ratio {raw_ratio:.0f}x: {'met' if raw_ratio >= GOAL_ORACLE_RATIO else 'NOT met'}")
    if c_steps != o_steps:
        print(f"   (step counts differ: C {c_steps}, oracle {o_steps} -- see tests/twin/test_oracle.py)")

    d111_wall, d111_steps = best_of(repeats, run_c, values, D111_PROTOCOL)
    print(f"4. D111 protocol open-loop (Cell.run_segment, no sampling): {d111_wall * 1e3:.2f} ms "
          f"best of {repeats} ({d111_steps} internal steps, {len(D111_PROTOCOL)} segments)  "
          f"goal < {GOAL_D111_S * 1e3:.0f} ms: {'met' if d111_wall < GOAL_D111_S else 'NOT met'}")


if __name__ == "__main__":
    main()
