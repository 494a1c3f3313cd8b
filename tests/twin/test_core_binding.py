"""The cffi binding (twin/core.py, twin/cell.py): every refusal raises its own
exception naming what was wrong and leaves the cell's state byte for byte as it
was; the numpy state dtype is the C struct; a numpy fleet steps in C exactly as
single cells do.

Run: .venv/bin/python -m pytest tests/twin/test_core_binding.py -q
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from twin import core
from twin._core import ffi, lib
from twin.cell import SAMPLE_DTYPE, Cell
from twin.parameters import load_parameter_set

UA = 1e-6


_D111 = dict(load_parameter_set("d111").values)


def d111_values() -> dict:
    """make_params' mapping (every scalar field plus the ocv_x/ocv_V lists),
    a fresh copy for each use."""
    return {name: list(v) if isinstance(v, (list, tuple)) else v for name, v in _D111.items()}


def state_bytes(cell: Cell) -> bytes:
    return bytes(ffi.buffer(cell.state, ffi.sizeof("cell_state_t")))


@pytest.fixture
def formed():
    """A d111 cell after 10 min at 100 uA: lithium on the copper, RC charged."""
    cell = Cell(d111_values())
    cell.run_segment({"mode": core.MODE_CURRENT, "current_A": 100 * UA, "duration_s": 600.0})
    return cell


# ---- status codes -> exceptions ----------------------------------------------

@pytest.mark.parametrize("code, exc, name", [
    (lib.CELL_ERR_NULL, core.TwinError, "CELL_ERR_NULL"),
    (lib.CELL_ERR_NOT_FINITE, core.NotFiniteError, "CELL_ERR_NOT_FINITE"),
    (lib.CELL_ERR_PARAM, core.CoreParameterError, "CELL_ERR_PARAM"),
    (lib.CELL_ERR_DT, core.TimeStepError, "CELL_ERR_DT"),
    (lib.CELL_ERR_SEGMENT, core.SegmentError, "CELL_ERR_SEGMENT"),
    (lib.CELL_ERR_STATE, core.StateError, "CELL_ERR_STATE"),
    (lib.CELL_ERR_DIVERGED, core.DivergedError, "CELL_ERR_DIVERGED"),
    (lib.CELL_ERR_LENGTH, core.LengthError, "CELL_ERR_LENGTH"),
])
def test_check_raises_the_exception_of_each_code(code, exc, name):
    with pytest.raises(exc) as info:
        core.check(code, "cell_something")
    assert type(info.value) is exc
    message = str(info.value)
    assert message.startswith("cell_something: ") and name in message and str(code) in message


def test_check_passes_ok_and_maps_unknown_codes_to_the_base_error():
    assert core.check(lib.CELL_OK, "x") is None
    with pytest.raises(core.TwinError, match="unknown error"):
        core.check(-99, "x")


def test_exceptions_also_are_the_builtins_they_resemble():
    assert issubclass(core.CoreParameterError, ValueError)
    assert issubclass(core.NotFiniteError, ValueError)
    assert issubclass(core.TimeStepError, ValueError)
    assert issubclass(core.SegmentError, ValueError)
    assert issubclass(core.LengthError, ValueError)
    assert issubclass(core.StateError, RuntimeError)
    assert issubclass(core.DivergedError, ArithmeticError)


# ---- make_params --------------------------------------------------------------

def test_make_params_accepts_d111_and_fills_every_field():
    values = d111_values()
    p = core.make_params(values)
    for name in core.PARAM_SCALARS:
        assert getattr(p, name) == values[name]
    assert p.n_ocv_points == len(values["ocv_x"])
    assert list(p.ocv_V[0:p.n_ocv_points]) == list(values["ocv_V"])


def test_make_params_refuses_an_unknown_field_by_name():
    values = d111_values() | {"layer_thicknes_A": 1500.0}
    with pytest.raises(core.CoreParameterError, match="layer_thicknes_A"):
        core.make_params(values)


@pytest.mark.parametrize("name", core.PARAM_SCALARS + ("ocv_x", "ocv_V"))
def test_make_params_refuses_a_missing_field_by_name(name):
    values = d111_values()
    del values[name]
    with pytest.raises(core.CoreParameterError, match=rf"missing .*\b{name}\b"):
        core.make_params(values)


@pytest.mark.parametrize("name", core.PARAM_SCALARS)
@pytest.mark.parametrize("bad", ["1.0", None, True, [1.0]])
def test_make_params_refuses_a_non_number_by_name(name, bad):
    values = d111_values() | {name: bad}
    with pytest.raises(core.CoreParameterError, match=rf"^{name}: expected a number"):
        core.make_params(values)


@pytest.mark.parametrize("name", core.PARAM_SCALARS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_make_params_refuses_a_non_finite_value_by_name(name, bad):
    values = d111_values() | {name: bad}
    with pytest.raises(core.NotFiniteError, match=rf"^{name}: .* is not finite"):
        core.make_params(values)


@pytest.mark.parametrize("name", core.PARAM_SCALARS)
def test_make_params_refuses_an_out_of_range_value_by_name(name):
    # every field's range starts at or above 0
    values = d111_values() | {name: -1.0}
    with pytest.raises(core.CoreParameterError,
                       match=rf"cell parameter {name} = -1\.0 is outside its physical range"):
        core.make_params(values)


@pytest.mark.parametrize("change, exc, pattern", [
    ({"ocv_x": "0.0 0.5"}, core.CoreParameterError, "lists of equal length"),
    ({"ocv_x": [0.0, 0.5]}, core.CoreParameterError, "lists of equal length"),
    ({"ocv_x": [0.0], "ocv_V": [2.5]}, core.CoreParameterError, "2..24 points, got 1"),
    ({"ocv_x": [i / 25 for i in range(25)], "ocv_V": [2.5] * 25}, core.CoreParameterError,
     "2..24 points, got 25"),
    ({"ocv_x": [0.0, math.nan, 1.0], "ocv_V": [2.5, 2.3, 2.0]}, core.NotFiniteError, r"ocv_x\[1\]"),
    ({"ocv_x": [0.0, 0.5, 1.0], "ocv_V": [2.5, "2.3", 2.0]}, core.CoreParameterError, r"ocv_V\[1\]"),
    ({"ocv_x": [0.0, 0.5, 0.5], "ocv_V": [2.5, 2.3, 2.0]}, core.CoreParameterError,
     "cell parameter ocv_x = 'see table' is outside"),
    ({"ocv_x": [0.0, 0.5, 1.0], "ocv_V": [2.5, 0.0, 2.0]}, core.CoreParameterError,
     "cell parameter ocv_V = 'see table' is outside"),
])
def test_make_params_refuses_a_bad_ocv_table(change, exc, pattern):
    with pytest.raises(exc, match=pattern):
        core.make_params(d111_values() | change)


# ---- Cell: construction -------------------------------------------------------

def test_cell_accepts_a_mapping_and_refuses_anything_else():
    assert Cell(d111_values()).li_to_s == pytest.approx(0.25)
    with pytest.raises(TypeError, match="ParameterSet or a mapping"):
        Cell(42)


@pytest.mark.parametrize("ambient_c, exc", [
    (math.nan, core.NotFiniteError), (math.inf, core.NotFiniteError),
    (-130.0, core.CoreParameterError), (230.0, core.CoreParameterError),
    ("25", core.CoreParameterError),
])
def test_cell_refuses_a_bad_ambient(ambient_c, exc):
    with pytest.raises(exc, match="ambient_c"):
        Cell(d111_values(), ambient_c=ambient_c)


# ---- Cell: every refusal leaves the state as it was ---------------------------

@pytest.mark.parametrize("current_A, dt_s, exc, pattern", [
    (math.nan, 1.0, core.NotFiniteError, "current_A"),
    (math.inf, 1.0, core.NotFiniteError, "current_A"),
    ("1e-4", 1.0, core.InputTypeError, "current_A"),
    (1e-4, "1", core.InputTypeError, "dt_s"),
    (1e-4, 0.0, core.TimeStepError, "dt_s"),
    (1e-4, -1.0, core.TimeStepError, "dt_s"),
    (1e-4, math.nan, core.NotFiniteError, "dt_s"),
    (1e-4, math.inf, core.NotFiniteError, "dt_s"),
])
def test_step_refusals(formed, current_A, dt_s, exc, pattern):
    before = state_bytes(formed)
    with pytest.raises(exc, match=pattern):
        formed.step(current_A, dt_s)
    assert state_bytes(formed) == before


def test_step_refuses_an_inconsistent_state_and_leaves_it(formed):
    formed.state.li_metal_mol = -1e-12
    before = state_bytes(formed)
    with pytest.raises(core.StateError, match="cell_step: CELL_ERR_STATE"):
        formed.step(1e-4, 1.0)
    with pytest.raises(core.StateError, match="cell_voltage_at"):
        formed.voltage_at(0.0)
    with pytest.raises(core.StateError, match="cell_run_segment"):
        formed.run_segment({"mode": core.MODE_REST, "duration_s": 1.0})
    assert state_bytes(formed) == before


def test_voltage_at_refuses_nan_and_changes_nothing(formed):
    before = state_bytes(formed)
    with pytest.raises(core.NotFiniteError, match="current_A"):
        formed.voltage_at(math.nan)
    assert formed.voltage_at(100 * UA) > formed.voltage_at(0.0) > formed.voltage_at(-100 * UA)
    assert state_bytes(formed) == before


CC = {"mode": core.MODE_CURRENT, "current_A": 100 * UA, "duration_s": 60.0}


@pytest.mark.parametrize("change, kwargs, exc, pattern", [
    ({"current_A": math.nan}, {}, core.NotFiniteError, "current_A"),
    ({"duration_s": math.inf}, {}, core.NotFiniteError, "duration_s"),
    ({"stop_voltage_V": math.nan}, {}, core.NotFiniteError, "stop_voltage_V"),
    ({"current_A": "big"}, {}, core.SegmentError, "current_A"),
    ({"curent_A": 1e-4}, {}, core.SegmentError, "unknown segment field.*curent_A"),
    ({"mode": 0.5}, {}, core.SegmentError, "mode: expected an int"),
    ({"use_stop_voltage": "1"}, {}, core.SegmentError, "use_stop_voltage: expected an int"),
    ({}, {"sample_interval_s": math.nan}, core.NotFiniteError, "sample_interval_s"),
    ({"duration_s": 0.0}, {}, core.SegmentError, "CELL_ERR_SEGMENT"),
    ({"duration_s": -1.0}, {}, core.SegmentError, "CELL_ERR_SEGMENT"),
    ({"mode": 9}, {}, core.SegmentError, "CELL_ERR_SEGMENT"),
    ({"mode": core.MODE_VOLTAGE, "voltage_V": 0.0}, {}, core.SegmentError, "CELL_ERR_SEGMENT"),
    ({"mode": core.MODE_VOLTAGE, "voltage_V": 12.0}, {}, core.SegmentError, "CELL_ERR_SEGMENT"),
    ({"use_stop_voltage": 1, "stop_voltage_V": 0.0}, {}, core.SegmentError, "CELL_ERR_SEGMENT"),
    ({"use_stop_current": 1, "stop_current_A": -1e-6}, {}, core.SegmentError, "CELL_ERR_SEGMENT"),
    ({"use_stop_charge": 1, "stop_charge_C": 0.0}, {}, core.SegmentError, "CELL_ERR_SEGMENT"),
    ({}, {"sample_interval_s": -1.0}, core.LengthError, "CELL_ERR_LENGTH"),
    ({}, {"sample_interval_s": 1.0, "max_samples": 1}, core.LengthError, "CELL_ERR_LENGTH"),
])
def test_run_segment_refusals(formed, change, kwargs, exc, pattern):
    before = state_bytes(formed)
    with pytest.raises(exc, match=pattern):
        formed.run_segment(CC | change, **kwargs)
    assert state_bytes(formed) == before


@pytest.mark.parametrize("method, value, exc", [
    ("inject_short", 0.0, core.CoreParameterError),
    ("inject_short", -5.0, core.CoreParameterError),
    ("inject_short", math.nan, core.NotFiniteError),
    ("set_ambient_c", math.nan, core.NotFiniteError),
    ("set_ambient_c", 300.0, core.CoreParameterError),
    ("set_temperature_c", -200.0, core.CoreParameterError),
    ("set_temperature_c", math.inf, core.NotFiniteError),
    ("critical_current_A_cm2", math.nan, core.NotFiniteError),
    ("critical_current_A_cm2", 400.0, core.CoreParameterError),
])
def test_setter_refusals(formed, method, value, exc):
    before = state_bytes(formed)
    with pytest.raises(exc):
        getattr(formed, method)(value)
    assert state_bytes(formed) == before


def test_faults_and_setters_act(formed):
    formed.inject_short(500.0)
    assert formed.state.short_ohm == 500.0
    formed.step(0.0, 1.0)
    assert formed.state.short_current_A > 0.0  # the short discharges the cell
    formed.clear_short()
    assert formed.state.short_ohm == 0.0
    formed.crack_now()
    assert formed.layer_cracked and formed.layer_damage == 1.0
    formed.set_ambient_c(-10.0)
    assert formed.state.ambient_K == pytest.approx(263.15)
    assert formed.critical_current_A_cm2(-10.0) < formed.critical_current_A_cm2(25.0)


def test_snapshot_restore_is_exact(formed):
    snap = formed.snapshot()
    before = state_bytes(formed)
    formed.step(100 * UA, 30.0)
    assert state_bytes(formed) != before
    formed.restore(snap)
    assert state_bytes(formed) == before


def test_sample_buffer_resume_matches_one_big_buffer():
    small, big = Cell(d111_values()), Cell(d111_values())
    seg = CC | {"duration_s": 500.0}
    r_small, s_small = small.run_segment(seg, sample_interval_s=10.0, max_samples=4)
    r_big, s_big = big.run_segment(seg, sample_interval_s=10.0, max_samples=4096)
    assert r_small["stop_reason"] == r_big["stop_reason"] == "time"
    assert len(s_small) == len(s_big) == 50
    assert s_small.dtype == SAMPLE_DTYPE
    np.testing.assert_allclose(s_small["t_s"], np.arange(1, 51) * 10.0, rtol=1e-12)
    np.testing.assert_allclose(s_small["voltage_V"], s_big["voltage_V"], rtol=1e-9)
    assert r_small["elapsed_s"] == pytest.approx(500.0, rel=1e-12)
    assert r_small["charge_C"] == pytest.approx(100 * UA * 500.0, rel=1e-12)
    assert small.state.li_metal_mol == pytest.approx(big.state.li_metal_mol, rel=1e-9)


def test_stop_charge_resumes_with_what_is_left():
    cell = Cell(d111_values())
    seg = CC | {"duration_s": 1e5, "use_stop_charge": 1, "stop_charge_C": 0.05}
    result, samples = cell.run_segment(seg, sample_interval_s=20.0, max_samples=8)
    assert result["stop_reason"] == "charge"
    assert result["charge_C"] == pytest.approx(0.05, rel=1e-9)
    assert result["elapsed_s"] == pytest.approx(500.0, rel=1e-9)
    assert samples["t_s"][-1] == pytest.approx(500.0, rel=1e-9)


# ---- the numpy state dtype ----------------------------------------------------

def test_state_dtype_is_the_c_struct():
    c_fields = ffi.typeof("cell_state_t").fields
    assert core.STATE_DTYPE.itemsize == ffi.sizeof("cell_state_t")
    assert core.STATE_DTYPE.names == tuple(name for name, _ in c_fields)
    kinds = {"double": np.dtype("<f8"), "int32_t": np.dtype("<i4"), "int64_t": np.dtype("<i8")}
    for name, field in c_fields:
        dtype, offset = core.STATE_DTYPE.fields[name][:2]
        assert offset == ffi.offsetof("cell_state_t", name), name
        assert dtype == kinds[field.type.cname], name
        assert dtype.itemsize == ffi.sizeof(field.type), name


def test_sample_dtype_is_the_c_struct():
    assert SAMPLE_DTYPE.itemsize == ffi.sizeof("cell_sample_t")
    for name, field in ffi.typeof("cell_sample_t").fields:
        assert SAMPLE_DTYPE.fields[name][1] == ffi.offsetof("cell_sample_t", name)
        assert field.type.cname == "double"


def test_a_state_read_through_numpy_is_the_cell_state(formed):
    row = np.frombuffer(state_bytes(formed), dtype=core.STATE_DTYPE)[0]
    for name in core.STATE_FIELDS:
        assert row[name] == getattr(formed.state, name), name


def test_numpy_fleet_steps_in_c_exactly_like_single_cells(formed):
    currents = np.array([100 * UA, -50 * UA, 0.0, 10 * UA, math.nan, 300 * UA])
    n = len(currents)
    start = state_bytes(formed)
    fleet = np.frombuffer(start * n, dtype=core.STATE_DTYPE).copy()
    fleet["temperature_K"][3] = 290.0  # one cell away from ambient
    singles = []
    for i in range(n):
        cell = Cell(d111_values())
        ffi.memmove(cell.state, fleet[i:i + 1].tobytes(), ffi.sizeof("cell_state_t"))
        singles.append(cell)
    status = np.full(n, 99, dtype=np.int32)

    for _ in range(5):
        code = lib.cell_fleet_step(formed.params, ffi.from_buffer("cell_state_t[]", fleet),
                                   ffi.from_buffer("double[]", currents), n, 2.5,
                                   ffi.from_buffer("int32_t[]", status))
        assert code == lib.CELL_ERR_NOT_FINITE
        assert status.tolist() == [0, 0, 0, 0, lib.CELL_ERR_NOT_FINITE, 0]
        for i, cell in enumerate(singles):
            if i != 4:
                cell.step(float(currents[i]), 2.5)

    for i, cell in enumerate(singles):
        assert fleet[i:i + 1].tobytes() == state_bytes(cell), f"cell {i}"
    assert fleet[4:5].tobytes() == start  # the NaN cell was left alone
    assert fleet["t_s"][0] == pytest.approx(formed.t_s + 12.5)
    assert fleet["li_metal_mol"][0] > fleet["li_metal_mol"][1]


def test_a_voltage_hold_holds_the_terminal_voltage_across_an_internal_short(formed):
    formed.inject_short(500.0)
    result, _ = formed.run_segment({"mode": core.MODE_VOLTAGE, "voltage_V": 2.36, "duration_s": 300.0})
    assert result["stop_reason"] == "time"
    assert formed.voltage_V == pytest.approx(2.36, abs=1e-3)
    # the source feeds the short too: about 2.36 V / 500 ohm on top of the cell's own current
    assert formed.state.short_current_A == pytest.approx(2.36 / 500.0, rel=1e-2)


def test_a_failing_segment_leaves_the_cell_as_it_was(formed):
    before = state_bytes(formed)
    formed.state.temperature_K = 499.999      # the next thermal step leaves the valid range
    formed.state.ambient_K = 499.999
    poisoned = state_bytes(formed)
    with pytest.raises(core.DivergedError):
        formed.run_segment({"mode": core.MODE_CURRENT, "current_A": 2e-3, "duration_s": 3600.0})
    assert state_bytes(formed) == poisoned != before
