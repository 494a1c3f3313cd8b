"""How many study variants a second, on one core and on every core (printed, not asserted).

    .venv/bin/python benchmarks/bench_sweep.py [--quick]

1. open loop: the seed's D111 protocol (twin/protocols/d111.txt) on a d111 lot with
   ±10 % spreads (layer thickness and conductivity, area, plating loss), sampled
   every 10 s: variants/s in this process, and on a pool of one process per core.
   Goal: >= 1.8x on two cores.
2. closed loop: the firmware forms a d111 cell (200 µAh, ~2.6 h simulated) on a
   lot with the same spreads: runs/s on one core and on every core.
3. When PyBaMM is installed (pip install 'bms-twin[pybamm]'; optional, never
   needed by the tests): a protocol of the same shape (a C/20 start, a C/2 charge,
   20 C/2 cycles, a C/2 discharge) on its Thevenin equivalent circuit, a batch of
   variants of R0 as input parameters in one solve, in this process; the ratio of
   our open-loop variants/s on one core to its. Goal: >= 10x.

Pools are started and warmed (every worker has imported the twin) before the
clock starts: what is measured is the rate a long study runs at. One core and
every core alternate over a few rounds (medians), so both meet the same machine. The machine is
shared, so the load average and the parallelism a plain CPU loop gets at the
time (before and after) are printed beside the figures.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import wait
from pathlib import Path

from twin.fleet import available_cores
from twin.study import load_study
from twin.study.evaluate import Job, run_batch
from twin.study.executors import open_executor
from twin.study.plan import Plan
from twin.study.runner import _batch_size, _run
from twin.study.store import Store

GOAL_OPEN_LOOP_SCALING = 1.8
GOAL_PYBAMM_RATIO = 10.0
SPREADS = """
[vary.cell.layer_thickness_A]
unit = "angstrom"
uniform = { spread = 0.1 }
[vary.cell.layer_conductivity_S_cm]
unit = "S/cm"
uniform = { spread = 0.1 }
[vary.cell.area_cm2]
unit = "cm2"
uniform = { spread = 0.1 }
[vary.cell.plating_loss_fraction]
unit = "1"
uniform = { spread = 0.1 }
"""
OPEN_LOOP = """
[study]
name = "bench_open"
kind = "open_loop"
draws = %d
[protocol]
file = "d111"
sample_s = 10.0
""" + SPREADS
CLOSED_LOOP = """
[study]
name = "bench_closed"
kind = "closed_loop"
draws = %d
figures = ["final_state", "formation_time_s"]
""" + SPREADS


def _study(text, draws, tmp):
    path = Path(tmp) / ("study-%d.toml" % draws)
    path.write_text(text % draws)
    return load_study(path)


def _rate(plan, where, out: Path) -> float:
    store = Store(out, plan.study.kind)
    t0 = time.perf_counter()
    ran = _run(plan, list(range(plan.n)), store, where,
               _batch_size(plan.study.kind, plan.n, where.workers, None), math.inf)
    return ran / (time.perf_counter() - t0)


def variants_per_s(text, draws, cores, rounds, tmp) -> tuple:
    """(variants/s in this process, on `cores` processes): the median of `rounds`
    rounds that alternate the two, so both see the same machine. The pool is warm
    (every worker has imported the twin and run a variant) before the clock starts."""
    study = _study(text, draws, tmp)
    plan = Plan(study)
    ones, alls = [], []
    with open_executor(1) as here, open_executor(cores) as pool:
        warm = [(plan.keys[0], plan.inputs(0))]
        wait([pool.executor.submit(run_batch, Job(study), warm) for _ in range(pool.workers)])
        for k in range(rounds):
            ones.append(_rate(plan, here, Path(tmp) / ("one-%s-%d" % (study.name, k))))
            alls.append(_rate(plan, pool, Path(tmp) / ("all-%s-%d" % (study.name, k))))
    return statistics.median(ones), statistics.median(alls)


def _spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def machine_scaling(workers: int) -> float:
    """How much faster `workers` processes do a pure CPU loop than one, right now:
    on a shared machine, the parallelism the others leave us (2.0 on two idle cores)."""
    if workers == 1:
        return 1.0
    n = 3_000_000
    with open_executor(workers) as where:
        wait([where.executor.submit(_spin, 10) for _ in range(workers)])
        t0 = time.perf_counter()
        where.executor.submit(_spin, n).result()
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        wait([where.executor.submit(_spin, n) for _ in range(workers)])
        return workers * one / (time.perf_counter() - t0)


def pybamm_variants_per_s(n_inputs: int):
    """(variants/s, version) of a D111-shaped protocol on PyBaMM's Thevenin model,
    n_inputs values of R0 solved as one batch; None when PyBaMM is not installed."""
    try:
        import numpy as np
        import pybamm
    except ImportError:
        return None
    values = pybamm.ParameterValues("ECM_Example")
    half_c = values["Cell capacity [A.h]"] / 2
    # PyBaMM's sign: + discharges
    segments = [(-half_c / 10, 600.0), (-half_c, 6000.0)] + [(half_c, 900.0), (-half_c, 900.0)] * 20 \
        + [(half_c, 5400.0)]
    times, currents, t0 = [], [], 0.0
    for current, duration in segments:
        times += [t0, t0 + duration - 1e-3]
        currents += [current, current]
        t0 += duration
    times[-1] = t0
    values.update({"Current function [A]": pybamm.Interpolant(np.array(times), np.array(currents), pybamm.t),
                   "R0 [Ohm]": "[input]", "Initial SoC": 0.05})
    sim = pybamm.Simulation(pybamm.equivalent_circuit.Thevenin(), parameter_values=values,
                            solver=pybamm.IDAKLUSolver())
    inputs = [{"R0 [Ohm]": r} for r in np.linspace(0.9e-3, 1.1e-3, n_inputs)]
    t_interp = np.linspace(0.0, t0, 2 + int(t0 // 10))      # a sample every 10 s, as ours
    sim.solve(t_eval=[0.0, t0], t_interp=t_interp, inputs=inputs[:2])      # build and compile first
    start = time.perf_counter()
    sim.solve(t_eval=[0.0, t0], t_interp=t_interp, inputs=inputs)
    return n_inputs / (time.perf_counter() - start), pybamm.__version__


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller studies (a smoke run)")
    args = parser.parse_args(argv)
    # 2000 open-loop variants: a round of 500 lasts half a second on two cores, where the
    # last batch and the store's write weigh (1.6-1.8x measured); a long study's rate is steadier
    n_open, n_closed, n_pybamm, rounds = (100, 4, 10, 1) if args.quick else (2000, 16, 50, 3)
    cores = available_cores()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"bms-twin sweep benchmark ({platform.machine()}, Python {platform.python_version()}, {cores} cores, "
          f"load average {load:.2f})")
    print(f"0. the machine now: {cores} processes run a CPU loop {machine_scaling(cores):.2f}x as fast as one")
    with tempfile.TemporaryDirectory() as tmp:
        open_one, open_all = variants_per_s(OPEN_LOOP, n_open, cores, rounds, tmp)
        scaling = open_all / open_one
        print(f"1. open loop, D111 protocol, {n_open} variants, median of {rounds} rounds: {open_one:8.1f} variants/s on 1 core, "
              f"{open_all:8.1f} on {cores} ({scaling:.2f}x)  goal >= {GOAL_OPEN_LOOP_SCALING}x on two: "
              f"{'met' if scaling >= GOAL_OPEN_LOOP_SCALING else 'NOT met'}")
        closed_one, closed_all = variants_per_s(CLOSED_LOOP, n_closed, cores, rounds, tmp)
        print(f"2. closed loop, firmware formation, {n_closed} runs, median of {rounds}: {closed_one:6.2f} runs/s on 1 core "
              f"({1 / closed_one:.2f} s a run), {closed_all:6.2f} on {cores} ({closed_all / closed_one:.2f}x)")
    print(f"   the machine after: {machine_scaling(cores):.2f}x")
    pybamm = pybamm_variants_per_s(n_pybamm)
    if pybamm is None:
        print("3. PyBaMM not installed (pip install 'bms-twin[pybamm]'): comparison skipped")
        return
    rate, version = pybamm
    ratio = open_one / rate
    print(f"3. PyBaMM {version} Thevenin, same-shaped protocol, batch of {n_pybamm} inputs in one solve: "
          f"{rate:.2f} variants/s; bms-twin open loop on 1 core / PyBaMM = {ratio:.0f}x  "
          f"goal >= {GOAL_PYBAMM_RATIO:.0f}x: {'met' if ratio >= GOAL_PYBAMM_RATIO else 'NOT met'}")


if __name__ == "__main__":
    main()
