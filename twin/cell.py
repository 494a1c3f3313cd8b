"""One cell of the twin: a parameter set joined to a state in the C core.

The model lives in c_core/; this class holds the parameter struct and the state
struct, validates what crosses, and reads the state back in user units.
Current sign: + charges the cell (plates lithium), - discharges it.
"""
from __future__ import annotations

from math import isfinite
from typing import Mapping

import numpy as np

from twin import core
from twin._core import ffi, lib
from twin.core import COULOMB_PER_UAH, FARADAY_C_MOL

UAH_PER_MOL = FARADAY_C_MOL / COULOMB_PER_UAH
KELVIN = 273.15


def _ambient_K(ambient_c: float) -> float:
    value = core._finite("ambient_c", ambient_c)
    if not -120.0 < value < 220.0:
        raise core.CoreParameterError(f"ambient_c = {value} °C is outside -120..220 °C")
    return value + KELVIN


def _values_of(parameters) -> Mapping[str, object]:
    values = parameters if isinstance(parameters, Mapping) else getattr(parameters, "values", None)
    if not isinstance(values, Mapping):
        raise TypeError(f"parameters: expected a ParameterSet or a mapping, got {type(parameters).__name__}")
    return values


class Cell:
    """A shipped (discharged) cell: no lithium metal until it is formed."""

    def __init__(self, parameters, ambient_c: float = 25.0):
        self.parameters = parameters
        self.start_ambient_c = ambient_c    # as built; set_ambient_c moves the state's ambient_K
        self.params = core.make_params(_values_of(parameters))
        self.state = ffi.new("cell_state_t *")
        core.check(lib.cell_init(self.params, _ambient_K(ambient_c), self.state), "cell_init")
        # reused by every run_segment call
        self._segment = ffi.new("cell_segment_t *")
        self._result = ffi.new("cell_segment_result_t *")

    # ---- stepping ---------------------------------------------------------

    def step(self, current_A: float, dt_s: float) -> None:
        """Advance by dt_s at a terminal current (+ charge)."""
        current_A = core._finite("current_A", current_A, core.InputTypeError)
        dt_s = core._finite("dt_s", dt_s, core.InputTypeError)
        if dt_s <= 0:
            raise core.TimeStepError(f"dt_s = {dt_s}: must be > 0")
        core.check(lib.cell_step(self.params, self.state, current_A, dt_s), "cell_step")

    def voltage_at(self, current_A: float) -> float:
        out = ffi.new("double *")
        core.check(lib.cell_voltage_at(self.params, self.state,
                                       core._finite("current_A", current_A, core.InputTypeError), out),
                   "cell_voltage_at")
        return out[0]

    def run_segment(self, fields: Mapping[str, float], sample_interval_s: float = 0.0,
                    max_samples: int = 4096, sample_budget: int | None = None):
        """Run one segment in C. Returns (result dict, samples array).

        Samples are written every sample_interval_s and at the end; a long
        segment is resumed transparently when the sample buffer fills, unless
        sample_budget samples are in hand: then it ends there, stop reason
        "buffer_full" (what a caller bounding its memory needs)."""
        if not SEGMENT_FIELDS.issuperset(fields):
            unknown = sorted(set(fields) - SEGMENT_FIELDS)
            raise core.SegmentError(f"unknown segment field(s): {', '.join(unknown)}; "
                                    f"known: {', '.join(sorted(SEGMENT_FIELDS))}")
        seg = self._segment
        # Checked here, cheaply (this is called once per protocol step), so that an
        # error names its field; the core checks the same again and stays safe alone.
        for name in _SEGMENT_INTS:
            value = fields.get(name, 0)
            if type(value) is not int:
                raise core.SegmentError(f"{name}: expected an int, got {value!r}")
            setattr(seg, name, value)
        for name in _SEGMENT_FLOATS:
            value = fields.get(name, 0.0)
            if type(value) is not float or not isfinite(value):
                value = core._finite(name, value, core.SegmentError)
            setattr(seg, name, value)
        seg.sample_interval_s = core._finite("sample_interval_s", sample_interval_s, core.SegmentError)
        n_buf = max_samples if sample_interval_s > 0 else 0
        buf = ffi.new("cell_sample_t[]", n_buf) if n_buf > 0 else ffi.NULL
        result = self._result
        chunks = []
        elapsed = charge = 0.0
        steps = n_samples = 0
        while True:
            code = lib.cell_run_segment(self.params, self.state, seg, buf, n_buf, result)
            if code:
                core.check(code, "cell_run_segment")
            if result.n_samples:
                raw = ffi.buffer(buf, result.n_samples * ffi.sizeof("cell_sample_t"))
                chunks.append(np.frombuffer(raw, dtype=SAMPLE_DTYPE).copy())
                n_samples += result.n_samples
            elapsed += result.elapsed_s
            charge += result.charge_C
            steps += result.n_steps
            if result.stop_reason != lib.CELL_STOP_BUFFER_FULL:
                break
            if sample_budget is not None and n_samples >= sample_budget:
                break
            # resume with what is left of the duration and of the charge
            seg.duration_s = seg.duration_s - result.elapsed_s
            if seg.use_stop_charge:
                seg.stop_charge_C = seg.stop_charge_C - abs(result.charge_C)
        samples = np.concatenate(chunks) if len(chunks) > 1 else chunks[0] if chunks else _NO_SAMPLES
        return ({"stop_reason": core.STOP_REASONS[result.stop_reason], "elapsed_s": elapsed,
                 "charge_C": charge, "n_steps": steps}, samples)

    # ---- faults (the twin side of fault injection) ------------------------

    def inject_short(self, resistance_ohm: float) -> None:
        """An internal short of the given resistance across the cell."""
        value = core._finite("resistance_ohm", resistance_ohm)
        if value <= 0:
            raise core.CoreParameterError(f"resistance_ohm = {value}: must be > 0")
        self.state.short_ohm = value

    def clear_short(self) -> None:
        self.state.short_ohm = 0.0

    def crack_now(self) -> None:
        """The protective layer cracks at once (as if fully damaged)."""
        self.state.layer_damage = 1.0
        self.state.layer_cracked = 1

    def set_ambient_c(self, ambient_c: float) -> None:
        self.state.ambient_K = _ambient_K(ambient_c)

    def set_temperature_c(self, temperature_c: float) -> None:
        """Put the cell itself at a temperature (e.g. after storage)."""
        self.state.temperature_K = _ambient_K(temperature_c)

    # ---- reading the state ------------------------------------------------

    def snapshot(self):
        copy = ffi.new("cell_state_t *")
        ffi.memmove(copy, self.state, ffi.sizeof("cell_state_t"))
        return copy

    def restore(self, snapshot) -> None:
        ffi.memmove(self.state, snapshot, ffi.sizeof("cell_state_t"))

    @property
    def t_s(self) -> float:
        return self.state.t_s

    @property
    def voltage_V(self) -> float:
        return self.state.voltage_V

    @property
    def temperature_c(self) -> float:
        return self.state.temperature_K - KELVIN

    @property
    def plated_uAh(self) -> float:
        """Lithium on the negative electrode (metal + alloy), µAh."""
        return (self.state.li_metal_mol + self.state.li_alloy_mol) * UAH_PER_MOL

    @property
    def metal_uAh(self) -> float:
        return self.state.li_metal_mol * UAH_PER_MOL

    @property
    def lithium_lost_uAh(self) -> float:
        return (self.state.li_dead_mol + self.state.li_precipitated_mol) * UAH_PER_MOL

    @property
    def lithium_total_mol(self) -> float:
        out = ffi.new("double *")
        core.check(lib.cell_lithium_total_mol(self.state, out), "cell_lithium_total_mol")
        return out[0]

    def lithium_change(self, start_mol: float) -> float:
        """The change of the cell's total lithium since start_mol, relative to it (round-off
        only, the model conserves lithium); absolute, in mol, for a cell that held none."""
        change = abs(self.lithium_total_mol - start_mol)
        return change / start_mol if start_mol > 0.0 else change

    @property
    def li_to_s(self) -> float:
        """Li:S atom ratio of the dissolved catholyte (0 = S8, 0.25 = Li2S8, 1 = Li2S2)."""
        return self.state.li_catholyte_mol / self.state.s_catholyte_mol

    @property
    def layer_damage(self) -> float:
        return self.state.layer_damage

    @property
    def layer_cracked(self) -> bool:
        return bool(self.state.layer_cracked)

    def critical_current_A_cm2(self, temperature_c: float | None = None) -> float:
        T = self.state.temperature_K if temperature_c is None else _ambient_K(temperature_c)
        out = ffi.new("double *")
        core.check(lib.cell_critical_current_A_cm2(self.params, T, out), "cell_critical_current_A_cm2")
        return out[0]

    def as_dict(self) -> dict:
        return {name: getattr(self.state, name) for name in core.STATE_FIELDS}


def _sample_dtype() -> np.dtype:
    fields = ffi.typeof("cell_sample_t").fields
    return np.dtype({"names": [n for n, _ in fields], "formats": ["<f8"] * len(fields),
                     "offsets": [f.offset for _, f in fields],
                     "itemsize": ffi.sizeof("cell_sample_t")})


SAMPLE_DTYPE = _sample_dtype()
_NO_SAMPLES = np.zeros(0, dtype=SAMPLE_DTYPE)
_NO_SAMPLES.flags.writeable = False
_SEGMENT_INTS = ("mode", "use_stop_voltage", "use_stop_current", "use_stop_charge",
                 "use_compliance", "use_safety_voltage", "use_safety_temperature", "use_current_limit")
_SEGMENT_FLOATS = ("current_A", "voltage_V", "duration_s", "stop_voltage_V", "stop_current_A",
                   "stop_charge_C", "compliance_max_V", "compliance_min_V", "safety_max_V",
                   "safety_min_V", "safety_max_temperature_K", "current_limit_A")
SEGMENT_FIELDS = frozenset(_SEGMENT_INTS + _SEGMENT_FLOATS)
