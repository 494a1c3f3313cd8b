"""A fleet of cells of one design, held in a numpy structured array.

The array's dtype is laid out exactly as c_core's cell_state_t, so one C call
steps every cell without copying; reading a field across the fleet is a numpy
column (fleet.states["voltage_V"]).
"""
from __future__ import annotations

import numpy as np

from twin import core
from twin._core import ffi, lib
from twin.cell import Cell, UAH_PER_MOL, _ambient_K


class Fleet:
    def __init__(self, parameters, n_cells: int, ambient_c: float = 25.0):
        if isinstance(n_cells, bool) or not isinstance(n_cells, int) or n_cells < 1:
            raise core.LengthError(f"n_cells must be an int >= 1, got {n_cells!r}")
        template = Cell(parameters, ambient_c=ambient_c)
        self.params = template.params
        self.states = np.zeros(n_cells, dtype=core.STATE_DTYPE)
        one = np.frombuffer(ffi.buffer(template.state, ffi.sizeof("cell_state_t")),
                            dtype=core.STATE_DTYPE)
        self.states[:] = one[0]
        self._status = np.zeros(n_cells, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.states)

    def step(self, current_A, dt_s: float) -> None:
        """Step every cell by dt_s; current_A is a scalar or one value per cell.
        A cell whose input is bad keeps its state; the first error is raised
        after every other cell has been stepped (see .last_status)."""
        currents = np.ascontiguousarray(np.broadcast_to(np.asarray(current_A, dtype=np.float64),
                                                        (len(self),)))
        code = lib.cell_fleet_step(
            self.params, ffi.from_buffer("cell_state_t[]", self.states),
            ffi.from_buffer("double[]", currents), len(self), float(dt_s),
            ffi.from_buffer("int32_t[]", self._status))
        if code:
            bad = np.flatnonzero(self._status)
            core.check(code, f"cell_fleet_step (cells {bad[:10].tolist()}{'...' if len(bad) > 10 else ''})")

    @property
    def last_status(self) -> np.ndarray:
        return self._status.copy()

    def set_ambient_c(self, ambient_c) -> None:
        values = np.broadcast_to(np.asarray(ambient_c, dtype=np.float64), (len(self),))
        self.states["ambient_K"] = [_ambient_K(float(v)) for v in values]

    @property
    def plated_uAh(self) -> np.ndarray:
        return (self.states["li_metal_mol"] + self.states["li_alloy_mol"]) * UAH_PER_MOL

    @property
    def voltage_V(self) -> np.ndarray:
        return self.states["voltage_V"]
