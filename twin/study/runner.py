"""Running a study: plan it, skip what the output directory already holds, run
the rest in batches on an executor, store rows as they come, write the table
and the plots.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path

from twin.study.evaluate import ERROR_COLUMN, Job, run_batch
from twin.study.executors import open_executor
from twin.study.figures import CLOSED_LOOP, OPEN_LOOP
from twin.study.plan import Plan
from twin.study.store import Store, results_table, write_results

# Variants per task: an open-loop variant costs milliseconds, so batches keep a
# task's overhead (pickling, a Dask round trip: ~1 ms) small against its work;
# a closed-loop run costs ~0.5 s, so small batches keep every worker busy to the end.
MAX_BATCH = {OPEN_LOOP: 64, CLOSED_LOOP: 4}
# Tasks in flight per worker: enough that none waits for the next.
IN_FLIGHT_PER_WORKER = 4
DEFAULT_FLUSH_S = 5.0


class StudyInterrupted(Exception):
    """The run was stopped (Ctrl-C, SIGTERM) after storing what it had."""


class Report:
    def __init__(self, study, out_dir, n_total, n_before, n_ran, n_failed, where, wall_s, plots,
                 first_error=""):
        self.study, self.out_dir = study, Path(out_dir)
        self.n_total, self.n_before, self.n_ran, self.n_failed = n_total, n_before, n_ran, n_failed
        self.where, self.wall_s, self.plots, self.first_error = where, wall_s, plots, first_error

    @property
    def variants_per_s(self) -> float:
        return self.n_ran / self.wall_s if self.wall_s > 0 else math.inf


def _batch_size(kind: str, n_todo: int, workers: int, batch: int | None) -> int:
    if batch:
        return batch
    return max(1, min(MAX_BATCH[kind], n_todo // (workers * 2 * IN_FLIGHT_PER_WORKER)))


def _progress(total: int, desc: str):
    from tqdm import tqdm

    # tqdm shows itself only on a terminal (disable=None), so logs stay clean
    return tqdm(total=total, desc=desc, unit="variant", disable=None, leave=False, file=sys.stderr)


def run_study(study, out_dir, workers: int | None = None, dask: bool = False, scheduler: str | None = None,
              batch: int | None = None, flush_s: float = DEFAULT_FLUSH_S, plots: bool = True,
              log=print) -> Report:
    out_dir = Path(out_dir)
    plan = Plan(study)
    store = Store(out_dir, study.kind)
    stored = store.keys()
    todo = [i for i, key in enumerate(plan.keys) if key not in stored]
    n_before = plan.n - len(todo)
    where_label, ran, t0 = "nothing to run", 0, time.perf_counter()
    if todo:
        try:
            with open_executor(workers, dask=dask, scheduler=scheduler) as where:
                _prepare(study, out_dir)     # only once the executor is there: a bad one changes nothing
                where_label = where.label
                log("%s: %d variants, %d already in %s, running %d on %s"
                    % (study.name, plan.n, n_before, out_dir, len(todo), where.label))
                ran = _run(plan, todo, store, where,
                           _batch_size(study.kind, len(todo), where.workers, batch), flush_s)
        except StudyInterrupted:
            _finish(plan, store, out_dir)    # the table of what is done, for a look
            raise
    else:
        _prepare(study, out_dir)
        log("%s: all %d variants already in %s" % (study.name, plan.n, out_dir))
    wall = time.perf_counter() - t0
    table = _finish(plan, store, out_dir)
    errors = [e for e in table.column(ERROR_COLUMN).to_pylist() if e]
    drawn = []
    if plots and table.num_rows:
        from twin.study.plots import draw_plots

        drawn = draw_plots(study, table.to_pandas(), out_dir)
    report = Report(study, out_dir, plan.n, n_before, ran, len(errors), where_label, wall, drawn,
                    errors[0] if errors else "")
    _write_summary(report, plan)
    return report


def _prepare(study, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if study.path != (out_dir / "study.toml").resolve():
        shutil.copyfile(study.path, out_dir / "study.toml")


def _finish(plan, store, out_dir):
    store.compact()
    table = results_table(plan, store.read(), plan.study.figures)
    write_results(table, out_dir)
    return table


def _run(plan, todo, store, where, batch_size, flush_s) -> int:
    job = Job(plan.study)
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    pending, buffer, ran = set(), [], 0
    last_flush = time.monotonic()
    bar = _progress(len(todo), plan.study.name)
    try:
        next_batch = 0
        while next_batch < len(batches) or pending:
            while next_batch < len(batches) and len(pending) < where.workers * IN_FLIGHT_PER_WORKER:
                items = [(plan.keys[i], plan.inputs(i)) for i in batches[next_batch]]
                pending.add(where.executor.submit(run_batch, job, items))
                next_batch += 1
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                rows = future.result()
                buffer.extend(rows)
                ran += len(rows)
                bar.update(len(rows))
            if time.monotonic() - last_flush >= flush_s:
                store.write(buffer)
                buffer, last_flush = [], time.monotonic()
    except KeyboardInterrupt:
        store.write(buffer)
        raise StudyInterrupted("interrupted: %d of %d variants stored; rerun to run the rest"
                               % (plan.n - len(todo) + ran, plan.n)) from None
    finally:
        bar.close()
    store.write(buffer)
    return ran


def _write_summary(report: Report, plan) -> None:
    summary = {
        "study": report.study.name, "kind": report.study.kind, "digest": plan.digest,
        "variants": report.n_total, "already_stored": report.n_before, "ran": report.n_ran,
        "failed": report.n_failed, "where": report.where, "wall_s": report.wall_s,
        "plots": [p.name for p in report.plots],
    }
    (report.out_dir / "study.json").write_text(json.dumps(summary, indent=2) + "\n")
