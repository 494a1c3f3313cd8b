"""Design studies: one question asked of the twin across designs, temperatures
and manufacturing spread (docs/studies.md).

    from twin.study import load_study, run_study, read_table, crack_boundary
    study = load_study("studies/crack_map.toml")
    run_study(study, "runs/crack_map")                 # every local core; dask=True or
    table = read_table("runs/crack_map")               # scheduler="tcp://..." for Dask
    crack_boundary(table, x="protocol.density", y="ambient_c")

spec (the study file), variables (grids and spreads), plan (every variant and
its key), evaluate (running one), executors (where), store (Parquet), runner
(the loop), analysis and plots (answers), command (`bms-twin sweep`).
Names load on first use, so `bms-twin` does not import pandas to build its parser.
"""
import importlib

_EXPORTS = {
    "FIGURES": "twin.study.figures",
    "Report": "twin.study.runner",
    "StudyInterrupted": "twin.study.runner",
    "run_study": "twin.study.runner",
    "Study": "twin.study.spec",
    "StudyError": "twin.study.spec",
    "load_study": "twin.study.spec",
    "read_table": "twin.study.store",
    "crack_boundary": "twin.study.analysis",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError("module 'twin.study' has no attribute %r" % name)
    return getattr(importlib.import_module(_EXPORTS[name]), name)
