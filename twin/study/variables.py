"""What a study varies: one input, its unit, and a grid or a distribution over it.

A grid (`values`, `linspace`, `logspace`) gives the test conditions; every
combination of the grids is one grid point. A distribution (`uniform`, `normal`,
`lognormal`) is a manufacturing spread: draw d of it is one cell of the lot, and
the same lot is tested at every grid point.

Draws are made once, before anything runs, from one numpy Generator per
variable, seeded by the study's seed and the variable's key. So the values do
not depend on how the variants are then executed, a variable added to a study
does not move another's draws, and raising `draws` keeps the earlier draws
(the uniform numbers come in order and are mapped by inverse CDF), so a rerun
with more draws reuses every variant already computed.
"""
from __future__ import annotations

import math
import zlib
from statistics import NormalDist

import numpy as np

GRID_KINDS = ("values", "linspace", "logspace")
DISTRIBUTION_KINDS = ("uniform", "normal", "lognormal")
# Normal and lognormal spreads are cut at this many standard deviations, so a
# lot never holds a cell that no factory would ship (or a negative thickness).
TRUNCATE_SD = 3.0
_SPACE_KEYS = ("start", "stop", "num")
# the accepted forms of each distribution: absolute, or relative to the base value
_DISTRIBUTION_FORMS = {
    "uniform": (("low", "high"), ("spread",)),
    "normal": (("mean", "sd"), ("rel_sd",)),
    "lognormal": (("median", "sigma"), ("sigma",)),
}


class VariableSpecError(ValueError):
    """A grid or distribution table that cannot be read: (sub-key, value, why)."""

    def __init__(self, subkey, value, why):
        super().__init__(why)
        self.subkey = subkey
        self.value = value
        self.why = why


def _number(subkey, value, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise VariableSpecError(subkey, value, "a finite number expected")
    if positive and value <= 0:
        raise VariableSpecError(subkey, value, "a number > 0 expected")
    return float(value)


class Variable:
    """One varied input. key: "ambient_c", "cell.<field>", "protocol.<name>" or
    "config.<field>"; unit: as written in the study (checked by the caller);
    kind: one of GRID_KINDS + DISTRIBUTION_KINDS; integer: values are rounded to
    whole numbers (firmware config fields are ints)."""

    def __init__(self, key: str, unit: str, kind: str, spec, base=None, integer: bool = False):
        self.key = key
        self.unit = unit
        self.kind = kind
        self.integer = integer
        self.base = base
        if kind in GRID_KINDS:
            self.grid = self._grid(kind, spec)
            self.params = None
        elif kind in DISTRIBUTION_KINDS:
            self.grid = None
            self.params = self._distribution(kind, spec, base)
        else:
            raise VariableSpecError(key, kind, "one of %s" % ", ".join(GRID_KINDS + DISTRIBUTION_KINDS))

    @property
    def is_grid(self) -> bool:
        return self.grid is not None

    def _grid(self, kind, spec) -> np.ndarray:
        if kind == "values":
            if not isinstance(spec, list) or not spec:
                raise VariableSpecError("values", spec, "a non-empty list of numbers expected")
            values = [_number("values[%d]" % i, v) for i, v in enumerate(spec)]
            if self.integer and any(not v.is_integer() for v in values):
                raise VariableSpecError("values", spec, "whole numbers expected (a firmware config value)")
            if len(set(values)) != len(values):
                raise VariableSpecError("values", spec, "each value once (a repeat would run twice)")
            return np.array(values)
        if not isinstance(spec, dict) or set(spec) != set(_SPACE_KEYS):
            raise VariableSpecError(kind, spec, "a table { start, stop, num } expected")
        positive = kind == "logspace"
        start = _number(kind + ".start", spec["start"], positive)
        stop = _number(kind + ".stop", spec["stop"], positive)
        num = spec["num"]
        if isinstance(num, bool) or not isinstance(num, int) or num < 1 or (num == 1 and start != stop):
            raise VariableSpecError(kind + ".num", num, "an int >= 2 expected (1 only when start == stop)")
        if kind == "linspace":
            grid = np.linspace(start, stop, num)
        else:
            grid = np.geomspace(start, stop, num)
        if self.integer:
            grid = np.unique(np.rint(grid))
        return grid

    def _distribution(self, kind, spec, base) -> dict:
        if not isinstance(spec, dict):
            raise VariableSpecError(kind, spec, "a table expected")
        forms = _DISTRIBUTION_FORMS[kind]
        form = next((f for f in forms if set(spec) == set(f)), None)
        if form is None:
            raise VariableSpecError(kind, spec, " or ".join("{ %s }" % ", ".join(f) for f in forms)
                                    + " expected")
        if form == forms[1] and base is None:
            raise VariableSpecError(kind, spec, "%s has no base value to spread around: give { %s }"
                                    % (self.key, ", ".join(forms[0])))
        if kind == "uniform":
            if form == ("spread",):
                spread = _number("uniform.spread", spec["spread"], positive=True)
                low, high = sorted((base * (1 - spread), base * (1 + spread)))
            else:
                low, high = _number("uniform.low", spec["low"]), _number("uniform.high", spec["high"])
            if not low < high:
                raise VariableSpecError("uniform", spec, "low < high expected")
            return {"low": low, "high": high}
        if kind == "normal":
            if form == ("rel_sd",):
                mean, sd = base, abs(base) * _number("normal.rel_sd", spec["rel_sd"], positive=True)
            else:
                mean, sd = _number("normal.mean", spec["mean"]), _number("normal.sd", spec["sd"], True)
            if sd <= 0:
                raise VariableSpecError("normal", spec, "a base value other than 0 for rel_sd")
            return {"mean": mean, "sd": sd}
        median = base if form == ("sigma",) else _number("lognormal.median", spec["median"], True)
        if median is None or median <= 0:
            raise VariableSpecError("lognormal", spec, "a median > 0 expected")
        return {"median": median, "sigma": _number("lognormal.sigma", spec["sigma"], True)}

    def extremes(self) -> tuple:
        """The lowest and highest value any variant can take."""
        if self.is_grid:
            return float(self.grid.min()), float(self.grid.max())
        p = self.params
        if self.kind == "uniform":
            low, high = p["low"], p["high"]
        elif self.kind == "normal":
            low, high = p["mean"] - TRUNCATE_SD * p["sd"], p["mean"] + TRUNCATE_SD * p["sd"]
        else:
            low, high = p["median"] * math.exp(-TRUNCATE_SD * p["sigma"]), \
                p["median"] * math.exp(TRUNCATE_SD * p["sigma"])
        if self.integer:
            low, high = float(np.rint(low)), float(np.rint(high))
        return low, high

    def draw(self, n: int, seed: int) -> np.ndarray:
        """n draws; draw i does not depend on n (see the module docstring)."""
        u = generator(seed, self.key).random(n)
        p = self.params
        if self.kind == "uniform":
            values = p["low"] + u * (p["high"] - p["low"])
        else:
            z = _truncated_normal(u)
            if self.kind == "normal":
                values = p["mean"] + p["sd"] * z
            else:
                values = p["median"] * np.exp(p["sigma"] * z)
        return np.rint(values) if self.integer else values


def generator(seed: int, name: str) -> np.random.Generator:
    """The Generator of one named stream of a study (a variable, the board seeds)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(zlib.crc32(name.encode()),)))


def _truncated_normal(u: np.ndarray) -> np.ndarray:
    """Standard normal values cut at ±TRUNCATE_SD, from uniform u in [0, 1)."""
    unit = NormalDist()
    low = unit.cdf(-TRUNCATE_SD)
    span = unit.cdf(TRUNCATE_SD) - low
    return np.array([unit.inv_cdf(low + span * x) for x in u.tolist()])
