"""A fleet of cells held in a numpy structured array, stepped in C on every core.

The array's dtype is laid out exactly as c_core's cell_state_t, so one C call
steps a slice of cells without copying; reading a field across the fleet is a
numpy column (fleet.states["voltage_V"]).

Cells share one design, or each has its own parameters (`per_cell`: a Monte
Carlo lot of areas, layer thicknesses, ...): then the parameters are a second
structured array, laid out as cell_params_t, checked and derived once by
cell_derive (or, once handed out for editing, checked on every step as
cell_fleet_step_each does). `step` runs one C call per thread,
cell_fleet_step_shared: cffi's API mode releases the GIL for its length, and the
threads take the cells in contiguous chunks from a counter they share, so they
run truly in parallel and one the machine holds up delays only its chunk.
"""
from __future__ import annotations

import os
import threading
from typing import Callable, Mapping

import numpy as np

from twin import core
from twin._core import ffi, lib
from twin.cell import Cell, UAH_PER_MOL, _ambient_K

# Below this many cells per thread, waking one costs more than the C time it
# saves (a wake-up is ~10-50 µs; a cell-step ~30-40 ns).
MIN_CELLS_PER_THREAD = 1024
# Cells a thread takes from the shared counter at a time: ~10 µs of work, so a
# held-up thread delays the step by little, and the counter is touched rarely.
CHUNK_CELLS = 256
# Which parameters the C call steps with, and its name in error messages.
_KIND_CALL = {lib.CELL_FLEET_ONE_DESIGN: "cell_fleet_step", lib.CELL_FLEET_EACH: "cell_fleet_step_each",
              lib.CELL_FLEET_DERIVED: "cell_fleet_step_derived"}


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:     # not on Linux
        return os.cpu_count() or 1


class _Helper:
    """One thread that runs a job each time it is started: two locks and no
    queue or future, so a job costs one wake-up."""

    def __init__(self):
        self._go = threading.Lock()
        self._go.acquire()
        self._done = threading.Lock()
        self._done.acquire()
        self._job: Callable | None = None
        self._outcome: tuple = (True, None)
        threading.Thread(target=self._loop, name="fleet", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            try:
                self._outcome = (True, self._job())
            except BaseException as error:        # handed to the caller by join
                self._outcome = (False, error)
            self._done.release()

    def start(self, job: Callable) -> None:
        self._job = job
        self._go.release()

    def wait(self) -> None:
        self._done.acquire()

    def result(self):
        """The last job's result (or its exception, raised here); after wait()."""
        ok, value = self._outcome
        if not ok:
            raise value
        return value


class _Crew:
    """Helper threads shared by every fleet of the process; one step uses them at
    a time (a second waits), so their jobs never mix."""

    def __init__(self, n_helpers: int):
        self._helpers = [_Helper() for _ in range(n_helpers)]
        self._turn = threading.Lock()
        self.broken = False

    def run(self, jobs: list) -> list:
        """jobs[0] on the calling thread (instead of waiting idle), the rest on
        helpers; their results in order."""
        with self._turn:
            started = self._helpers[:len(jobs) - 1]
            for helper, job in zip(started, jobs[1:]):
                helper.start(job)
            try:
                first = jobs[0]()
            finally:
                try:
                    for helper in started:
                        helper.wait()
                except BaseException:
                    # a wait cut short (Ctrl-C) leaves a helper's job running: its
                    # late "done" must not end a later run, so this crew retires
                    self.broken = True
                    raise
            rest = [helper.result() for helper in started]
        return [first] + rest


_crews: dict = {}
_crews_lock = threading.Lock()


def _crew(n_helpers: int) -> _Crew:
    """The process's crew of n_helpers (a forked child makes its own: it has no
    threads of its parent's)."""
    key = (os.getpid(), n_helpers)
    with _crews_lock:
        if key not in _crews or _crews[key].broken:
            _crews[key] = _Crew(n_helpers)
        return _crews[key]


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
# cell_derived_t is the core's business: held as opaque bytes, one per cell.
DERIVED_DTYPE = np.dtype((np.void, ffi.sizeof("cell_derived_t")))


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
        self._derived = None            # cell_derive's, while the parameters are ours alone
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
        self._derived = np.zeros(n, dtype=DERIVED_DTYPE)
        c_params = ffi.from_buffer("cell_params_t[]", self._cell_params)
        status = np.zeros(n, dtype=np.int32)
        if lib.cell_derive(c_params, ffi.from_buffer("cell_derived_t[]", self._derived), n,
                           ffi.from_buffer("int32_t[]", status)):
            i = int(np.flatnonzero(status)[0])
            bad_field = ffi.new("char **")
            lib.cell_params_check(c_params + i, bad_field)
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
        """Each cell's parameters (a PARAMS_DTYPE array), or None when the cells
        share the design. Until first read here they are checked and derived once;
        the array handed out may be edited between steps at any time, so from then
        on every step checks every cell's parameters again (cell_fleet_step_each,
        at about half the speed)."""
        self._derived = None
        return self._cell_params

    def _threads_used(self) -> int:
        """Threads a step uses: at most self.threads, none with fewer than
        MIN_CELLS_PER_THREAD cells but the only one."""
        return max(1, min(self.threads, len(self) // MIN_CELLS_PER_THREAD))

    def _params_kind(self) -> tuple:
        """(CELL_FLEET_* kind, params pointer, derived pointer or NULL)."""
        if self._cell_params is None:
            return lib.CELL_FLEET_ONE_DESIGN, self.params, ffi.NULL
        c_params = ffi.from_buffer("cell_params_t[]", self._cell_params)
        if self._derived is None:
            return lib.CELL_FLEET_EACH, c_params, ffi.NULL
        return lib.CELL_FLEET_DERIVED, c_params, ffi.from_buffer("cell_derived_t[]", self._derived)

    def step(self, current_A, dt_s: float) -> None:
        """Step every cell by dt_s; current_A is a scalar or one value per cell.
        A cell whose input is bad keeps its state; the first error is raised
        after every other cell has been stepped (see .last_status)."""
        n = len(self)
        currents = np.ascontiguousarray(np.broadcast_to(np.asarray(current_A, dtype=np.float64), (n,)))
        kind, params, derived = self._params_kind()
        states = ffi.from_buffer("cell_state_t[]", self.states)
        c_currents = ffi.from_buffer("double[]", currents)
        status = ffi.from_buffer("int32_t[]", self._status)
        dt_s = float(dt_s)
        threads = self._threads_used()
        share = ffi.new("cell_share_t *", {"next": 0, "chunk": CHUNK_CELLS if threads > 1 else max(1, n)})

        def job() -> int:
            return lib.cell_fleet_step_shared(kind, params, derived, states, c_currents, n, dt_s, status,
                                              share)
        # a whole-call error (a bad dt) steps no cell and writes no status
        self._status.fill(0)
        codes = _crew(threads - 1).run([job] * threads) if threads > 1 else [job()]
        if any(codes):
            bad = np.flatnonzero(self._status)
            code = int(self._status[bad[0]]) if len(bad) else next(c for c in codes if c)
            core.check(code, f"{_KIND_CALL[kind]} (cells {bad[:10].tolist()}{'...' if len(bad) > 10 else ''})")

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
