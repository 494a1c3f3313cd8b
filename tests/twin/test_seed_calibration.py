"""The twin against the seed's measured examples, open loop.

The protocols and observations come from tests/data/seed_examples.toml (the seed
patent's EXAMPLES as data); the model runs on the shipped parameter sets.
Run: .venv/bin/python -m pytest tests/twin/test_seed_calibration.py
"""
import pytest

from twin.cell import Cell
from twin.parameters import load_parameter_set
from twin.protocol import Protocol, charge
from twin.simulate import simulate

from seed_examples import seed_examples


def seed_protocol(name: str) -> Protocol:
    return Protocol.parse(seed_examples()[name]["protocol"], name=name)


def lithium_total(result) -> None:
    assert result.summary["lithium_conservation_error"] < 1e-9


def test_d042_one_hour_at_100_uA_plates_a_uniform_film_under_intact_glass():
    result = simulate(load_parameter_set("d111"), seed_protocol("D042"))
    assert result.summary["plated_uAh_max"] >= 95.0
    assert result.column("plated_Li_uAh")[-1] >= 95.0
    assert not result.summary["layer_cracked"]
    assert result.summary["layer_damage"] == 0.0


def test_control_without_lipon_keeps_no_lithium_on_the_copper():
    result = simulate(load_parameter_set("control_no_lipon"), seed_protocol("control_no_lipon"))
    assert result.column("plated_Li_uAh")[-1] < 1.0
    # charge went in (the cycler saw current) but the Li was consumed by polysulfide
    assert result.summary["charge_in_uAh"] == pytest.approx(100.0, rel=1e-9)
    # "by voltage": the cell never reaches the Li-S plateau a plated cell shows
    assert result.column("voltage_V").max() < 1.0


def test_d111_strip_returns_between_the_seed_minimum_and_all_plated():
    d111 = seed_examples()["D111"]
    result = simulate(load_parameter_set("d111"), seed_protocol("D111"))
    s = result.summary
    assert d111["strip_uAh_min"] <= s["stripped_uAh"] <= d111["plated_initial_uAh"]
    assert not s["layer_cracked"]
    # as the seed counts it: all discharge over all charge >= 98.1 %
    assert s["retained_fraction"] >= d111["retained_fraction_min"]
    # the last two steps (the strip) ended on the 2.0 V cut-off
    assert [st["stop_reason"] for st in result.steps[-2:]] == ["voltage", "voltage"]
    assert s["final_voltage_V"] == pytest.approx(2.0, abs=1e-3)
    lithium_total(result)


def test_d049_end_of_discharge_voltage_drifts_less_than_5_percent_over_100_cycles():
    result = simulate(load_parameter_set("d111"), seed_protocol("D049"))
    ends = [st["end_voltage_V"] for st in result.steps if st["charge_uAh"] < 0]
    assert len(ends) == 100
    drift = (max(ends) - min(ends)) / ends[0]
    assert drift < 0.05
    assert not result.summary["layer_cracked"]
    lithium_total(result)


def test_plating_at_1_mA_cm2_without_wetting_layer_cracks_within_the_first_hour():
    params = load_parameter_set("no_wetting_layer")
    cell = Cell(params)
    cracked_at_s = None
    for minute in range(60):
        cell.run_segment(charge(1e-3, 60.0).segment_fields())
        if cell.layer_cracked and cracked_at_s is None:
            cracked_at_s = cell.t_s
    assert cracked_at_s is not None and cracked_at_s <= 3600.0


def test_after_a_crack_lithium_is_lost_faster_than_on_an_intact_cell():
    params = load_parameter_set("no_wetting_layer")
    cracked, intact = Cell(params), Cell(params)
    cracked.run_segment(charge(1e-3, 1800.0).segment_fields())        # too fast: cracks
    intact.run_segment(charge(100e-6, 18000.0).segment_fields())      # same charge, gently
    assert cracked.layer_cracked and not intact.layer_cracked
    lost_before = (cracked.lithium_lost_uAh, intact.lithium_lost_uAh)
    metal_before = (cracked.metal_uAh, intact.metal_uAh)
    for cell in (cracked, intact):
        cell.run_segment({"mode": 2, "duration_s": 3600.0})             # rest an hour
    lost = (cracked.lithium_lost_uAh - lost_before[0], intact.lithium_lost_uAh - lost_before[1])
    assert lost[1] == 0.0
    assert lost[0] > 0.1
    assert cracked.metal_uAh < metal_before[0] - 1.0                   # self-discharge
    assert intact.metal_uAh == pytest.approx(metal_before[1], rel=1e-12)


def test_lithium_is_conserved_over_every_shipped_protocol_and_set():
    for set_name in ("d111", "no_wetting_layer", "control_no_lipon", "al_wetting_layer"):
        for example in ("D042", "D049", "D111", "control_no_lipon"):
            result = simulate(load_parameter_set(set_name), seed_protocol(example))
            lithium_total(result)


def test_more_current_means_more_overpotential():
    cell = Cell(load_parameter_set("d111"))
    cell.run_segment(charge(100e-6, 3600.0).segment_fields())
    currents = [-200e-6, -100e-6, -10e-6, 0.0, 10e-6, 100e-6, 200e-6]
    volts = [cell.voltage_at(i) for i in currents]
    assert volts == sorted(volts)
    ocv = cell.voltage_at(0.0)
    assert volts[-1] - ocv > volts[-2] - ocv > volts[-3] - ocv > 0
    assert ocv - volts[0] > ocv - volts[1] > ocv - volts[2] > 0


def test_warmer_cell_has_lower_layer_resistance():
    params = load_parameter_set("d111")
    drops = []
    for ambient in (0.0, 25.0, 45.0):
        cell = Cell(params, ambient_c=ambient)
        cell.run_segment(charge(100e-6, 3600.0).segment_fields())
        drops.append(cell.voltage_at(100e-6) - cell.voltage_at(0.0))
        assert cell.state.layer_factor > 0
    assert drops[0] > drops[1] > drops[2]
    cold, warm = Cell(params, ambient_c=0.0), Cell(params, ambient_c=45.0)
    assert cold.state.layer_factor > 1.0 > warm.state.layer_factor


def test_cold_lowers_the_critical_plating_density():
    cell = Cell(load_parameter_set("no_wetting_layer"))
    densities = [cell.critical_current_A_cm2(t) for t in (-10.0, 0.0, 25.0, 45.0)]
    assert densities == sorted(densities)
    # DESIGN: without a wetting layer the critical density lies in 0.1..1 mA/cm2 at 25 °C
    assert 1e-4 < densities[2] < 1e-3
    with_wetting = Cell(load_parameter_set("al_wetting_layer"))
    assert with_wetting.critical_current_A_cm2(25.0) > densities[2]


def test_same_inputs_give_identical_results():
    params = load_parameter_set("d111")
    a = simulate(params, seed_protocol("D111"), seed=7)
    b = simulate(params, seed_protocol("D111"), seed=7)
    assert (a.table == b.table).all()
    assert {k: v for k, v in a.summary.items() if k != "wall_seconds"} == \
           {k: v for k, v in b.summary.items() if k != "wall_seconds"}
