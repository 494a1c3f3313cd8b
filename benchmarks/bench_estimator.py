"""The firmware's estimator against the twin's truth, measured in one run (issue 10).

For each ambient temperature (0, 25, 45 °C): `--lives` cells of `--cycles` D049-style
cycles (15 min / 15 min at 100 µA/cm², a full strip and recharge every 100 cycles) on
d111 with ±20 % spreads of loss rate, layer thickness, catholyte capacity and ADC
noise; then `--cracks` cells cracked at a random instant of cycling, and `--intact`
short intact runs (20 cycles) for false detections. Prints per temperature: max and
RMS inventory error (% of design inventory), max SOC error (points), cycle ends
outside the published bound, reserve breaches (ticks with the twin at the reserve and
DCL > 0), false detections, crack detection delay (median, worst) and the lithium
corroded before detection.

Run: .venv/bin/python benchmarks/bench_estimator.py [--cycles 1000 --lives 1 --cracks 10 --intact 34]
(the defaults: ~2 h on one core; --cycles 200 --cracks 5 --intact 10 in ~5 min).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.life import Life  # noqa: E402
from twin.parameters import load_parameter_set  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cycles", type=int, default=1000)
    ap.add_argument("--lives", type=int, default=1, help="spread lives per temperature")
    ap.add_argument("--cracks", type=int, default=10, help="cracked runs per temperature")
    ap.add_argument("--intact", type=int, default=34, help="intact 20-cycle runs per temperature")
    ap.add_argument("--spread", type=float, default=0.2)
    ap.add_argument("--temps", default="0,25,45")
    args = ap.parse_args(argv)
    d111 = load_parameter_set("d111")
    t_wall = time.perf_counter()
    print("d111, %d cycles x %d lives, +-%d %% spreads, %d cracks, %d intact runs per temperature"
          % (args.cycles, args.lives, round(args.spread * 100), args.cracks, args.intact))
    header = ("T_C", "inv_max_%", "inv_rms_%", "soc_max_pts", "outside_bound", "reserve_breach",
              "false_det", "crack_found", "delay_med_min", "delay_max_min", "corroded_max_%", "dead_max_%")
    print("  ".join(header))
    for temp in (float(t) for t in args.temps.split(",")):
        errs, socs = [], []
        outside = breaches = false = 0
        for k in range(args.lives):
            r = Life(d111, ambient_c=temp, seed=100 + k, spread=args.spread, cycles=args.cycles).run()
            errs += r.inventory_errors_pct
            socs += r.soc_errors_pts
            outside += r.outside_bound
            breaches += r.reserve_breaches
            false += len(r.faults)
        for k in range(args.intact):
            r = Life(d111, ambient_c=temp, seed=1000 + k, spread=args.spread, cycles=20).run()
            false += len(r.faults)
            breaches += r.reserve_breaches
        delays, corroded, dead = [], [], []
        found = 0
        target = 200.0
        for k in range(args.cracks):
            rng = random.Random(5000 + k)
            crack_after = 1800 * 3 + rng.uniform(0, 1800 * 4)       # during cycles 4..7
            r = Life(d111, ambient_c=temp, seed=5000 + k, spread=args.spread, cycles=12,
                     crack_after_s=crack_after).run()
            if r.detection_delay_s is not None:
                found += 1
                delays.append(r.detection_delay_s / 60.0)
                corroded.append(100.0 * r.corroded_uAh / target)
                dead.append(100.0 * r.corroded_dead_uAh / target)
        n = len(errs)
        rms = (sum(e * e for e in errs) / n) ** 0.5 if n else 0.0
        row = (temp, max((abs(e) for e in errs), default=0.0), rms, max((abs(e) for e in socs), default=0.0),
               outside, breaches, false, "%d/%d" % (found, args.cracks),
               statistics.median(delays) if delays else float("nan"), max(delays, default=float("nan")),
               max(corroded, default=float("nan")), max(dead, default=float("nan")))
        print("%4.0f  %9.2f  %9.2f  %11.2f  %13d  %14d  %9d  %11s  %13.1f  %13.1f  %14.2f  %10.2f" % row,
              flush=True)
    print("wall %.0f s" % (time.perf_counter() - t_wall))
    return 0


if __name__ == "__main__":
    sys.exit(main())
