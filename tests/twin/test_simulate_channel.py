"""`simulate` on a cycler channel (twin/simulate.py, twin/cycler.py): compliance ends
a step, a safety limit the run, a hold has a current limit, stripped charge counts
lithium only, bounds on time and rows end a run cleanly -- each case the issue
names, on the real C core. Results inside the cell's normal range do not change.

Run: .venv/bin/python -m pytest tests/twin/test_simulate_channel.py -q
"""
import numpy as np
import pytest

from twin import simulate as simulate_module
from twin.cycler import Cycler, CyclerError, load_cycler
from twin.parameters import load_parameter_set
from twin.protocol import Protocol
from twin.simulate import SimulationError, simulate

from seed_examples import seed_examples

D111 = load_parameter_set("d111")
CHANNEL = Cycler.for_cell(D111)
LAB = load_cycler("lab_5v", D111)
FORM = "Charge at 10 uA for 10 minutes\nCharge at 100 uA for 2 hours\n"


def run(text, cycler=CHANNEL, params=D111, **kw):
    return simulate(params, Protocol.parse(text), cycler=cycler, **kw)


@pytest.mark.parametrize("name", ["D042", "D049", "D111", "control_no_lipon"])
def test_the_seed_protocols_are_unchanged_on_the_default_channel(name):
    example = seed_examples()[name]
    params = load_parameter_set("control_no_lipon" if name == "control_no_lipon" else "d111")
    ideal = simulate(params, Protocol.parse(example["protocol"]))
    channel = simulate(params, Protocol.parse(example["protocol"]), cycler=Cycler.for_cell(params))
    assert np.array_equal(ideal.table, channel.table)
    assert channel.summary["complete"] and "compliance" not in channel.summary["stop_reasons"]


def test_a_20_mA_charge_meets_compliance_at_once_instead_of_8_V():
    r = run("Charge at 20 mA for 1 hour")
    assert r.steps[0]["stop_reason"] == "compliance" and r.steps[0]["elapsed_s"] == 0.0
    assert r.summary["complete"] and r.summary["max_voltage_V"] < CHANNEL["compliance_max_V"]


def test_an_overcharge_stops_on_compliance_and_the_protocol_goes_on():
    r = run(FORM + "Charge at 100 uA for 10 hours\nRest for 10 minutes\n")
    assert [st["stop_reason"] for st in r.steps] == ["time", "time", "compliance", "time"]
    assert r.steps[2]["end_voltage_V"] == pytest.approx(CHANNEL["compliance_max_V"], abs=1e-3)
    assert r.summary["max_voltage_V"] <= CHANNEL["compliance_max_V"] + 1e-3
    assert r.summary["complete"]


@pytest.mark.parametrize("current", ["300 mA", "1 A"])
def test_a_current_beyond_the_channels_range_is_refused_before_running(current):
    with pytest.raises(CyclerError, match="above the channel's current range"):
        run("Charge at %s for 1 hour" % current)


def test_1_A_on_a_wide_channel_is_a_compliance_stop_not_a_traceback():
    wide = Cycler("wide", dict(LAB.values, current_range_A=2.0, hold_current_limit_A=2.0), LAB.sources)
    r = run("Charge at 1 A for 1 hour\nRest for 1 minute\n", cycler=wide)
    assert r.steps[0]["stop_reason"] == "compliance" and r.summary["complete"]


def test_a_hold_at_10_V_charges_at_the_hold_limit_and_never_diverges():
    r = run(FORM + "Hold at 10 V for 100 hours\n")
    hold = r.steps[-1]
    assert hold["stop_reason"] == "compliance"
    assert hold["end_voltage_V"] == pytest.approx(CHANNEL["compliance_max_V"], abs=1e-3)
    held = r.table[r.column("step") == 2]
    assert np.all(held[:, 3] <= CHANNEL["hold_current_limit_A"] * (1 + 1e-12))
    assert r.summary["peak_temperature_C"] < 30.0


def test_the_readme_hold_after_a_strip_stays_under_the_limit_and_ends_on_its_current():
    text = (FORM + "Repeat 20 times:\n    Discharge at 100 uA for 15 minutes\n    Charge at 100 uA for 15 minutes\n"
            "Discharge at 100 uA until 2.0 V\nRest for 1 hour\nHold at 2.6 V until 5 uA\n")
    r = run(text)
    hold = r.steps[-1]
    assert hold["stop_reason"] == "current"
    assert hold["elapsed_s"] < 24 * 3600                   # not the 1000 h cap
    assert r.summary["layer"] == "intact"
    held = r.table[r.column("step") == hold["index"]]
    assert held[:, 3].max() <= CHANNEL["hold_current_limit_A"] * (1 + 1e-12)


def test_an_unlimited_hold_after_a_strip_cracks_the_glass():
    # what the limit prevents: the same hold on an ideal source
    text = FORM + "Discharge at 100 uA until 2.0 V\nHold at 2.6 V for 2 hours\n"
    assert simulate(D111, Protocol.parse(text)).summary["layer_cracked"]
    assert not run(text).summary["layer_cracked"]


def test_a_discharge_of_the_shipped_cell_stops_at_once_and_never_reports_a_negative_voltage():
    r = run("Discharge at 10 mA for 1 hour")
    assert r.steps[0]["stop_reason"] == "compliance" and r.steps[0]["elapsed_s"] == 0.0
    assert r.summary["min_voltage_V"] > 0.0
    assert r.summary["stripped_uAh"] == 0.0 and r.summary["charge_out_uAh"] == 0.0


def test_an_over_discharge_counts_only_lithium_as_stripped():
    text = "Charge at 100 uA for 2 hours\nDischarge at 100 uA for 10 hours\n"
    wide = run(text, cycler=LAB)                       # compliance down to 0 V: oxidises copper
    s = wide.summary
    assert s["charge_out_uAh"] == pytest.approx(1000.0, rel=1e-9)
    assert s["stripped_uAh"] <= s["plated_uAh_max"] + 1e-9
    assert s["stripped_uAh"] + s["copper_oxidised_uAh"] == pytest.approx(1000.0, rel=1e-9)
    assert s["copper_oxidised_uAh"] > 790.0
    assert wide.steps[1]["lithium_stripped_uAh"] == pytest.approx(s["stripped_uAh"])
    default = run(text)                                # the default channel stops at 1.5 V
    assert default.steps[1]["stop_reason"] == "compliance"
    assert default.summary["copper_oxidised_uAh"] < 0.5


def test_a_safety_temperature_ends_the_run_cleanly_with_the_reason():
    hot = Cycler("hot", dict(CHANNEL.values, safety_max_temperature_C=25.2), CHANNEL.sources)
    r = run("Charge at 2 mA for 1 hour\nRest for 1 hour\n", cycler=hot)
    s = r.summary
    assert not s["complete"] and len(r.steps) == 1
    assert r.steps[0]["stop_reason"] == "safety_temperature"
    assert "safety limit: cell temperature 25.20 °C reached the channel's 25.2 °C" in s["why"]
    assert "line 1" in s["why"]
    assert s["peak_temperature_C"] <= 25.2 + 1e-3


def test_a_safety_voltage_ends_the_run():
    tight = Cycler("tight", dict(CHANNEL.values, safety_max_V=2.40), CHANNEL.sources)
    r = run(FORM + "Rest for 1 hour\n", cycler=tight)
    assert not r.summary["complete"] and r.steps[-1]["stop_reason"] == "safety_voltage"
    assert "terminal voltage 2.4000 V reached the channel's safety_max_V of 2.4 V" in r.summary["why"]


def test_an_ambient_above_the_safety_temperature_is_refused():
    with pytest.raises(CyclerError, match="--ambient-c"):
        run("Rest for 1 s", ambient_c=160.0)


def test_the_bound_on_simulated_time_ends_the_run(monkeypatch):
    monkeypatch.setattr(simulate_module, "MAX_SIMULATED_S", 7200.0)
    r = run("Repeat 3 times:\n    Charge at 10 uA until 2.6 V\n")
    assert not r.summary["complete"] and "bound of 2 h of simulated time" in r.summary["why"]
    assert r.summary["sim_seconds"] == pytest.approx(7200.0)


def test_the_bound_on_rows_ends_the_run_and_keeps_what_it_has():
    r = run("Charge at 10 uA until 2.6 V\n", max_rows=500, sample_interval_s=1.0)
    assert not r.summary["complete"] and "bound of 500 rows" in r.summary["why"]
    assert len(r.table) < 500 + 4096


def test_a_protocol_that_needs_too_many_rows_is_refused_before_running():
    with pytest.raises(SimulationError, match="an interval of at least 3.6 s expected"):
        run("Rest for 10 hours", max_rows=10_000, sample_interval_s=1.0)


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf"), True, "10"])
def test_a_bad_sample_interval_is_refused(interval):
    with pytest.raises(SimulationError, match="sample_interval_s"):
        run("Rest for 1 s", sample_interval_s=interval)


def test_a_model_failure_is_a_reason_not_a_traceback():
    # an ideal source drives 1 A into the 1 cm2 cell: the model's temperature runs away
    r = simulate(D111, Protocol.parse("Rest for 1 minute\nCharge at 1 A for 1 hour\n"))
    assert not r.summary["complete"]
    assert r.summary["why"].startswith("the cell model failed at line 2")
    assert len(r.steps) == 1


def test_the_summary_carries_the_channel_and_the_conservation_figure():
    r = run(FORM)
    s = r.summary
    assert s["cycler"]["values"] == CHANNEL.values and s["cycler"]["sources"] == CHANNEL.sources
    assert s["lithium_conservation_error"] < 1e-12
    pools = r.column("plated_Li_uAh") + r.column("catholyte_Li_uAh") + r.column("lithium_lost_uAh")
    assert np.ptp(pools) < 1e-6 * pools[0]                 # the file alone shows conservation
    assert r.column("charge_in_uAh")[-1] == pytest.approx(s["charge_in_uAh"])


def test_a_cell_without_a_layer_reports_none_not_intact():
    r = run("Charge at 100 uA for 1 hour", params=load_parameter_set("control_no_lipon"))
    assert r.summary["layer"] == "none" and not r.summary["layer_cracked"]
    assert run(FORM).summary["layer"] == "intact"


def test_the_protocol_is_streamed_not_expanded(monkeypatch):
    # 100,000 steps: simulate asks for each in turn; nothing calls steps() up front
    seen = []
    protocol = Protocol.parse("Repeat 50000 times:\n    Rest for 1 s\n    Rest for 1 s\n")
    monkeypatch.setattr(Protocol, "steps", lambda self: pytest.fail("steps() expanded"))
    r = simulate(D111, protocol, cycler=CHANNEL, sample_interval_s=1e6, progress=seen.append)
    assert r.summary["n_steps"] == len(seen) == 100_000 and r.summary["complete"]
