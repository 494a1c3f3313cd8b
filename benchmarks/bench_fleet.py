"""The fleet on one core and on every core (printed, not asserted).

    .venv/bin/python benchmarks/bench_fleet.py [--quick]

Cells of d111 mid-formation at 100 uA, dt 1 s, stepped by Fleet.step: one design
for all cells and a lot with per-cell parameters (±10 % area and layer
thickness) derived once, each on 1 thread and on every core (Fleet(threads=...):
one C call per thread, cffi releases the GIL, the threads share the cells in
chunks). For comparison, the lot whose parameters were handed out for editing,
so checked and derived on every step (cell_fleet_step_each, the only per-cell
path before cell_derive). The machine is shared and noisy, so each figure is the
best, the median and the worst of several repeats, with the load average and
the parallelism a plain CPU loop gets (bench_sweep's machine_scaling) before and
after. Goal: >= 40 M cell-steps/s on two cores.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from bench_sweep import machine_scaling
from twin.fleet import Fleet, available_cores
from twin.parameters import load_parameter_set

GOAL_CELL_STEPS_S = 40e6
UA = 1e-6


def fleet_of(params, n_cells, threads, per_cell, checked=False):
    spread = None
    if per_cell:
        rng = np.random.default_rng(1)
        spread = {"area_cm2": params.values["area_cm2"] * rng.uniform(0.9, 1.1, n_cells),
                  "layer_thickness_A": params.values["layer_thickness_A"] * rng.uniform(0.9, 1.1, n_cells)}
    fleet = Fleet(params, n_cells, threads=threads, per_cell=spread)
    if checked:
        fleet.cell_params          # handed out: from now on checked on every step
    for _ in range(30):
        fleet.step(100 * UA, 60.0)          # 30 min into formation, the common path
    return fleet


def rates(fleet, n_calls, repeats):
    """Cell-steps per wall second and per CPU second (all threads) of each repeat
    of n_calls 1 s steps. On a shared machine the wall rate is what others leave
    us; the CPU rate is what the code does with a core it has."""
    wall, cpu = [], []
    start_states = fleet.states.copy()
    for _ in range(repeats):
        fleet.states[:] = start_states
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n_calls):
            fleet.step(100 * UA, 1.0)
        wall.append(len(fleet) * n_calls / (time.perf_counter() - t0))
        cpu.append(len(fleet) * n_calls / (time.process_time() - c0))
    return wall, cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=None, help="repeats of each figure (default 9)")
    args = parser.parse_args(argv)
    repeats, n_calls = (3, 20) if args.quick else (9, 50)
    repeats = args.repeats or repeats
    cores = available_cores()
    params = load_parameter_set("d111")
    print(f"bms-twin fleet benchmark ({platform.machine()}, Python {platform.python_version()}, "
          f"{cores} cores, load average {_load():.2f}; N = {args.cells:,} cells, {n_calls} steps of 1 s, "
          f"{repeats} repeats)")
    print(f"  the machine now: {cores} processes run a CPU loop {machine_scaling(cores):.2f}x as fast as one")
    cases = {"one design": (False, False), "per-cell, derived once": (True, False),
             "per-cell, checked each step": (True, True)}
    results = {}
    for label, (per_cell, checked) in cases.items():
        for threads in (1, cores):
            runs, cpu = rates(fleet_of(params, args.cells, threads, per_cell, checked), n_calls, repeats)
            results[label, threads] = runs
            print(f"  {label:27s}, {threads} thread{'s' if threads > 1 else ' '}: best {max(runs) / 1e6:6.2f} M, "
                  f"median {statistics.median(runs) / 1e6:6.2f} M, worst {min(runs) / 1e6:6.2f} M cell-steps/s; "
                  f"per CPU second: median {statistics.median(cpu) / 1e6:6.2f} M")
    for label in cases:
        one, many = results[label, 1], results[label, cores]
        print(f"  {label}: {cores} threads / 1 thread = {statistics.median(many) / statistics.median(one):.2f}x "
              f"(medians), {max(many) / max(one):.2f}x (bests)")
    derived, checked = results["per-cell, derived once", cores], results["per-cell, checked each step", cores]
    print(f"  per-cell derived once / checked each step, {cores} threads: "
          f"{statistics.median(derived) / statistics.median(checked):.2f}x (medians)")
    runs = results["one design", cores]
    best, median = max(runs), statistics.median(runs)
    print(f"  goal >= {GOAL_CELL_STEPS_S / 1e6:.0f} M cell-steps/s on two cores, one design on {cores} cores: "
          f"best {best / 1e6:.1f} M = {best / GOAL_CELL_STEPS_S:.2f}x the goal "
          f"({'met' if best >= GOAL_CELL_STEPS_S else 'NOT met'}), median {median / 1e6:.1f} M = "
          f"{median / GOAL_CELL_STEPS_S:.2f}x, worst {min(runs) / 1e6:.1f} M = {min(runs) / GOAL_CELL_STEPS_S:.2f}x "
          f"(load average now {_load():.2f}; a CPU loop on {cores} processes now {machine_scaling(cores):.2f}x one)")


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


if __name__ == "__main__":
    main()
