"""Every variant of a study, drawn up front: its inputs, its place, its key.

Variant i is grid point i // draws, draw i % draws; the first grid in the file
varies slowest. Each variant's key is a hash of what decides its result -- the
study's fixed part (cell, protocol, firmware settings, the model) and the
variant's inputs -- so a rerun finds the variants it already has whatever
order or executor computed them, and a changed study recomputes what changed.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from twin.study.figures import CLOSED_LOOP
from twin.study.variables import generator

# Bumped when what a stored row means changes (its figures, how they are read).
STORE_FORMAT = 1
SEED_COLUMN = "seed"
POSITION_COLUMNS = ("index", "point", "draw")
KEY_COLUMN = "variant"


@functools.lru_cache(maxsize=None)
def model_fingerprint(kind: str) -> str:
    """Hash of the compiled C core and, for closed loops, of the firmware's sources:
    results are reused only from the same model."""
    import bmsfw.config
    import twin._core

    digest = hashlib.sha256(Path(twin._core.__file__).read_bytes())
    if kind == CLOSED_LOOP:
        for path in sorted(Path(bmsfw.config.__file__).parent.glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def study_digest(study) -> str:
    """Hash of everything but the variables that decides a variant's figures."""
    fixed = {
        "format": STORE_FORMAT,
        "kind": study.kind,
        "cell": {"values": study.base.values, "design": study.base.design},
        "ambient_c": study.ambient_c,
        "protocol": study.protocol_text,
        "placeholder_units": study.placeholders,
        "sample_s": study.sample_s,
        "model": model_fingerprint(study.kind),
    }
    if study.kind == CLOSED_LOOP:
        fixed["config"] = study.config_fixed
        fixed["formation_timeout_s"] = study.formation_timeout_s
    return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()


class Plan:
    """columns: input name -> one value per variant (numpy); keys: one per variant."""

    def __init__(self, study):
        self.study = study
        grids = study.grids
        n_points = int(np.prod([len(v.grid) for v in grids])) if grids else 1
        draws = study.draws
        self.n = n_points * draws
        index = np.arange(self.n)
        self.columns = {"index": index, "point": index // draws, "draw": index % draws}
        mesh = np.meshgrid(*[v.grid for v in grids], indexing="ij") if grids else []
        by_key = {}
        for variable, values in zip(grids, mesh):
            by_key[variable.key] = np.repeat(values.ravel(), draws)
        for variable in study.spreads:
            by_key[variable.key] = np.tile(variable.draw(draws, study.seed), n_points)
        self.input_names = [v.key for v in study.variables]
        self.integer_inputs = {v.key for v in study.variables if v.integer}
        if study.kind == CLOSED_LOOP:
            # draw d is one cell on its own board: one ADC-noise seed per draw
            seeds = generator(study.seed, "board seed").integers(0, 2**31 - 1, draws)
            by_key[SEED_COLUMN] = np.tile(seeds, n_points)
            self.input_names.append(SEED_COLUMN)
            self.integer_inputs.add(SEED_COLUMN)
        for name in self.input_names:
            column = by_key[name]
            self.columns[name] = column.astype(np.int64) if name in self.integer_inputs else column
        self.digest = study_digest(study)
        self.keys = [self._key(i) for i in range(self.n)]

    def inputs(self, i: int) -> dict:
        """Variant i's inputs as plain Python numbers."""
        return {name: (int(self.columns[name][i]) if name in self.integer_inputs
                       else float(self.columns[name][i])) for name in self.input_names}

    def _key(self, i: int) -> str:
        text = json.dumps({"study": self.digest, "inputs": self.inputs(i)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:24]
