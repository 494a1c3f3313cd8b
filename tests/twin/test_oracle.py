"""The compiled C core against tests/twin/oracle.py, its pure-Python twin written from
the C source: after each segment of a short protocol, every physical state
field, the segment results and the samples agree to 1e-9 relative, on d111, a
set with a wetting layer, one with no protective layer, a cracked layer and an
internal short.

Run: .venv/bin/python -m pytest tests/twin/test_oracle.py -q
"""
from __future__ import annotations

import math

import pytest

import oracle
from twin import core
from twin._core import ffi, lib
from twin.cell import Cell
from twin.parameters import load_parameter_set

UA = 1e-6
REL = 1e-9
AMBIENT_C = 25.0

# Caches of the step path: implementation details, not compared.
CACHE_FIELDS = {"ocv_index", "cache_dt_s", "rc_decay", "thermal_decay", "cache_ct_j_A_cm2",
                "cache_ct_T_K", "ct_overpotential_V"}
COMPARED = [name for name in core.STATE_FIELDS
            if name not in CACHE_FIELDS and not name.startswith("reserved")]


def values_of(name: str, **overrides) -> dict:
    values = dict(load_parameter_set(name).values)
    values.update(overrides)
    return values


def scale_of(field: str, total_li_mol: float) -> float:
    """Size below which a field's differences are judged absolutely: 1e-9 of a
    field that should be 0 but is 1e-25 is round-off, not disagreement."""
    if field.endswith("_mol"):
        return 1e-6 * total_li_mol
    if field.endswith("_K"):
        return 300.0
    if field.endswith("_C"):
        return 1e-3
    if field in ("current_A", "short_current_A"):
        return 1e-4
    if field == "short_ohm":
        return 1.0
    return 1.0  # volts, seconds, factors, damage


def mismatches(c_state, o_state: dict) -> list[str]:
    total = oracle.lithium_total_mol(o_state)
    bad = []
    for field in COMPARED:
        a, b = float(getattr(c_state, field)), float(o_state[field])
        if not abs(a - b) <= REL * max(abs(a), abs(b), scale_of(field, total)):
            bad.append(f"{field}: C {a!r} vs oracle {b!r}")
    return bad


def cc(current_A, duration_s, **extra):
    return {"mode": core.MODE_CURRENT, "current_A": current_A, "duration_s": duration_s} | extra


def until_2V(current_A, duration_s=1e5):
    return cc(current_A, duration_s, use_stop_voltage=1, stop_voltage_V=2.0)


REST_5MIN = {"mode": core.MODE_REST, "duration_s": 300.0}
# 20 mV above the voltage at rest: ~70 uA that fades as the catholyte's potential rises
HOLD = {"mode": core.MODE_VOLTAGE, "voltage_V": 2.36, "duration_s": 600.0,
        "use_stop_current": 1, "stop_current_A": 60 * UA}

# 10 uA 10 min, 100 uA 20 min, 3 x (discharge, charge) 100 uA 5 min,
# discharge to 2.0 V, rest, charge, hold; one segment sampled.
PROTOCOL = ([cc(10 * UA, 600.0), cc(100 * UA, 1200.0)]
            + [cc(-100 * UA, 300.0), cc(100 * UA, 300.0)] * 3
            + [until_2V(-100 * UA), REST_5MIN, cc(100 * UA, 900.0, sample_interval_s=60.0), HOLD])

# Without the protective layer, Li metal corrodes as fast as it plates and the
# core's step stays a few ms long (5 % of the coverage pool): a short protocol.
NO_LAYER_PROTOCOL = [cc(10 * UA, 120.0), cc(100 * UA, 120.0), cc(-100 * UA, 60.0),
                     until_2V(-100 * UA), {"mode": core.MODE_REST, "duration_s": 60.0},
                     {"mode": core.MODE_VOLTAGE, "voltage_V": 0.3, "duration_s": 20.0}]

# A 500 ohm short drains ~5 mA at 2.4 V: a few seconds of each kind after forming.
SHORT_PROTOCOL = [REST_5MIN | {"duration_s": 5.0}, cc(100 * UA, 5.0),
                  {"mode": core.MODE_VOLTAGE, "voltage_V": 2.2, "duration_s": 5.0},
                  cc(-100 * UA, 5.0, use_stop_voltage=1, stop_voltage_V=2.0)]


def run_both(values: dict, protocol, prepare=None, form_first=False):
    """Run the protocol through C and the oracle side by side; yield per segment
    (index, C result, oracle result, C samples, oracle samples, C cell, oracle state)."""
    cell = Cell(values, ambient_c=AMBIENT_C)
    p = oracle.params(values)
    state = oracle.cell_init(p, AMBIENT_C + 273.15)
    assert mismatches(cell.state, state) == []
    if form_first:
        cell.run_segment(cc(100 * UA, 1800.0))
        rc, _, _ = oracle.cell_run_segment(p, state, cc(100 * UA, 1800.0))
        assert rc == lib.CELL_OK
    if prepare:
        prepare(cell.state)
        prepare(state)
    for index, segment in enumerate(protocol):
        segment = dict(segment)
        interval = segment.pop("sample_interval_s", 0.0)
        c_result, c_samples = cell.run_segment(segment, sample_interval_s=interval)
        rc, o_result, o_samples = oracle.cell_run_segment(
            p, state, segment | {"sample_interval_s": interval}, max_samples=4096 if interval else 0)
        assert rc == lib.CELL_OK, f"segment {index}: oracle status {rc}"
        yield index, c_result, o_result, c_samples, o_samples, cell, state


def check_protocol(values, protocol, prepare=None, form_first=False):
    seen = []
    for index, c_result, o_result, c_samples, o_samples, cell, state in run_both(
            values, protocol, prepare, form_first):
        assert mismatches(cell.state, state) == [], f"after segment {index}"
        assert c_result["stop_reason"] == core.STOP_REASONS[o_result["stop_reason"]], index
        assert c_result["n_steps"] == o_result["n_steps"], index
        assert c_result["elapsed_s"] == pytest.approx(o_result["elapsed_s"], rel=REL, abs=1e-12)
        assert c_result["charge_C"] == pytest.approx(o_result["charge_C"], rel=REL, abs=1e-15)
        assert len(c_samples) == len(o_samples), index
        for c_row, o_row in zip(c_samples, o_samples):
            for field in oracle.SAMPLE_FIELDS:
                assert float(c_row[field]) == pytest.approx(o_row[field], rel=REL, abs=1e-18), field
        seen.append((c_result, len(c_samples), cell.as_dict()))
    return seen


# ---- agreement on the parameter sets and faults -------------------------------

def test_d111_agrees_and_the_protocol_does_what_it_says():
    seen = check_protocol(values_of("d111"), PROTOCOL)
    results = [r for r, _, _ in seen]
    assert [r["stop_reason"] for r in results] == ["time"] * 8 + ["voltage", "time", "time", "current"]
    assert seen[10][1] == 15  # the sampled segment: one sample a minute
    end_of_discharge = seen[8][2]
    assert end_of_discharge["voltage_V"] == pytest.approx(2.0, abs=1e-3)
    assert seen[-1][2]["voltage_V"] == pytest.approx(2.36, abs=2e-3)
    assert seen[-1][2]["current_A"] <= 60 * UA


# The channel's limits (a cycler's compliance, safety and hold current limit): a
# current it cannot take, compliance met on the supply rise, a discharge to the lower
# compliance, a limited hold to beyond compliance, a temperature and a voltage safety stop.
CHANNEL = {"use_compliance": 1, "compliance_max_V": 2.45, "compliance_min_V": 2.05}
LIMITS_PROTOCOL = [
    cc(1.0, 60.0) | CHANNEL,
    cc(200 * UA, 7200.0) | CHANNEL,
    cc(-200 * UA, 1e5) | CHANNEL,
    {"mode": core.MODE_VOLTAGE, "voltage_V": 10.0, "duration_s": 1e5, "use_current_limit": 1,
     "current_limit_A": 300 * UA, "sample_interval_s": 60.0} | CHANNEL,
    cc(2000 * UA, 600.0, use_safety_temperature=1, safety_max_temperature_K=AMBIENT_C + 273.15 + 0.1),
    {"mode": core.MODE_REST, "duration_s": 60.0, "use_safety_voltage": 1, "safety_max_V": 5.0,
     "safety_min_V": 2.5},
]


def test_channel_limits_agree_and_stop_where_they_say():
    seen = check_protocol(values_of("d111"), LIMITS_PROTOCOL, form_first=True)
    reasons = [r["stop_reason"] for r, _, _ in seen]
    assert reasons == ["compliance", "compliance", "compliance", "compliance", "safety_temperature",
                       "safety_voltage"]
    assert seen[0][0]["elapsed_s"] == 0.0
    assert seen[1][2]["voltage_V"] == pytest.approx(2.45, abs=1e-3)
    assert seen[2][2]["voltage_V"] == pytest.approx(2.05, abs=1e-3)
    assert seen[3][2]["current_A"] == 300 * UA and seen[3][1] > 1
    # a precursor: the jump to 20 mA passes compliance before the safety limit; at
    # -10 mA it is below the discharge compliance already; outside the window, safety
    window = CHANNEL | {"use_safety_voltage": 1, "safety_max_V": 2.6, "safety_min_V": -0.1}
    at_start = check_protocol(values_of("d111"), [cc(20e-3, 60.0) | window, cc(-10e-3, 60.0) | window,
                                                  cc(1e-4, 60.0) | window | {"safety_min_V": 0.2}])
    assert [r["stop_reason"] for r, _, _ in at_start] == ["compliance", "compliance", "safety_voltage"]
    assert all(r["elapsed_s"] == 0.0 for r, _, _ in at_start)


def test_wetting_layer_set_agrees():
    values = values_of("al_wetting_layer")
    assert values["wetting_capacity_uAh_cm2"] > 0
    seen = check_protocol(values, PROTOCOL)
    assert any(state["li_alloy_mol"] > 0 for _, _, state in seen)


def test_no_protective_layer_set_agrees():
    values = values_of("control_no_lipon")
    assert values["layer_thickness_A"] == 0.0
    seen = check_protocol(values, NO_LAYER_PROTOCOL)
    assert seen[-1][2]["li_corroded_C"] > 0  # bare Li metal corrodes
    assert seen[3][0]["stop_reason"] == "voltage" and seen[3][0]["n_steps"] == 0


def test_cracked_layer_agrees():
    def crack(state):
        if isinstance(state, dict):
            state["layer_damage"], state["layer_cracked"] = 1.0, 1
        else:
            state.layer_damage, state.layer_cracked = 1.0, 1
    seen = check_protocol(values_of("d111"), PROTOCOL, prepare=crack)
    final = seen[-1][2]
    assert final["li_corroded_C"] > 0 and final["charge_since_crack_C"] > 0


def test_internal_short_agrees():
    def short(state):
        if isinstance(state, dict):
            state["short_ohm"] = 500.0
        else:
            state.short_ohm = 500.0
    seen = check_protocol(values_of("d111"), SHORT_PROTOCOL, prepare=short, form_first=True)
    assert all(state["short_current_A"] > 0 for _, _, state in seen)


def test_damage_to_a_dendrite_short_agrees():
    """An overload cracks the layer, plating on past the crack shorts the cell."""
    protocol = [cc(100 * UA, 600.0), cc(2000 * UA, 300.0), cc(2000 * UA, 300.0)]
    seen = check_protocol(values_of("d111"), protocol)
    final = seen[-1][2]
    assert final["layer_cracked"] == 1 and final["short_ohm"] > 0


def test_cold_cell_agrees():
    """Away from the reference temperature every Arrhenius factor is in play."""
    def cold(state):
        if isinstance(state, dict):
            state["temperature_K"] = state["ambient_K"] = 268.15
        else:
            state.temperature_K = state.ambient_K = 268.15
    check_protocol(values_of("no_wetting_layer"), PROTOCOL[:4] + [PROTOCOL[-1]], prepare=cold)


# ---- single steps and the fleet ----------------------------------------------

def test_cell_step_and_fleet_step_agree():
    values = values_of("d111")
    p = oracle.params(values)
    cell = Cell(values)
    state = oracle.cell_init(p, 298.15)
    for k in range(40):
        current = (100 if k % 3 else -30) * UA
        cell.step(current, 7.3)
        assert oracle.cell_step(p, state, current, 7.3) == lib.CELL_OK
    assert mismatches(cell.state, state) == []

    currents = [100 * UA, -50 * UA, 0.0, math.nan]
    fleet = ffi.new("cell_state_t[]", len(currents))
    for i in range(len(currents)):
        ffi.memmove(ffi.addressof(fleet, i), cell.state, ffi.sizeof("cell_state_t"))
    states = [dict(state) for _ in currents]
    status = ffi.new("int32_t[]", len(currents))
    code = lib.cell_fleet_step(cell.params, fleet, ffi.new("double[]", currents), len(currents),
                               2.0, status)
    o_code, o_status = oracle.cell_fleet_step(p, states, currents, 2.0)
    assert code == o_code == lib.CELL_ERR_NOT_FINITE
    assert list(status) == o_status == [0, 0, 0, lib.CELL_ERR_NOT_FINITE]
    for i in range(len(currents)):
        assert mismatches(fleet[i], states[i]) == [], i


def test_refusals_agree():
    values = values_of("d111")
    p = oracle.params(values)
    state = oracle.cell_init(p, 298.15)
    before = dict(state)
    assert oracle.cell_step(p, state, math.nan, 1.0) == lib.CELL_ERR_NOT_FINITE
    assert oracle.cell_step(p, state, 1e-4, 0.0) == lib.CELL_ERR_DT
    assert oracle.cell_run_segment(p, state, cc(1e-4, 0.0))[0] == lib.CELL_ERR_SEGMENT
    assert oracle.cell_run_segment(p, state, {"mode": 7, "duration_s": 1.0})[0] == lib.CELL_ERR_SEGMENT
    assert oracle.cell_run_segment(p, state, cc(1e-4, 1.0, sample_interval_s=1.0),
                                   max_samples=1)[0] == lib.CELL_ERR_LENGTH
    assert state == before
    with pytest.raises(KeyError, match="curent_A"):
        oracle.cell_run_segment(p, state, {"curent_A": 1e-4, "duration_s": 1.0})


def test_voltage_at_agrees():
    values = values_of("al_wetting_layer")
    p = oracle.params(values)
    cell = Cell(values)
    state = oracle.cell_init(p, 298.15)
    cell.run_segment(cc(100 * UA, 600.0))
    oracle.cell_run_segment(p, state, cc(100 * UA, 600.0))
    for current in (-1e-3, -1e-5, 0.0, 1e-5, 1e-3):
        assert cell.voltage_at(current) == pytest.approx(
            oracle.cell_voltage_at(p, state, current), rel=REL)


# ---- the comparison can fail ---------------------------------------------------

@pytest.mark.parametrize("field, shows_in", [
    ("plating_loss_fraction", "li_dead_mol"),
    ("electrolyte_asr_ohm_cm2", "voltage_V"),
    ("anode_j0_A_cm2", "overpotential_V"),
])
def test_a_one_ppm_change_is_caught(field, shows_in):
    """The tolerance is tight enough to see a 1 ppm change in one parameter."""
    values = values_of("d111")
    p = oracle.params(values)
    p[field] *= 1 + 1e-6
    cell = Cell(values)
    state = oracle.cell_init(p, 298.15)
    cell.run_segment(cc(100 * UA, 600.0))
    oracle.cell_run_segment(p, state, cc(100 * UA, 600.0))
    assert any(m.startswith(shows_in + ":") for m in mismatches(cell.state, state))


def test_oracle_constants_are_the_c_ones():
    """A constant changed in C must be changed in the oracle too; this names it."""
    import re
    from pathlib import Path
    core_dir = Path(__file__).resolve().parents[2] / "c_core"
    defines = {}
    for path in sorted(core_dir.glob("*.[ch]")):
        for name, value in re.findall(r"^#define ([A-Z_]+) ([-+0-9.eE]+)\s*(?:/\*.*)?$",
                                      path.read_text(), flags=re.M):
            defines[name] = float(value)
    for name in ("FARADAY_C_MOL", "GAS_J_MOL_K", "BOLTZMANN_EV_K", "COULOMB_PER_UAH",
                 "ARRHENIUS_REFRESH_K", "CORE_MIN_DT_S", "CORE_ADAPTIVE_FLOOR_S", "ALLOY_SWITCH_FRACTION",
                 "BISECT_ITERATIONS", "CELL_MODE_CURRENT", "CELL_MODE_VOLTAGE", "CELL_MODE_REST"):
        ours = getattr(oracle, name.removeprefix("CELL_"))
        assert defines[name] == ours, f"{name}: C {defines[name]}, oracle {ours}"
    assert oracle.STATE_FIELDS == core.STATE_FIELDS
    assert oracle.SAMPLE_FIELDS == tuple(name for name, _ in ffi.typeof("cell_sample_t").fields)
