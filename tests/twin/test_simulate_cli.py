"""`bms-twin simulate` end to end, through the installed console script, and the
numpy fleet. Run: .venv/bin/python -m pytest tests/twin/test_simulate_cli.py
"""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from twin import core
from twin.fleet import Fleet
from twin.parameters import load_parameter_set

BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))


def run_cli(*args, cwd=None):
    return subprocess.run([BMS_TWIN, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_console_script_is_installed():
    assert BMS_TWIN is not None


@pytest.mark.slow
def test_simulate_writes_timeseries_summary_and_plot(tmp_path):
    out = tmp_path / "d111"
    done = run_cli("simulate", "--cell", "d111", "--protocol", "d111", "--out", str(out),
                   "--ambient-c", "25", "--seed", "3")
    assert done.returncode == 0, done.stderr
    assert "layer intact" in done.stdout
    with open(out / "timeseries.csv") as fh:
        rows = list(csv.DictReader(fh))
    for column in ("time_s", "voltage_V", "current_A", "temperature_C", "plated_Li_uAh",
                   "lithium_lost_uAh", "layer_damage"):
        assert column in rows[0]
    times = [float(r["time_s"]) for r in rows]
    assert times == sorted(times) and times[-1] > 12 * 3600
    summary = json.loads((out / "summary.json").read_text())
    for key in ("plated_uAh_max", "stripped_uAh", "lithium_lost_uAh", "layer_cracked",
                "final_voltage_V", "sim_seconds", "wall_seconds"):
        assert key in summary, key
    assert summary["seed"] == 3 and summary["layer_cracked"] is False
    assert 188.0 <= summary["stripped_uAh"] <= 201.6
    assert 0 < summary["wall_seconds"] < summary["sim_seconds"]
    png = (out / "voltage.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_a_protocol_file_with_a_bad_line_is_refused_with_its_line_number(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("Charge at 10 uA for 10 minutes\nCharge at 10 parsecs for 1 hour\n")
    done = run_cli("simulate", "--protocol", str(bad), "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "line 2" in done.stderr and "parsecs" in done.stderr
    assert not (tmp_path / "o").exists()


def test_an_unknown_cell_lists_the_known_ones(tmp_path):
    done = run_cli("simulate", "--cell", "d112", "--protocol", "d111", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "d111" in done.stderr and "no_wetting_layer" in done.stderr


def test_params_lists_every_shipped_set():
    done = run_cli("params")
    assert done.returncode == 0
    assert set(done.stdout.split()) >= {"d111", "control_no_lipon", "no_wetting_layer",
                                        "al_wetting_layer", "product_1ah"}


def test_fleet_steps_each_cell_at_its_own_current_like_a_single_cell():
    params = load_parameter_set("d111")
    fleet = Fleet(params, 4)
    currents = np.array([0.0, 10e-6, 100e-6, -1e-6])
    for _ in range(60):
        fleet.step(currents, 10.0)
    plated = fleet.plated_uAh
    assert plated[0] == 0.0
    assert plated[2] > plated[1] > 0.0
    assert plated[2] == pytest.approx(100e-6 * 600 / 3.6e-3 * (1 - 0.005), rel=2e-3)


def test_a_bad_cell_in_a_fleet_keeps_its_state_and_is_named():
    fleet = Fleet(load_parameter_set("d111"), 3)
    fleet.step(100e-6, 60.0)
    before = fleet.states.copy()
    with pytest.raises(core.NotFiniteError, match=r"cells \[1\]"):
        fleet.step(np.array([100e-6, np.nan, 100e-6]), 1.0)
    assert fleet.states[1].tobytes() == before[1].tobytes()
    assert fleet.states[0]["t_s"] == before[0]["t_s"] + 1.0
    assert list(fleet.last_status) == [0, core.lib.CELL_ERR_NOT_FINITE, 0]
    with pytest.raises(core.LengthError):
        Fleet(load_parameter_set("d111"), 0)
