"""Bench steps of the cycler language (twin/protocol/bench.py): every form reads to
the step it says and back (describe), their names come from the firmware's and the
board's tables, and every bad line is refused with its line number before anything
runs; `simulate` refuses the steps that need a firmware.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bmsfw.commands import COMMANDS
from bmsfw.states import EVENT_KINDS, FAULTS, STATES
from twin.board import FAULTS as BOARD_FAULTS
from twin.parameters import load_parameter_set
from twin.protocol import BenchStep, Protocol, ProtocolError
from twin.protocol.bench import BENCH_EXAMPLES, INJECTIONS
from twin.run import run_closed_loop
from twin.scenario import scenarios

BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))

EVERY_FORM = {
    "Set ambient to 0 °C": ("ambient", 0.0, 0.0),
    "Set ambient to -5 C": ("ambient", -5.0, 0.0),
    "Ramp ambient to 45 °C over 2 hours": ("ramp", 45.0, 7200.0),
    "Inject crack": ("inject", ("crack", None), 0.0),
    "Inject internal short of 50 ohm": ("inject", ("internal short", 50.0), 0.0),
    "Inject internal short of 2 kohm": ("inject", ("internal short", 2000.0), 0.0),
    "Inject thermistor open": ("inject", ("thermistor open", None), 0.0),
    "Inject thermistor short": ("inject", ("thermistor short", None), 0.0),
    "Inject open cell": ("inject", ("open cell", None), 0.0),
    "Inject ADC VCELL stuck at 1234": ("inject", ("adc", ("VCELL", 1234)), 0.0),
    "Inject source offset of -5 uA": ("inject", ("source offset", -5.0), 0.0),
    "Clear thermistor open": ("clear", ("thermistor", None), 0.0),
    "Clear ADC TCELL": ("clear", ("adc", "TCELL"), 0.0),
    "Clear all faults": ("clear", ("all faults", None), 0.0),
    "Cut power for 10 minutes": ("power_cut", None, 600.0),
    "Command stop": ("command", ("stop", ()), 0.0),
    "Command formation/start": ("command", ("formation/start", ()), 0.0),
    "Command charge current_ua=100 duration_s=600": ("command", ("charge", (("current_ua", 100), ("duration_s", 600))), 0.0),
    "Command set_limits ccl_ua=50": ("command", ("set_limits", (("ccl_ua", 50),)), 0.0),
    "Wait for 10 minutes": ("wait", None, 600.0),
    "Wait until state READY within 2 hours": ("wait_state", "READY", 7200.0),
    "Wait until state VERIFY within 1 h": ("wait_state", "VERIFY", 3600.0),
    "Wait until formed within 48 hours": ("wait_formed", None, 48 * 3600.0),
    "Expect event CRACK_SUSPECTED within 2 hours": ("expect_event", "CRACK_SUSPECTED", 7200.0),
    "Expect event FORMATION_DONE within 30 s": ("expect_event", "FORMATION_DONE", 30.0),
    "Expect state READY": ("expect_state", "READY", 0.0),
    "Expect no fault": ("expect_no_fault", None, 0.0),
    "Expect fault SENSOR": ("expect_fault", "SENSOR", 0.0),
    "Expect inventory above 150 uAh": ("expect_inventory", ("above", 150.0), 0.0),
    "Expect inventory below 0.2 mAh": ("expect_inventory", ("below", 200.0), 0.0),
}


@pytest.mark.parametrize("line", sorted(EVERY_FORM))
def test_every_form_reads_to_its_step_and_back(line):
    protocol = Protocol.parse("Rest for 1 minute\n" + line + "\n")
    step = protocol.items[1]
    assert isinstance(step, BenchStep)
    assert (step.kind, step.value, step.duration_s) == EVERY_FORM[line]
    assert step.line_no == 2 and str(step) == line
    assert Protocol.parse(protocol.describe()) == protocol


def test_examples_parse_and_bench_steps_sit_in_repeats():
    protocol = Protocol.parse("\n".join(BENCH_EXAMPLES) + "\nRepeat 3 times:\n    Discharge at 100 uA for 15 minutes\n"
                              "    Expect no fault\n    Cut power for 1 minute\n")
    assert len(protocol) == len(BENCH_EXAMPLES) + 9
    # fixed time: the ramp, the cut, the three cuts of the block and its discharges; limits add nothing
    assert protocol.fixed_duration_s == 7200 + 600 + 3 * (900 + 60)
    assert [s.kind for s in protocol.steps()][-3:] == ["discharge", "expect_no_fault", "power_cut"]


def test_names_come_from_their_tables():
    # every fault the board offers has its phrase (ambient_step is `Set ambient`)
    assert {name for name, _ in INJECTIONS.values()} | {"ambient_step"} == set(BOARD_FAULTS)
    for name in COMMANDS:
        args = {"charge": " current_ua=5", "discharge": " current_ua=5", "set_limits": " ccl_ua=5"}.get(name, "")
        assert Protocol.parse("Command %s%s" % (name, args)).items[0].value[0] == name
    for name in STATES:
        Protocol.parse("Expect state %s\nWait until state %s within 1 s" % (name, name))
    for name in EVENT_KINDS + FAULTS:
        Protocol.parse("Expect event %s within 1 s" % name)


@pytest.mark.parametrize("line, problem", [
    ("Inject meltdown", "unknown fault 'meltdown'"),
    ("Inject internal short", "line ends early"),
    ("Inject internal short of ohm", "cannot read 'ohm'"),
    ("Inject ADC VX stuck at 3", "unknown ADC channel 'VX'"),
    ("Inject ADC VCELL stuck at 3.5", "ADC counts '3.5' are not whole"),
    ("Clear crack", "a crack cannot be cleared"),
    ("Wait until state READY", "Wait until state READY has no time limit"),
    ("Wait until formed", "Wait until formed has no time limit"),
    ("Wait until state NOPE within 1 hour", "unknown state 'NOPE'"),
    ("Expect event BOOM within 1 hour", "unknown event 'BOOM'"),
    ("Expect event SENSOR", "Expect event SENSOR has no time limit"),
    ("Expect inventory above 5", "charge '5' has no unit"),
    ("Expect the best", "cannot read 'the best'"),
    ("Command explode", "unknown command 'explode'"),
    ("Command µAh", "unknown command 'µAh'"),          # found by the fuzz: µ starts a word
    ("Expect state μA", "unknown state 'μA'"),
    ("Command charge", "Command charge has no current_ua"),
    ("Command stop now=1", "cannot read 'now=1'"),
    ("Command set_limits ccl_ua=5 ccl_ua=6", "ccl_ua given twice"),
    ("Set ambient to 500 °C", "ambient 500 °C is outside the model's range"),
    ("Set ambient to 5", "temperature '5' has no unit °C"),
    ("Ramp ambient to 5 °C", "line ends early"),
    ("Cut power", "line ends early"),
    ("Cut power for 0 s", "duration '0 s' must be > 0"),
])
def test_bad_bench_steps_are_refused_with_their_line(line, problem):
    with pytest.raises(ProtocolError) as caught:
        Protocol.parse("Rest for 1 minute\n\n# a comment\n" + line + "\n")
    assert caught.value.line_no == 4
    assert caught.value.brief.startswith("line 4: " + problem), caught.value.brief


def test_a_bad_bench_step_stops_bms_twin_run_before_anything_runs(tmp_path):
    protocol = tmp_path / "p.txt"
    protocol.write_text("Wait until formed within 48 hours\nInject meltdown\n")
    out = tmp_path / "out"
    done = subprocess.run([BMS_TWIN, "run", "--no-mqtt", "--protocol", str(protocol), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("bms-twin run: --protocol=%r: line 2: unknown fault 'meltdown'" % str(protocol))
    assert len(done.stderr.splitlines()) == 1 and not out.exists()


def test_adc_counts_beyond_the_board_are_refused_before_anything_runs():
    with pytest.raises(ProtocolError, match="line 2: 70000 counts are beyond the board.s 16-bit ADC"):
        run_closed_loop(load_parameter_set("d111"), Protocol.parse("Rest for 1 s\nInject ADC VCELL stuck at 70000\n"))


def test_simulate_refuses_steps_that_need_a_firmware_and_sets_ambient(tmp_path):
    protocol = tmp_path / "p.txt"
    protocol.write_text("Charge at 100 uA for 1 hour\nExpect no fault\n")
    done = subprocess.run([BMS_TWIN, "simulate", "--protocol", str(protocol), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and not (tmp_path / "o").exists()
    assert "line 2: 'Expect no fault' needs a firmware on the bench" in done.stderr
    assert "bms-twin run" in done.stderr
    # Set ambient needs none: the cell cools between the steps
    protocol.write_text("Charge at 100 uA for 1 hour\nSet ambient to -20 °C\nRest for 10 hours\n")
    done = subprocess.run([BMS_TWIN, "simulate", "--protocol", str(protocol), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    last = (tmp_path / "o" / "timeseries.csv").read_text().splitlines()[-1]
    header = (tmp_path / "o" / "timeseries.csv").read_text().splitlines()[0].split(",")
    assert float(last.split(",")[header.index("temperature_C")]) == pytest.approx(-20, abs=0.5)


def test_the_library_scenarios_parse_and_each_expects_something():
    library = scenarios()
    assert len(library) >= 7
    for name, path in library.items():
        protocol = Protocol.from_file(path)
        assert any(step.is_expectation for step in protocol.bench_steps()), name
        assert path.read_text().startswith("# "), name + ": says what it is about"
