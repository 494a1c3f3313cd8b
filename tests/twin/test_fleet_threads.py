"""The fleet on every core and with per-cell parameters: a threaded step is the
same step bit for bit, a cell of a lot steps as a single cell of its own design,
and bad cells are named without stopping the others.
Run: .venv/bin/python -m pytest tests/twin/test_fleet_threads.py -q
"""
import numpy as np
import pytest

from twin import core
from twin.cell import Cell
from twin.fleet import CHUNK_CELLS, MIN_CELLS_PER_THREAD, PARAMS_DTYPE, Fleet, _crew
from twin.parameters import load_parameter_set

N_THREADED = 10 * MIN_CELLS_PER_THREAD + 17     # three threads, the last chunk short


@pytest.fixture(scope="module")
def d111():
    return load_parameter_set("d111")


def _spread_currents(n):
    return np.linspace(-20e-6, 150e-6, n)


def test_a_threaded_step_equals_a_single_threaded_one_bit_for_bit(d111):
    one = Fleet(d111, N_THREADED, threads=1)
    many = Fleet(d111, N_THREADED, threads=3)
    assert one._threads_used() == 1 and many._threads_used() == 3 and N_THREADED % CHUNK_CELLS
    currents = _spread_currents(N_THREADED)
    for _ in range(30):
        one.step(currents, 20.0)
        many.step(currents, 20.0)
    assert many.states.tobytes() == one.states.tobytes()
    assert one.plated_uAh[-1] > one.plated_uAh[len(one) // 2] > 0.0


def test_small_fleets_stay_on_one_thread_and_big_ones_use_every_thread(d111):
    assert Fleet(d111, MIN_CELLS_PER_THREAD, threads=8)._threads_used() == 1
    assert Fleet(d111, 3 * MIN_CELLS_PER_THREAD, threads=8)._threads_used() == 3
    assert Fleet(d111, 100 * MIN_CELLS_PER_THREAD, threads=2)._threads_used() == 2


def test_a_bad_cell_in_the_last_slice_keeps_its_state_and_is_named(d111):
    fleet = Fleet(d111, N_THREADED, threads=3)
    fleet.step(100e-6, 60.0)
    before = fleet.states.copy()
    currents = np.full(N_THREADED, 100e-6)
    bad = N_THREADED - 5
    currents[bad] = np.nan
    with pytest.raises(core.NotFiniteError, match=r"cells \[%d\]" % bad):
        fleet.step(currents, 1.0)
    assert fleet.states[bad].tobytes() == before[bad].tobytes()
    assert fleet.states[0]["t_s"] == before[0]["t_s"] + 1.0
    assert fleet.states[bad - 1]["t_s"] == before[bad - 1]["t_s"] + 1.0
    assert np.flatnonzero(fleet.last_status).tolist() == [bad]
    # a whole-call error after it names no cell from the step before
    with pytest.raises(core.TimeStepError, match=r"cells \[\]"):
        fleet.step(100e-6, 0.0)
    assert not fleet.last_status.any()


def test_each_cell_of_a_lot_steps_as_a_single_cell_of_its_own_design(d111):
    areas = np.array([0.8, 1.0, 1.2, 0.9])
    thickness = np.array([1200.0, 1500.0, 1800.0, 1000.0])
    ambients = np.array([10.0, 25.0, 40.0, 0.0])
    fleet = Fleet(d111, 4, ambient_c=ambients, threads=2,
                  per_cell={"area_cm2": areas, "layer_thickness_A": thickness})
    currents = np.array([100e-6, 80e-6, 120e-6, -1e-6])
    singles = [Cell(d111.with_overrides(area_cm2=float(a), layer_thickness_A=float(t)), ambient_c=float(c))
               for a, t, c in zip(areas, thickness, ambients)]
    for _ in range(40):
        fleet.step(currents, 15.0)
        for cell, current in zip(singles, currents):
            cell.step(float(current), 15.0)
    for i, cell in enumerate(singles):
        expected = np.frombuffer(core.ffi.buffer(cell.state, core.ffi.sizeof("cell_state_t")),
                                 dtype=core.STATE_DTYPE)[0]
        assert fleet.states[i].tobytes() == expected.tobytes(), f"cell {i}"
    assert fleet.cell_params.dtype == PARAMS_DTYPE
    assert fleet.cell_params["area_cm2"].tolist() == areas.tolist()
    assert fleet.states["temperature_K"][0] < fleet.states["temperature_K"][2]


def test_a_lot_derived_once_steps_as_one_checked_every_step_on_any_threads(d111):
    n = 2 * MIN_CELLS_PER_THREAD + 3
    rng = np.random.default_rng(7)
    spread = {"area_cm2": rng.uniform(0.8, 1.2, n), "layer_thickness_A": rng.uniform(1000.0, 2000.0, n)}
    derived = Fleet(d111, n, threads=2, per_cell=spread)     # parameters never handed out
    checked = Fleet(d111, n, threads=1, per_cell=spread)
    assert checked.cell_params["area_cm2"].tolist() == spread["area_cm2"].tolist()   # handed out
    currents = _spread_currents(n)
    for dt in [30.0, 1.0] * 10:
        derived.step(currents, dt)
        checked.step(currents, dt)
    assert derived._derived is not None and checked._derived is None
    assert derived.states.tobytes() == checked.states.tobytes()
    assert len(set(derived.states["voltage_V"].tolist())) > n // 2


def test_a_per_cell_parameter_edited_between_steps_is_checked_per_cell(d111):
    fleet = Fleet(d111, 3, per_cell={"area_cm2": [1.0, 1.0, 1.0]})
    fleet.step(100e-6, 10.0)
    before = fleet.states.copy()
    fleet.cell_params["heat_capacity_J_K"][1] = 0.0
    with pytest.raises(core.CoreParameterError, match=r"cell_fleet_step_each \(cells \[1\]\)"):
        fleet.step(100e-6, 10.0)
    assert fleet.states[1].tobytes() == before[1].tobytes()
    assert fleet.states[2]["t_s"] == pytest.approx(before[2]["t_s"] + 10.0, rel=1e-12)


@pytest.mark.parametrize("per_cell, error, text", [
    ({"area_cm2": [1.0, -1.0, 1.0]}, core.CoreParameterError, r"cell 1: area_cm2 = -1\.0"),
    ({"area_cm2": [1.0, 1.0]}, core.LengthError, r"2 values for 3 cells"),
    ({"area_cm2": [1.0, np.nan, 1.0]}, core.NotFiniteError, r"per_cell\['area_cm2'\]\[1\]"),
    ({"ocv_x": [0.0, 1.0, 2.0]}, core.CoreParameterError, r"not a scalar cell parameter"),
    ({"area": [1.0, 1.0, 1.0]}, core.CoreParameterError, r"'area' is not a scalar"),
])
def test_bad_per_cell_parameters_are_refused_by_name(d111, per_cell, error, text):
    with pytest.raises(error, match=text):
        Fleet(d111, 3, per_cell=per_cell)


def test_bad_fleet_shapes_are_refused(d111):
    with pytest.raises(core.LengthError, match="threads"):
        Fleet(d111, 3, threads=0)
    with pytest.raises(core.LengthError, match="ambient_c: 2 values for 3 cells"):
        Fleet(d111, 3, ambient_c=[10.0, 20.0])
    with pytest.raises(core.CoreParameterError, match="ambient_c"):
        Fleet(d111, 2, ambient_c=[10.0, 500.0])


def test_the_crew_runs_jobs_on_their_own_threads_and_hands_back_a_helpers_exception():
    import threading
    crew = _crew(2)
    assert crew.run([threading.get_ident] * 3)[0] == threading.get_ident()
    assert len(set(crew.run([threading.get_ident] * 3))) == 3

    def fails():
        raise ValueError("in a helper")
    with pytest.raises(ValueError, match="in a helper"):
        crew.run([lambda: 1, fails, lambda: 3])
    assert crew.run([lambda: 1, lambda: 2, lambda: 3]) == [1, 2, 3]
    assert not crew.broken and _crew(2) is crew
    crew.broken = True                  # as after a wait cut short: replaced
    assert _crew(2) is not crew
