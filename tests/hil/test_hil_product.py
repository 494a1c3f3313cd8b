"""product_1ah over HIL (issue 9, points 4 and 5): `bms-twin hil --firmware cpython`
forms the 1 Ah pouch on its own board with the same time series as the in-process
run, and a HIL run whose formation did not finish exits 1 with the reason, through
the same judgement as `bms-twin run` (twin/run_files.judge_closed_loop)."""
import json

import pytest

from twin import cli
from twin.parameters import load_parameter_set
from twin.run import duty_for, duty_text_for, run_closed_loop

SEED = 3


def hil_cli(*argv):
    return cli.main(["hil", "--no-mqtt", "--seed", str(SEED), *argv])


@pytest.mark.slow
def test_product_1ah_forms_over_hil_as_in_process(tmp_path):
    out = tmp_path / "hil"
    assert hil_cli("--firmware", "cpython", "--cell", "product_1ah", "--out", str(out)) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["final_state"] == "READY" and s["layer"] == "intact" and s["faults"] == []
    assert s["complete"] is True and not s["link_lost"]
    ref = run_closed_loop(load_parameter_set("product_1ah"), seed=SEED, stop_after_formation=True).summary
    assert s["formation"]["plated_uAh"] == pytest.approx(ref["formation"]["plated_uAh"], rel=1e-9)
    assert s["formation"]["max_current_density_uA_cm2"] == ref["formation"]["max_current_density_uA_cm2"]


@pytest.mark.slow
def test_product_1ah_returns_98_percent_through_the_scaled_d111_duty_over_hil(tmp_path):
    """The REQUEST message carries the duty: the run's files are the in-process run's."""
    params = load_parameter_set("product_1ah")
    duty = tmp_path / "duty.txt"
    duty.write_text(duty_text_for(params))
    out = tmp_path / "hil"
    assert hil_cli("--firmware", "cpython", "--cell", "product_1ah", "--protocol", str(duty), "--out", str(out)) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] is True and s["layer"] == "intact" and s["faults"] == [] and not s["link_lost"]
    assert s["retained_fraction"] >= 0.98
    ref = run_closed_loop(params, duty_for(params), seed=SEED)
    assert s["retained_fraction"] == pytest.approx(ref.summary["retained_fraction"], rel=1e-9)
    assert s["formation"]["plated_uAh"] == pytest.approx(ref.summary["formation"]["plated_uAh"], rel=1e-9)


def test_a_hil_formation_that_ends_in_a_fault_exits_1_and_says_why(tmp_path, capsys):
    out = tmp_path / "hil"
    assert hil_cli("--firmware", "cpython", "--cell", "control_no_lipon", "--out", str(out)) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("bms-twin hil: ")]
    assert err == ["bms-twin hil: formation unfinished: FAULT (NO_PLATING)"]
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] is False and s["why"] == "formation unfinished: FAULT (NO_PLATING)"


def test_a_hil_run_for_a_set_duration_is_not_judged_on_its_formation(tmp_path):
    out = tmp_path / "hil"
    assert hil_cli("--firmware", "cpython", "--duration-s", "60", "--out", str(out)) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["final_state"] != "READY" and s["complete"] is True
