"""The firmware on a board other than the reference one: a board file with another
shunt, amplifier gain, mid-scale offset and thermistor. Configured from that file
(config_for(parameters, board)), the closed-loop firmware reads the twin's current
and temperature right and forms the cell as on bench_ua; configured for bench_ua
(what the runner did before it read the board) it misreads both and trips at once.

Run: .venv/bin/python -m pytest tests/integration/test_closed_loop_board.py -q
"""
import pytest

from twin.firmware_config import config_for
from twin.parameters import load_board, load_parameter_set
from twin.parameters.board import BOARD_UNITS
from twin.run import run_closed_loop

D111 = load_parameter_set("d111")
# 2 mV/µA around 1500 mV (ISHUNT rails at -750 µA), a 100 k NTC on a 47 k pull-up
CHANGES = {"shunt_ohm": 50.0, "shunt_amp_gain": 40.0, "ishunt_offset_mV": 1500.0, "source_range_uA": 1000.0,
           "source_resolution_uA": 2000 / 65536, "ntc_r25_ohm": 100000.0, "ntc_beta_K": 4250.0,
           "ntc_pullup_ohm": 47000.0}
AMBIENT_C = 10.0    # away from 25 °C, so the thermistor's beta matters


@pytest.fixture(scope="module")
def board_path(tmp_path_factory):
    bench = load_board("bench_ua")
    lines = []
    for field, unit in BOARD_UNITS.items():
        value = CHANGES.get(field, bench[field])
        source = "assumed: a second test board" if field in CHANGES else bench.sources[field]
        lines += [f"[{field}]", f"value = {value!r}", f'unit = "{unit}"', f'source = "{source}"', ""]
    path = tmp_path_factory.mktemp("boards") / "other_board.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class Readings:
    """on_tick: the largest gap between what the firmware read and the twin's truth."""

    def __init__(self):
        self.current_ua = 0.0
        self.temp_c = 0.0
        self.ticks = 0

    def __call__(self, bench):
        c, s = bench.controller.meas, bench.cell.state
        self.current_ua = max(self.current_ua, abs(c.current_ua - s.current_A * 1e6))
        self.temp_c = max(self.temp_c, abs(c.temp_dc / 10 - bench.cell.temperature_c))
        self.ticks += 1


def test_configured_from_its_board_file_the_firmware_measures_and_forms_right(board_path):
    assert load_board(board_path)["shunt_amp_gain"] == 40.0
    readings = Readings()
    result = run_closed_loop(D111, board=board_path, ambient_c=AMBIENT_C, seed=4, on_tick=readings,
                             stop_after_formation=True)
    s, f = result.summary, result.summary["formation"]
    assert s["final_state"] == "READY" and s["faults"] == []
    # the counted charge is the twin's, as on bench_ua (the twin plates ~0.5 % less than it is given)
    assert f["counted_uAh"] >= D111.design["target_inventory_uAh"]
    assert abs(f["counted_uAh"] - f["plated_uAh"]) <= 0.02 * f["counted_uAh"]
    assert readings.current_ua <= 1.0       # µA, ADC noise and quantisation
    assert readings.temp_c <= 0.5           # the firmware's own accuracy figure (temp_accuracy_dc)


def test_configured_for_the_reference_board_the_firmware_misreads_this_one(board_path):
    readings = Readings()
    result = run_closed_loop(D111, board=board_path, ambient_c=AMBIENT_C, seed=4, on_tick=readings,
                             stop_after_formation=True, config=config_for(D111))
    s = result.summary
    assert s["final_state"] == "FAULT" and "OVERCURRENT" in s["faults"]
    assert s["formation"]["counted_uAh"] is None
    assert readings.current_ua > 100.0 and readings.temp_c > 5.0
