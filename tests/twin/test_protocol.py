"""Tests for twin/protocol/: the cycler-language parser and the step constructors.

Run: .venv/bin/python -m pytest tests/twin/test_protocol.py -q
"""

import math
import re
import pathlib

import pytest

from twin.cycler import SEGMENT_FIELDS as CYCLER_SEGMENT_FIELDS

from twin import protocol as P
from twin.protocol import (
    MODE_CURRENT,
    MODE_REST,
    MODE_VOLTAGE,
    UNTIL_DURATION_CAP_S,
    Protocol,
    ProtocolError,
    Repeat,
    Step,
    charge,
    discharge,
    hold,
    repeat,
    rest,
)

from seed_examples import seed_examples

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTOCOL_DIR = ROOT / "twin" / "protocols"
UAH_C = 3.6e-3  # 1 uAh in coulomb

ISSUE_TEXT = """\
# comment
Charge at 10 uA for 10 minutes
Charge at 100 uA for 2 hours
Repeat 20 times:
    Discharge at 100 uA for 15 minutes
    Charge at 100 uA for 15 minutes
Discharge at 100 uA until 2.0 V
Discharge at 20 uA until 2.0 V
Rest for 1 hour
Hold at 2.6 V until 5 uA
Charge at 0.1 mA for 1 hour or until 2.6 V
"""


# ---------------------------------------------------------------- the issue's example


def test_issue_example_expands_in_order_with_sources():
    proto = Protocol.parse(ISSUE_TEXT)
    steps = proto.steps()
    assert len(proto) == len(steps) == 2 + 40 + 5
    assert steps[0] == charge(10e-6, duration_s=600)
    assert steps[0].line_no == 2 and steps[0].text == "Charge at 10 uA for 10 minutes"
    assert steps[2].kind == "discharge" and steps[2].line_no == 5 and steps[2].repeat_path == (0,)
    assert steps[41].kind == "charge" and steps[41].line_no == 6 and steps[41].repeat_path == (19,)
    assert steps[42] == discharge(100e-6, until_V=2.0)
    assert steps[42].line_no == 7 and steps[42].repeat_path == ()
    assert steps[44] == rest(3600)
    assert steps[45] == hold(2.6, until_A=5e-6)
    assert steps[46] == charge(1e-4, duration_s=3600, until_V=2.6)
    assert steps[46].text == "Charge at 0.1 mA for 1 hour or until 2.6 V"


def test_tree_keeps_the_repeat_block():
    proto = Protocol.parse(ISSUE_TEXT)
    block = proto.items[2]
    assert isinstance(block, Repeat)
    assert block.count == 20 and block.line_no == 4
    assert block.body == (discharge(1e-4, 900), charge(1e-4, 900))


# ---------------------------------------------------------------- units and SI


@pytest.mark.parametrize("text, current_A", [
    ("Charge at 250 nA for 1 s", 250e-9),
    ("Charge at 10 uA for 1 s", 10e-6),
    ("Charge at 10 \u00b5A for 1 s", 10e-6),   # micro sign
    ("Charge at 10 \u03bcA for 1 s", 10e-6),   # Greek mu
    ("Charge at 0.1 mA for 1 s", 1e-4),
    ("Charge at 1.5 A for 1 s", 1.5),
    ("Charge at 2e-3 A for 1 s", 2e-3),
    ("Charge at 100uA for 1 s", 1e-4),
])
def test_current_units_convert_exactly(text, current_A):
    step = Protocol.parse(text).steps()[0]
    assert step.current_A == current_A


@pytest.mark.parametrize("text, duration_s", [
    ("Rest for 5 s", 5.0), ("Rest for 5 sec", 5.0), ("Rest for 1 second", 1.0),
    ("Rest for 30 seconds", 30.0), ("Rest for 10 min", 600.0), ("Rest for 1 minute", 60.0),
    ("Rest for 15 minutes", 900.0), ("Rest for 2 h", 7200.0), ("Rest for 1 hour", 3600.0),
    ("Rest for 0.5 hours", 1800.0), ("Rest for 2 hrs", 7200.0), ("Rest for 3 Minutes", 180.0),
])
def test_time_units(text, duration_s):
    assert Protocol.parse(text).steps()[0].duration_s == duration_s


@pytest.mark.parametrize("text, voltage_V", [
    ("Hold at 2.6 V for 1 h", 2.6), ("Hold at 2600 mV for 1 h", 2.6), ("Hold at 10 V for 1 h", 10.0),
])
def test_voltage_units(text, voltage_V):
    assert Protocol.parse(text).steps()[0].voltage_V == voltage_V


def test_discharge_stores_negative_current_and_charge_positive():
    dis, chg = Protocol.parse("Discharge at 5 uA for 1 s\nCharge at 5 uA for 1 s").steps()
    assert dis.current_A == -5e-6
    assert chg.current_A == 5e-6
    assert discharge(5e-6, 1).current_A == -5e-6


def test_keywords_are_case_insensitive_and_comments_and_blank_lines_ignored():
    text = "\n# header\n\ncharge AT 1 mA FOR 1 h   # inline note\n\nREST for 1 s\n"
    steps = Protocol.parse(text).steps()
    assert steps == [charge(1e-3, 3600), rest(1)]
    assert [s.line_no for s in steps] == [4, 6]


# ---------------------------------------------------------------- constructors == parser


@pytest.mark.parametrize("text, built", [
    ("Charge at 10 uA for 10 minutes", charge(10e-6, duration_s=600)),
    ("Discharge at 100 uA until 2.0 V", discharge(100e-6, until_V=2.0)),
    ("Discharge at 0.1 mA for 2 h or until 2000 mV", discharge(1e-4, duration_s=7200, until_V=2.0)),
    ("Rest for 1 hour", rest(3600.0)),
    ("Hold at 2.6 V until 5 uA", hold(2.6, until_A=5e-6)),
    ("Hold at 2.6 V for 30 min", hold(2.6, duration_s=1800)),
    ("Hold at 2.6 V for 30 min or until 5 uA", hold(2.6, until_A=5e-6, duration_s=1800)),
])
def test_constructors_equal_parsed_steps(text, built):
    parsed = Protocol.parse(text).steps()[0]
    assert parsed == built
    assert parsed.segment_fields() == built.segment_fields()
    # and the canonical text reads back to the same step
    assert Protocol.parse(built.describe()).steps()[0] == built


def test_steps_are_immutable():
    step = charge(1e-4, 60)
    with pytest.raises(AttributeError):
        step.current_A = 1.0


def test_protocol_from_objects_equals_parsed_and_round_trips():
    built = Protocol([
        charge(10e-6, 600),
        charge(100e-6, 7200),
        repeat(20, discharge(100e-6, 900), charge(100e-6, 900)),
        discharge(100e-6, until_V=2.0),
        discharge(20e-6, until_V=2.0),
        rest(3600),
        hold(2.6, until_A=5e-6),
        charge(1e-4, 3600, until_V=2.6),
    ])
    parsed = Protocol.parse(ISSUE_TEXT)
    assert built == parsed
    assert Protocol.parse(built.describe()) == built
    assert built.describe().splitlines()[2] == "Repeat 20 times:"


# ---------------------------------------------------------------- segment fields


def test_segment_fields_current_step_with_stop_voltage():
    fields = discharge(100e-6, until_V=2.0).segment_fields()
    assert fields == {
        "mode": MODE_CURRENT, "current_A": -1e-4, "voltage_V": 0.0,
        "duration_s": UNTIL_DURATION_CAP_S, "stop_voltage_V": 2.0, "use_stop_voltage": 1,
        "stop_current_A": 0.0, "use_stop_current": 0, "stop_charge_C": 0.0, "use_stop_charge": 0,
    }


def test_segment_fields_hold_and_rest():
    fields = hold(2.6, until_A=5e-6).segment_fields()
    assert fields["mode"] == MODE_VOLTAGE and fields["voltage_V"] == 2.6
    assert fields["use_stop_current"] == 1 and fields["stop_current_A"] == 5e-6
    assert fields["use_stop_voltage"] == 0 and fields["current_A"] == 0.0
    assert fields["duration_s"] == UNTIL_DURATION_CAP_S
    rest_fields = rest(60).segment_fields()
    assert rest_fields["mode"] == MODE_REST and rest_fields["current_A"] == 0.0
    assert rest_fields["duration_s"] == 60.0
    assert not (rest_fields["use_stop_voltage"] or rest_fields["use_stop_current"]
                or rest_fields["use_stop_charge"])


def test_cap_is_finite_and_far_beyond_seed_steps():
    assert math.isfinite(UNTIL_DURATION_CAP_S) and UNTIL_DURATION_CAP_S == 3.6e6
    assert charge(1e-4, until_V=2.6).duration_s == UNTIL_DURATION_CAP_S


def test_segment_field_names_match_cell_segment_t():
    header = (ROOT / "c_core" / "cell.h").read_text()
    body = header.split("typedef struct {")[3].split("} cell_segment_t;")[0]
    names = {line.split(";")[0].split()[-1] for line in body.splitlines() if ";" in line}
    fields = set(charge(1e-4, 1).segment_fields())
    assert fields <= names
    # the channel's limits are the cycler's (twin.cycler), the sample interval the runner's
    assert not fields & set(CYCLER_SEGMENT_FIELDS)
    assert names - fields == {"reserved0", "reserved1", "sample_interval_s"} | set(CYCLER_SEGMENT_FIELDS)


def test_planned_charge_only_for_fixed_duration_current_steps():
    assert charge(1e-4, 900).planned_charge_C == pytest.approx(0.09)
    assert discharge(1e-4, 900).planned_charge_C == pytest.approx(-0.09)
    assert charge(1e-4, 900, until_V=2.6).planned_charge_C is None
    assert rest(10).planned_charge_C is None


# ---------------------------------------------------------------- repeats


def test_nested_repeat_paths_and_count():
    text = """\
Repeat 2 times:
    Charge at 1 mA for 1 s
    Repeat 3 times:
        Discharge at 1 mA for 2 s
        Rest for 1 s
    Charge at 1 mA for 3 s
Rest for 9 s
"""
    proto = Protocol.parse(text)
    steps = proto.steps()
    assert len(proto) == 2 * (1 + 3 * 2 + 1) + 1
    assert [s.repeat_path for s in steps[:9]] == [
        (0,), (0, 0), (0, 0), (0, 1), (0, 1), (0, 2), (0, 2), (0,), (1,)]
    assert [s.line_no for s in steps[:8]] == [2, 4, 5, 4, 5, 4, 5, 6]
    assert steps[-1].repeat_path == () and steps[-1] == rest(9)
    nested = proto.items[0].body[1]
    assert isinstance(nested, Repeat) and nested.count == 3 and nested.line_no == 3


def test_repeat_once_and_indented_protocol_text():
    text = "    Repeat 1 time:\n        Rest for 1 s\n    Rest for 2 s\n"
    assert Protocol.parse(text).steps() == [rest(1), rest(2)]


def test_repeat_constructor_checks():
    with pytest.raises(ProtocolError, match="repeat count must be >= 1"):
        repeat(0, rest(1))
    with pytest.raises(ProtocolError, match="repeat count must be an integer"):
        repeat(2.0, rest(1))
    with pytest.raises(ProtocolError, match="repeat block is empty"):
        repeat(3)
    with pytest.raises(ProtocolError, match="not a Step, BenchStep or Repeat"):
        repeat(3, "Rest for 1 s")


# ---------------------------------------------------------------- seed protocols


@pytest.mark.parametrize("name", ["D042", "control_no_lipon", "D049", "D111"])
def test_every_seed_protocol_parses(name):
    proto = Protocol.parse(seed_examples()[name]["protocol"])
    assert len(proto) >= 1
    assert all(step.kind in ("charge", "discharge") for step in proto)


def test_d111_expands_to_44_steps_and_plates_701_6_uAh():
    example = seed_examples()["D111"]
    proto = Protocol.parse(example["protocol"])
    assert len(proto) == 44
    charges = [s.planned_charge_C for s in proto if s.kind == "charge"]
    assert None not in charges and len(charges) == 22
    plated_uAh = sum(charges) / UAH_C
    assert 701.6 <= plated_uAh <= 701.7
    assert plated_uAh == pytest.approx(example["total_plated_uAh"], abs=0.1)
    # the strip ends on a voltage: no planned charge, a stop at 2.0 V falling
    strip = proto.steps()[-2:]
    assert [s.stop_voltage_V for s in strip] == [2.0, 2.0]
    assert [s.current_A for s in strip] == [-100e-6, -20e-6]


def test_d049_and_d042_lengths():
    examples = seed_examples()
    assert len(Protocol.parse(examples["D049"]["protocol"])) == 1 + 200
    assert len(Protocol.parse(examples["D042"]["protocol"])) == 1


@pytest.mark.parametrize("name", ["d042", "d049", "d111"])
def test_shipped_protocol_files_match_the_seed_toml(name):
    path = PROTOCOL_DIR / (name + ".txt")
    from_file = Protocol.from_file(path)
    from_toml = Protocol.parse(seed_examples()[name.upper()]["protocol"])
    assert from_file == from_toml
    assert from_file.name == name
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines == seed_examples()[name.upper()]["protocol"].strip("\n").splitlines()


# ---------------------------------------------------------------- errors


def parse_error(text):
    with pytest.raises(ProtocolError) as info:
        Protocol.parse(text)
    return info.value


@pytest.mark.parametrize("text, line_no, pattern", [
    ("Charge at -5 uA for 1 h", 1, r"signed current '-5 uA'.*verb gives the direction"),
    ("Charge at +5 uA for 1 h", 1, r"signed current '\+5 uA'"),
    ("Hold at -2 V for 1 h", 1, r"negative voltage '-2 V'"),
    ("Charge at 0 uA for 1 h", 1, r"current '0 uA' must be > 0"),
    ("Charge at 5 uA for 0 s", 1, r"duration '0 s' must be > 0"),
    ("Rest for -1 min", 1, r"negative duration '-1 min'"),
    ("Charge at 5 uA for 10 parsecs", 1, r"unknown duration unit 'parsecs'.*'15 minutes'"),
    ("Charge at 5 mAh for 1 h", 1, r"unknown current unit 'mAh'.*nA, uA"),
    ("Charge at 5 UA for 1 h", 1, r"unknown current unit 'UA'"),
    ("Charge at 5 uA until 2 Volts", 1, r"unknown voltage unit 'Volts'"),
    ("Charge at 5 for 1 h", 1, r"current '5' has no unit"),
    ("Rest for 5", 1, r"duration '5' has no unit"),
    ("Charge at 5 uA", 1, r"line ends early.*'for <duration>', 'until <voltage>'"),
    ("Charge 5 uA for 1 h", 1, r"cannot read '5 uA for 1 h'.*'at <current>' after 'Charge'"),
    ("Charge at 5 uA for 1 h extra", 1, r"unexpected 'extra' at the end"),
    ("Charge at 5 uA for 1 h (1 minute period)", 1, r"unexpected '\(1 minute period\)'"),
    ("Charge at 5 uA until 2 V for 1 h", 1, r"unexpected 'for 1 h' at the end"),
    ("Charge at 5 uA for 1 h or 2 V", 1, r"cannot read '2 V'.*'until <voltage>' after 'or'"),
    ("Charge at 5 uA until 5 uA", 1, r"unknown voltage unit 'uA'"),
    ("Charge at 1 C for 1 h", 1, r"unknown current unit 'C'"),
    ("Discharge at 5 uA until 0 V", 1, r"voltage '0 V' must be > 0"),
    ("Discharge at 5 uA until 12 V", 1, r"stop voltage of 12.0 V is above 10 V"),
    ("Hold at 10.5 V until 1 uA", 1, r"hold voltage of 10.5 V is above 10 V"),
    ("Hold at 2600 V for 1 s", 1, r"above 10 V.*mV written as V"),
    ("Hold at 2.6 V", 1, r"line ends early.*'until <current>'"),
    ("Hold at 2.6 V until 2.0 V", 1, r"unknown current unit 'V'"),
    ("Hold at 2.6 V until 0 uA", 1, r"current '0 uA' must be > 0"),
    ("Rest for 1 h or until 2 V", 1, r"a Rest cannot end on a condition \('or until 2 V'\)"),
    ("Rest until 2 V", 1, r"a Rest cannot end on a condition \('until 2 V'\)"),
    ("Rest 1 h", 1, r"cannot read '1 h'.*'for <duration>' after 'Rest'"),
    ("Frobnicate at 5 uA", 1, r"cannot read 'Frobnicate at 5 uA'.*Charge, Discharge, Rest, Hold or Repeat"),
    ("Rest for 1 s\n\n# c\nRun US06 (A)", 4, r"cannot read 'Run US06 \(A\)'"),
    ("Rest for 1e999 s", 1, r"duration '1e999 s' is not finite"),
    ("Repeat 0 times:\n    Rest for 1 s", 1, r"repeat count 0 is below 1"),
    ("Repeat -2 times:\n    Rest for 1 s", 1, r"repeat count -2 is below 1"),
    ("Repeat 2.5 times:\n    Rest for 1 s", 1, r"repeat count '2.5' is not a whole number"),
    ("Repeat times:\n    Rest for 1 s", 1, r"cannot read 'times:'.*whole number of repetitions"),
    ("Repeat 2 times\n    Rest for 1 s", 1, r"line ends early.*':' closing 'Repeat 2 times:'"),
    ("Repeat 2 cycles:\n    Rest for 1 s", 1, r"cannot read 'cycles:'.*'times:' after the count"),
    ("Repeat 2 times: Rest for 1 s", 1, r"unexpected 'Rest for 1 s' at the end"),
    ("Rest for 1 s\nRepeat 2 times:\nRest for 1 s", 2, r"the Repeat block at line 2 is empty"),
    ("Rest for 1 s\nRepeat 2 times:", 2, r"the Repeat block at line 2 is empty"),
    ("Rest for 1 s\n    Rest for 2 s", 2, r"unexpected indentation \(4 spaces where the block uses 0\)"),
    ("Repeat 2 times:\n    Rest for 1 s\n  Rest for 2 s", 3,
     r"indentation of 2 spaces matches no enclosing block \(0 or 4\)"),
    ("Repeat 2 times:\n    Rest for 1 s\n        Rest for 2 s", 3, r"unexpected indentation"),
    ("  Rest for 1 s\nRest for 2 s", 2, r"indentation of 0 spaces is left of the first line's 2"),
    ("Repeat 2 times:\n\tRest for 1 s", 2, r"tab in the indentation"),
])
def test_errors_name_line_fragment_and_expectation(text, line_no, pattern):
    error = parse_error(text)
    assert isinstance(error, ValueError)
    assert error.line_no == line_no
    message = str(error)
    assert message.startswith("line %d: " % line_no)
    assert re.search(pattern, message), message
    assert "Examples of valid lines:" in message
    assert "Charge at 100 uA for 2 hours" in message


def test_error_carries_fragment_and_line_text():
    error = parse_error("Rest for 1 s\nCharge at 5 uA for 10 parsecs")
    assert error.fragment == "10 parsecs"
    assert error.line_text == "Charge at 5 uA for 10 parsecs"
    assert "'Charge at 5 uA for 10 parsecs'" in str(error)


def test_empty_text_is_refused():
    with pytest.raises(ProtocolError, match="the protocol has no steps"):
        Protocol.parse("# only a comment\n\n")
    with pytest.raises(ProtocolError, match="must be a str"):
        Protocol.parse(b"Rest for 1 s")
    with pytest.raises(ProtocolError, match="the protocol has no steps"):
        Protocol([])
    with pytest.raises(ProtocolError, match="is not a Step, BenchStep or Repeat"):
        Protocol(["Rest for 1 s"])


@pytest.mark.parametrize("build, pattern", [
    (lambda: charge(-5e-6, 60), r"charge current must be > 0.*verb gives the direction"),
    (lambda: discharge(0, 60), r"discharge current must be > 0"),
    (lambda: charge(float("nan"), 60), r"charge current must be a finite number"),
    (lambda: charge(True, 60), r"charge current must be a number"),
    (lambda: charge("5 uA", 60), r"charge current must be a number"),
    (lambda: charge(1e-4), r"charge has neither a duration nor a stop voltage"),
    (lambda: charge(1e-4, 0), r"duration must be > 0"),
    (lambda: charge(1e-4, float("inf")), r"duration must be a finite number"),
    (lambda: discharge(1e-4, until_V=0.0), r"stop voltage must be > 0"),
    (lambda: discharge(1e-4, until_V=10.01), r"stop voltage of 10.01 V is above 10 V"),
    (lambda: rest(0), r"rest duration must be > 0"),
    (lambda: rest(-3), r"rest duration must be > 0"),
    (lambda: hold(2.6), r"hold has neither a stop current nor a duration"),
    (lambda: hold(-1.0, until_A=1e-6), r"hold voltage must be > 0"),
    (lambda: hold(11.0, until_A=1e-6), r"hold voltage of 11.0 V is above 10 V"),
    (lambda: hold(2.6, until_A=-1e-6), r"hold stop current must be > 0"),
])
def test_constructor_errors(build, pattern):
    with pytest.raises(ProtocolError, match=pattern) as info:
        build()
    assert info.value.line_no is None


def test_error_changes_nothing_and_module_examples_parse():
    # every example line the errors advertise is itself valid (bar the Repeat hint)
    for example in P.EXAMPLES:
        if example.startswith("Repeat"):
            continue
        assert len(Protocol.parse(example)) == 1


def test_describe_picks_readable_units():
    assert charge(1e-5, 600).describe() == "Charge at 10 uA for 10 minutes"
    assert discharge(2e-8, 90).describe() == "Discharge at 20 nA for 90 seconds"
    assert charge(1.5, 1).describe() == "Charge at 1.5 A for 1 second"
    assert hold(0.5, until_A=2e-3).describe() == "Hold at 500 mV until 2 mA"
    assert rest(5400).describe() == "Rest for 90 minutes"
    assert str(Protocol.parse("Rest for 2 h  # x").steps()[0]) == "Rest for 2 h"
    assert isinstance(charge(1e-3, 1), Step)


@pytest.mark.parametrize("fields, pattern", [
    ({"kind": "pulse", "current_A": 1e-4}, r"unknown step kind 'pulse'"),
    ({"kind": "charge", "current_A": -1e-4}, r"charge step with current_A -0.0001"),
    ({"kind": "discharge", "current_A": 1e-4}, r"discharge step with current_A 0.0001"),
    ({"kind": "rest", "current_A": 1e-4}, r"rest step with current_A"),
    ({"kind": "charge", "current_A": float("nan")}, r"charge step with current_A nan"),
    ({"kind": "charge", "current_A": 1e-4, "duration_s": 0.0}, r"duration_s 0.0"),
    ({"kind": "rest", "current_A": 0.0, "voltage_V": 2.0}, r"rest step with voltage_V 2.0"),
    ({"kind": "hold", "current_A": 0.0}, r"hold step with voltage_V None"),
    ({"kind": "charge", "current_A": 1e-4, "stop_current_A": 1e-6}, r"charge step with a stop current"),
    ({"kind": "hold", "current_A": 0.0, "voltage_V": 2.6, "stop_voltage_V": 2.0},
     r"hold step with a stop voltage"),
])
def test_hand_built_steps_are_checked(fields, pattern):
    with pytest.raises(ProtocolError, match=pattern):
        Step(**fields)
