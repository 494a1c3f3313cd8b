"""`bms-twin sweep STUDY --out DIR`: run a design study (docs/studies.md)."""
from __future__ import annotations

import signal
import sys



def add_arguments(parser) -> None:
    parser.add_argument("study", help="study file (TOML); see docs/studies.md and studies/")
    parser.add_argument("--out", required=True, help="output directory: results.parquet, plots; "
                                                      "a rerun does only the variants it lacks")
    parser.add_argument("--workers", type=int, default=None,
                        help="local worker processes (default: every core); with --dask, LocalCluster workers")
    parser.add_argument("--dask", action="store_true",
                        help="run on a Dask LocalCluster of --workers processes")
    parser.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                        help="run on the Dask cluster of this scheduler (its workers need bms-twin installed)")
    parser.add_argument("--batch", type=int, default=None, metavar="N",
                        help="variants per task (default: chosen from the study's kind and size)")
    parser.add_argument("--flush-s", type=float, default=5.0, metavar="SECONDS",
                        help="store finished variants at least this often (what a kill can lose; default 5)")
    parser.add_argument("--no-plots", action="store_true", help="write the table only")


def _terminate(signum, frame):
    raise KeyboardInterrupt   # stored like Ctrl-C: finished variants are kept


def run(args) -> int:
    from twin.study import StudyError, StudyInterrupted, crack_boundary, load_study, run_study
    from twin.study.store import RESULTS

    for name, value, low in (("--workers", args.workers, 1), ("--batch", args.batch, 1)):
        if value is not None and value < low:
            raise StudyError(name, value, "an int >= %d expected" % low)
    if args.flush_s < 0:
        raise StudyError("--flush-s", args.flush_s, "a number >= 0 expected")
    try:
        study = load_study(args.study)
    except StudyError as error:
        print("bms-twin sweep: %s: %s" % (args.study, error), file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    try:
        report = run_study(study, args.out, workers=args.workers, dask=args.dask, scheduler=args.scheduler,
                           batch=args.batch, flush_s=args.flush_s, plots=not args.no_plots)
    except StudyInterrupted as stop:
        print("bms-twin sweep: %s" % stop, file=sys.stderr)
        return 130
    print("%s: ran %d of %d variants (%d were already in %s) in %.2f s on %s: %.1f variants/s"
          % (study.name, report.n_ran, report.n_total, report.n_before, report.out_dir, report.wall_s,
             report.where, report.variants_per_s if report.n_ran else 0.0))
    if report.n_failed:
        print("%d variants failed (their error column says why); the first: %s"
              % (report.n_failed, report.first_error))
    crack = study.plots.get("crack_map")
    if crack:
        from twin.study import read_table

        boundary = crack_boundary(read_table(report.out_dir), crack["x"], crack["y"])
        unit = next(v.unit for v in study.variables if v.key == crack["x"])
        for _, row in boundary.iterrows():
            print("  %s = %g: cracks from %.4g %s on (onset of damage); held up to %.4g, cracked at %.4g"
                  % (crack["y"], row[crack["y"]], row["onset"], unit, row["highest_intact"],
                     row["lowest_cracked"]))
    print("wrote %s" % ", ".join(str(p) for p in [report.out_dir / RESULTS] + report.plots))
    if report.n_failed:
        # the study did not answer for every variant it was asked about: the table
        # holds the rest, a rerun retries only the failed ones
        print("bms-twin sweep: %d of %d variants failed; the first: %s"
              % (report.n_failed, report.n_ran, report.first_error), file=sys.stderr)
        return 1
    return 0

