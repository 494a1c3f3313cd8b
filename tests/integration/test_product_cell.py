"""The product-size cell end to end (issue 9, point 4 and 5): product_1ah on its
own board (bench_a) forms at the fastest current its layer tolerates, keeps the
layer intact, returns >= 98 % of the lithium through the D111 duty scaled to its
area; power cuts during formation do not change what it plates; a run that did
not form the cell, or did not run its duty, says so (summary and exit code)."""
import json
import subprocess
import sys

import pytest

from twin.bench import Bench
from twin.firmware_config import config_for, formation_timeouts_s
from twin.parameters import load_parameter_set
from twin.run import duty_for, run_closed_loop

PRODUCT = load_parameter_set("product_1ah")


@pytest.fixture(scope="module")
def uncut():
    return run_closed_loop(PRODUCT, stop_after_formation=True)


def test_product_1ah_forms_on_its_own_board_at_its_layer_s_rate_with_the_layer_intact(uncut):
    s = uncut.summary
    assert s["final_state"] == "READY" and s["faults"] == [] and s["layer"] == "intact"
    assert s["layer_damage"] == 0.0
    assert s["complete"] is True and "why" not in s
    f = s["formation"]
    assert f["counted_uAh"] == pytest.approx(1.0e6, rel=0.002)
    assert f["plated_uAh"] == pytest.approx(1.0e6, rel=0.01)
    # the design's 1000 µA/cm² (two thirds of the wetted glass's critical density),
    # not bench_ua's 2 mA cap: formed in hours, within its timeout
    assert 950 <= f["max_current_density_uA_cm2"] <= 1050
    assert f["duration_s"] < formation_timeouts_s(config_for(PRODUCT))["charge"]
    assert s["powered_seconds"] == pytest.approx(s["sim_seconds"], abs=2.0)


@pytest.mark.parametrize("off_s", [1.0, 72 * 3600.0])
def test_a_power_cut_during_formation_keeps_the_plated_charge_within_half_a_percent(uncut, off_s):
    cut_at = 2.5 * 3600.0                                   # while plating at 250 mA
    cut = run_closed_loop(PRODUCT, stop_after_formation=True, power_cuts_s=[cut_at], off_s=off_s)
    s = cut.summary
    assert s["final_state"] == "READY" and s["complete"] is True, s.get("why")
    assert s["power_cuts_s"] == [[cut_at, pytest.approx(cut_at + off_s, abs=1.0)]]
    assert s["boots"] == 2
    # powered time only: a 72 h cut does not time the formation out
    assert s["powered_seconds"] < s["sim_seconds"] - off_s + 2.0
    plated = s["formation"]["plated_uAh"]
    assert plated == pytest.approx(uncut.summary["formation"]["plated_uAh"], rel=0.005)


def test_the_default_duty_is_d111_s_at_the_seed_s_current_densities():
    steps = list(duty_for(PRODUCT).steps())
    d111 = list(duty_for(load_parameter_set("d111")).steps())
    assert len(steps) == len(d111) == 42
    for mine, seed in zip(steps, d111):
        assert mine.current_A == pytest.approx(250.0 * seed.current_A)
        assert mine.duration_s == seed.duration_s and mine.stop_voltage_V == seed.stop_voltage_V


def test_product_1ah_returns_98_percent_of_its_lithium_through_the_scaled_d111_duty():
    res = run_closed_loop(PRODUCT, duty_for(PRODUCT))
    s = res.summary
    assert s["final_state"] == "READY" and s["layer"] == "intact" and s["faults"] == []
    assert s["complete"] is True and s["duty"] == {"asked": True, "steps": 42, "ran": 42, "stopped_by": None}
    assert s["retained_fraction"] >= 0.98
    # the strip to 2.0 V took back nearly all of the plated lithium
    strip = s["steps"][40]
    assert strip["text"].startswith("Discharge at 25 mA until 2.0 V")
    assert -strip["charge_uAh"] >= 0.97 * s["formation"]["plated_uAh"]


def test_a_duty_a_fault_stopped_is_incomplete_and_says_which_step():
    shorted = []

    def short_while_cycling(bench):
        c = bench.controller
        if c is not None and c.state == "READY" and bench.t_s > 3.5 * 3600 and not shorted:
            bench.cell.inject_short(1.0)
            shorted.append(bench.t_s)

    d111 = load_parameter_set("d111")
    res = run_closed_loop(d111, duty_for(d111), on_tick=short_while_cycling)
    s = res.summary
    assert s["final_state"] == "FAULT"
    assert s["complete"] is False
    assert s["why"].startswith("duty skipped: ") and "of 42 steps ran (FAULT at step" in s["why"]
    assert 0 < s["duty"]["ran"] < 42


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "twin.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_bms_twin_run_exits_1_when_the_formation_does_not_finish(tmp_path):
    # too little lithium in the catholyte for the design's target: the charge stalls at
    # the supply's ceiling, and the run ends at its charge timeout, not at 48 h
    cell = tmp_path / "starved.toml"
    cell.write_text('based_on = "d111"\n[lithium_mol_L]\nvalue = 0.1\nunit = "mol/L"\n'
                    'source = "assumed: a catholyte with too little lithium for the target"\n')
    out = tmp_path / "out"
    res = _cli("run", "--cell", str(cell), "--out", str(out), "--no-mqtt", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("bms-twin run: ")]
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert lines[0].startswith("bms-twin run: formation unfinished: still FORMING/PLATE after ")
    assert "duty skipped: 0 of 42 steps ran (not started: the cell is FORMING, not READY)" in lines[0]
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] is False and s["why"] == lines[0][len("bms-twin run: "):]
    assert s["formation_timed_out"]["phase"] == "charge"
    limit = formation_timeouts_s(config_for(load_parameter_set(str(cell))))["charge"]
    assert s["formation_timed_out"]["limit_s"] == pytest.approx(limit)
    assert s["sim_seconds"] < limit + 3600


def test_bms_twin_run_exits_1_when_formation_ends_in_a_fault(tmp_path):
    out = tmp_path / "out"
    res = _cli("run", "--cell", "control_no_lipon", "--out", str(out), "--no-mqtt", cwd=tmp_path)
    assert res.returncode == 1
    assert "bms-twin run: formation unfinished: FAULT (NO_PLATING); duty skipped: 0 of 42 steps ran" in res.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] is False and s["why"].startswith("formation unfinished: FAULT (NO_PLATING)")


def test_a_completed_run_says_complete(tmp_path):
    bench = Bench.build(load_parameter_set("d111"))
    res = run_closed_loop(bench.parameters, bench=bench, stop_after_formation=True)
    assert res.summary["complete"] is True and res.summary["duty"]["asked"] is False
