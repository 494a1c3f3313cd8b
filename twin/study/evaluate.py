"""Running variants: what a worker process (local or on a Dask cluster) executes.

A Job is the picklable part of a study a worker needs; run_batch runs a list
of (key, inputs) and returns one row per variant with every figure of the
study's kind. A variant the twin refuses (a drawn value out of range together
with another, a diverged step) gets its error in the row instead of figures,
so one bad cell does not stop a lot of ten thousand.
"""
from __future__ import annotations

from bmsfw.errors import FieldError
from twin.study.figures import OPEN_LOOP, TickWatch, closed_loop_figures, figures_of, open_loop_figures
from twin.study.plan import KEY_COLUMN, SEED_COLUMN, model_fingerprint
from twin.study.spec import render_protocol

ERROR_COLUMN = "error"
# Closed-loop runs keep no per-tick rows: a study reads only the summary.
_NO_ROWS = 10**12


class WorkerModelError(FieldError):
    """A worker whose model is not the one the client planned the study for."""

    prefix = "worker "


class Job:
    def __init__(self, study):
        self.kind = study.kind
        self.base = study.base
        self.ambient_c = study.ambient_c
        self.template = study.protocol_text
        self.placeholders = study.placeholders
        self.sample_s = study.sample_s
        self.formation_timeout_s = study.formation_timeout_s
        self.config_fixed = dict(study.config_fixed)
        self.figures = figures_of(study.kind)
        # the model the variant keys were made for (see run_batch)
        self.model = model_fingerprint(study.kind)
        self._protocol = None

    def protocol(self, inputs: dict, area_cm2: float):
        from twin.protocol import Protocol

        if self.template is None:
            return None
        if not self.placeholders:
            if self._protocol is None:
                self._protocol = Protocol.parse(self.template)
            return self._protocol
        return Protocol.parse(render_protocol(self.template, self.placeholders, inputs, area_cm2))

    def run(self, inputs: dict) -> dict:
        overrides = {name[5:]: value for name, value in inputs.items() if name.startswith("cell.")}
        params = self.base.with_overrides(**overrides) if overrides else self.base
        ambient_c = inputs.get("ambient_c", self.ambient_c)
        protocol = self.protocol(inputs, params.values["area_cm2"])
        if self.kind == OPEN_LOOP:
            from twin.simulate import simulate

            return open_loop_figures(simulate(params, protocol, ambient_c=ambient_c,
                                              sample_interval_s=self.sample_s))
        return self._closed_loop(params, protocol, ambient_c, inputs)

    def _closed_loop(self, params, duty, ambient_c, inputs) -> dict:
        from twin.firmware_config import config_for
        from twin.run import run_closed_loop

        varied = {name[7:]: value for name, value in inputs.items() if name.startswith("config.")}
        # the firmware is configured for the nominal design, the twin is this cell
        config = config_for(self.base, **dict(self.config_fixed, **varied))
        watch = TickWatch()
        result = run_closed_loop(params, duty, ambient_c=ambient_c, seed=inputs[SEED_COLUMN],
                                 config=config, stop_after_formation=duty is None, on_tick=watch,
                                 record_every=_NO_ROWS, formation_timeout_s=self.formation_timeout_s)
        return closed_loop_figures(result.summary, watch)


def run_batch(job: Job, batch: list) -> list:
    """[(key, inputs), ...] -> [{KEY_COLUMN: key, <figures>, ERROR_COLUMN: ""}, ...]"""
    if model_fingerprint(job.kind) != job.model:
        # a cluster worker with another build would store results under keys that
        # claim this client's model
        raise WorkerModelError("model", model_fingerprint(job.kind)[:12],
                               "this worker runs another build of the twin core or firmware than the "
                               "client (%s); install the same bms-twin on every worker" % job.model[:12])
    rows = []
    for key, inputs in batch:
        try:
            row = job.run(inputs)
            row[ERROR_COLUMN] = ""
        except (ValueError, ArithmeticError, RuntimeError) as error:
            row = {name: None for name in job.figures}
            row[ERROR_COLUMN] = "%s: %s" % (type(error).__name__, " ".join(str(error).split()))
        row[KEY_COLUMN] = key
        rows.append(row)
    return rows

