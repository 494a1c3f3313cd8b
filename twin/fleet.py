"""A fleet of cells held in a numpy structured array, stepped in C on every core.

The array's dtype is laid out exactly as c_core's cell_state_t, so one C call
steps a slice of cells without copying; reading a field across the fleet is a
numpy column (fleet.states["voltage_V"]).

Cells share one design, or each has its own parameters (`per_cell`: a Monte
Carlo lot of areas, layer thicknesses, ...): then the parameters are a second
structured array, laid out as cell_params_t, and cell_fleet_step_each checks and
uses each cell's own. `step` splits the fleet into contiguous slices stepped by
threads: cffi's API mode releases the GIL for the length of each C call, and
the C calls keep no state, so slices run truly in parallel.
"""
from __future__ import annotations

import functools
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping

import numpy as np

from twin import core
from twin._core import ffi, lib
from twin.cell import Cell, UAH_PER_MOL, _ambient_K

# Below this many cells, handing a slice to a thread costs more than the C time
# it saves (a submit and a wake-up are ~20 µs; a cell-step ~50-100 ns).
MIN_CELLS_PER_SLICE = 1024
# Threads take slices from a shared counter, several each: on a shared machine a
# thread that is descheduled then holds up one small slice, not half the fleet.
SLICES_PER_THREAD = 4


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:     # not on Linux
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=None)
def _pool(n_threads: int) -> ThreadPoolExecutor:
    """One pool per size for the whole process: fleets are often many and short-lived."""
    return ThreadPoolExecutor(max_workers=n_threads, thread_name_prefix="fleet")


def _params_dtype() -> np.dtype:
    kinds = {"double": "<f8", "int": "<i4", "int32_t": "<i4"}
    names, formats, offsets = [], [], []
    for name, field in ffi.typeof("cell_params_t").fields:
        names.append(name)
        if field.type.kind == "array":
            formats.append((kinds[field.type.item.cname], (field.type.length,)))
        else:
            formats.append(kinds[field.type.cname])
        offsets.append(field.offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": ffi.sizeof("cell_params_t")})


# A numpy structured dtype laid out exactly as cell_params_t (per-cell parameters).
PARAMS_DTYPE = _params_dtype()


class Fleet:
    def __init__(self, parameters, n_cells: int, ambient_c=25.0, *,
                 per_cell: Mapping[str, object] | None = None, threads: int | None = None):
        """n_cells shipped cells of the design `parameters`, at ambient_c (one value,
        or one per cell). per_cell maps scalar cell_params_t fields to one value
        per cell (SI, as twin.parameters.FIELD_UNITS), replacing the design's.
        threads: how many threads step() may use (default: every core)."""
        if isinstance(n_cells, bool) or not isinstance(n_cells, int) or n_cells < 1:
            raise core.LengthError(f"n_cells must be an int >= 1, got {n_cells!r}")
        if threads is None:
            threads = available_cores()
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise core.LengthError(f"threads must be an int >= 1, got {threads!r}")
        self.threads = threads
        ambients = np.broadcast_to(np.asarray(ambient_c, dtype=np.float64), (n_cells,)) \
            if np.ndim(ambient_c) == 0 else np.asarray(ambient_c, dtype=np.float64)
        if ambients.shape != (n_cells,):
            raise core.LengthError(f"ambient_c: {ambients.shape[0]} values for {n_cells} cells")
        template = Cell(parameters, ambient_c=float(ambients[0]))
        self.params = template.params
        self.states = np.zeros(n_cells, dtype=core.STATE_DTYPE)
        self._status = np.zeros(n_cells, dtype=np.int32)
        self._cell_params = None
        if per_cell:
            self._cell_params = np.zeros(n_cells, dtype=PARAMS_DTYPE)
            self._cell_params[:] = np.frombuffer(ffi.buffer(self.params, ffi.sizeof("cell_params_t")),
                                                 dtype=PARAMS_DTYPE)[0]
            self._set_per_cell(per_cell)
        if self._cell_params is None and np.all(ambients == ambients[0]):
            one = np.frombuffer(ffi.buffer(template.state, ffi.sizeof("cell_state_t")),
                                dtype=core.STATE_DTYPE)
            self.states[:] = one[0]
        else:
            self._init_each(ambients)

    def _set_per_cell(self, per_cell: Mapping[str, object]) -> None:
        n = len(self.states)
        for field, values in per_cell.items():
            if field not in core.PARAM_SCALARS:
                raise core.CoreParameterError(f"per_cell: {field!r} is not a scalar cell parameter; "
                                              f"known: {', '.join(core.PARAM_SCALARS)}")
            column = np.asarray(values, dtype=np.float64)
            if column.shape != (n,):
                raise core.LengthError(f"per_cell[{field!r}]: {column.size} values for {n} cells")
            if not np.all(np.isfinite(column)):
                bad = int(np.flatnonzero(~np.isfinite(column))[0])
                raise core.NotFiniteError(f"per_cell[{field!r}][{bad}] = {column[bad]!r} is not finite")
            self._cell_params[field] = column
        c_params = ffi.from_buffer("cell_params_t[]", self._cell_params)
        bad_field = ffi.new("char **")
        for i in range(n):
            if lib.cell_params_check(c_params + i, bad_field):
                field = ffi.string(bad_field[0]).decode()
                raise core.CoreParameterError(
                    f"per_cell: cell {i}: {field} = {float(self._cell_params[field][i])!r} is outside its "
                    f"physical range (cell_params_check)")

    def _init_each(self, ambients: np.ndarray) -> None:
        kelvin = [_ambient_K(float(v)) for v in ambients]
        c_states = ffi.from_buffer("cell_state_t[]", self.states)
        if self._cell_params is None:
            for i, ambient_K in enumerate(kelvin):
                core.check(lib.cell_init(self.params, ambient_K, c_states + i), f"cell_init (cell {i})")
            return
        c_params = ffi.from_buffer("cell_params_t[]", self._cell_params)
        for i, ambient_K in enumerate(kelvin):
            core.check(lib.cell_init(c_params + i, ambient_K, c_states + i), f"cell_init (cell {i})")

    def __len__(self) -> int:
        return len(self.states)

    @property
    def cell_params(self) -> np.ndarray | None:
        """Each cell's parameters (a PARAMS_DTYPE array, editable between steps; the
        core checks them on every step), or None when the cells share the design."""
        return self._cell_params

    def _slices(self) -> list:
        n = len(self)
        k = 1 if self.threads == 1 else max(1, min(self.threads * SLICES_PER_THREAD, n // MIN_CELLS_PER_SLICE))
        bounds = [n * i // k for i in range(k + 1)]
        return list(zip(bounds[:-1], bounds[1:]))

    def step(self, current_A, dt_s: float) -> None:
        """Step every cell by dt_s; current_A is a scalar or one value per cell.
        A cell whose input is bad keeps its state; the first error is raised
        after every other cell has been stepped (see .last_status)."""
        currents = np.ascontiguousarray(np.broadcast_to(np.asarray(current_A, dtype=np.float64),
                                                        (len(self),)))
        dt_s = float(dt_s)
        c_states = ffi.from_buffer("cell_state_t[]", self.states)
        c_currents = ffi.from_buffer("double[]", currents)
        c_status = ffi.from_buffer("int32_t[]", self._status)
        if self._cell_params is None:
            params = self.params

            def run(lo, hi):
                return lib.cell_fleet_step(params, c_states + lo, c_currents + lo, hi - lo, dt_s,
                                           c_status + lo)
            call = "cell_fleet_step"
        else:
            c_params = ffi.from_buffer("cell_params_t[]", self._cell_params)

            def run(lo, hi):
                return lib.cell_fleet_step_each(c_params + lo, c_states + lo, c_currents + lo,
                                                hi - lo, dt_s, c_status + lo)
            call = "cell_fleet_step_each"
        # a whole-call error (a bad dt) steps no cell and writes no status
        self._status.fill(0)
        slices = self._slices()
        taken = itertools.count()      # next() on it is atomic: each slice is taken once

        def work() -> list:
            codes = []
            while True:
                i = next(taken)
                if i >= len(slices):
                    return codes
                codes.append(run(*slices[i]))
        # the calling thread takes slices too instead of waiting idle
        helpers = min(self.threads, len(slices)) - 1
        others = [_pool(self.threads).submit(work) for _ in range(helpers)]
        codes = work()
        for future in others:
            codes += future.result()
        if any(codes):
            bad = np.flatnonzero(self._status)
            code = int(self._status[bad[0]]) if len(bad) else next(c for c in codes if c)
            core.check(code, f"{call} (cells {bad[:10].tolist()}{'...' if len(bad) > 10 else ''})")

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
