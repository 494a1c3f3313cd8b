"""The cycler channel (twin/cycler.py): defaults derived from the cell's design, files
with units and sources, what the channel refuses, and the C fields it fills.

Run: .venv/bin/python -m pytest tests/twin/test_cycler.py -q
"""
import pytest

from twin.cell import KELVIN
from twin.cycler import (
    CHARGE_COMPLIANCE_MARGIN_V,
    CURRENT_RANGE_A_CM2,
    CYCLER_FIELDS,
    CYCLER_UNITS,
    DISCHARGE_COMPLIANCE_MARGIN_V,
    SEGMENT_FIELDS,
    Cycler,
    CyclerError,
    available_cyclers,
    load_cycler,
)
from twin.parameters import load_parameter_set
from twin.protocol import Protocol, charge, discharge, hold, rest

D111 = load_parameter_set("d111")
PRODUCT = load_parameter_set("product_1ah")


def test_defaults_follow_the_cells_design_and_say_how():
    c = Cycler.for_cell(D111)
    design = D111.design
    assert c["compliance_max_V"] == design["charge_cutoff_V"] + CHARGE_COMPLIANCE_MARGIN_V == 3.0
    assert c["compliance_min_V"] == design["discharge_cutoff_V"] - DISCHARGE_COMPLIANCE_MARGIN_V == 1.5
    assert c["current_range_A"] == pytest.approx(CURRENT_RANGE_A_CM2 * D111.values["area_cm2"])
    assert c["hold_current_limit_A"] == pytest.approx(100e-6)          # the design's formation current
    assert c["safety_max_V"] > c["compliance_max_V"] and c["safety_min_V"] < c["compliance_min_V"]
    assert c["safety_max_temperature_C"] < 180.5                        # lithium melts
    assert set(c.values) == set(CYCLER_FIELDS) == set(c.sources) == set(c.units)
    assert all(src.startswith(("derived", "assumed")) for src in c.sources.values())
    assert "charge_cutoff_V" in c.sources["compliance_max_V"]


def test_the_product_cell_gets_a_channel_of_its_size():
    c = Cycler.for_cell(PRODUCT)
    assert c["current_range_A"] == pytest.approx(25.0)                  # 250 cm2
    assert c["hold_current_limit_A"] == pytest.approx(0.25)               # 1000 µA/cm² formation


def test_a_file_gives_what_it_says_and_the_cell_the_rest(tmp_path):
    path = tmp_path / "narrow.toml"
    path.write_text('[current_range_A]\nvalue = 0.005\nunit = "A"\nsource = "assumed: a 5 mA range"\n')
    c = load_cycler(path, D111)
    assert c.name == "narrow" and c["current_range_A"] == 0.005
    assert c.sources["current_range_A"] == "assumed: a 5 mA range"
    assert c["compliance_max_V"] == Cycler.for_cell(D111)["compliance_max_V"]
    assert c.sources["compliance_max_V"].startswith("derived")


def test_the_shipped_channel_loads_by_name():
    assert "lab_5v" in available_cyclers()
    c = load_cycler("lab_5v", D111)
    assert (c["compliance_min_V"], c["compliance_max_V"]) == (0.0, 5.0)
    assert all(not src.startswith("derived") for src in c.sources.values())


@pytest.mark.parametrize("text, field, says", [
    ('[volts]\nvalue = 1\nunit = "V"\nsource = "assumed: x"\n', "volts", "unknown entry"),
    ('[compliance_max_V]\nvalue = 3000\nunit = "mV"\nsource = "assumed: x"\n', "compliance_max_V",
     "unit 'mV' found, 'V' expected"),
    ('[compliance_max_V]\nvalue = 3.0\nunit = "V"\nsource = "a guess"\n', "compliance_max_V", "cites no key"),
    ('[compliance_max_V]\nvalue = "3"\nunit = "V"\nsource = "assumed: x"\n', "compliance_max_V",
     "must be a number"),
    ('[compliance_max_V]\nvalue = 1.0\nunit = "V"\nsource = "assumed: x"\n', "compliance_min_V",
     "must lie below compliance_max_V"),
    ('[safety_max_temperature_C]\nvalue = 400.0\nunit = "degC"\nsource = "assumed: x"\n',
     "safety_max_temperature_C", "out of range"),
    ('[hold_current_limit_A]\nvalue = 1.0\nunit = "A"\nsource = "assumed: x"\n', "hold_current_limit_A",
     "must not exceed current_range_A"),
    ('[current_range_A]\nvalue = nan\nunit = "A"\nsource = "assumed: x"\n', "current_range_A", "finite"),
    ("not toml [", "--cycler", "not valid TOML"),
])
def test_a_bad_file_is_refused_naming_the_entry(tmp_path, text, field, says):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(CyclerError) as caught:
        load_cycler(path, D111)
    assert caught.value.field == field
    assert says in str(caught.value)


def test_an_unknown_name_lists_the_shipped_channels():
    with pytest.raises(CyclerError, match="shipped: lab_5v"):
        load_cycler("nothere", D111)


def test_steps_the_channel_cannot_run_are_refused_with_their_line():
    c = Cycler.for_cell(D111)
    c.check_protocol(Protocol.parse("Charge at 100 mA for 1 s\nHold at 2.6 V until 99 uA\n"))
    with pytest.raises(CyclerError, match=r"line 2.*0.3 A is above the channel's current range of 0.1 A"):
        c.check_protocol(Protocol.parse("Rest for 1 s\nDischarge at 300 mA for 1 s\n"))
    with pytest.raises(CyclerError, match=r"stop current 0.0001 A is not below the channel's hold current limit"):
        c.check_protocol(Protocol.parse("Hold at 2.6 V until 100 uA\n"))
    with pytest.raises(CyclerError, match="safety temperature"):
        c.check_ambient(150.0)
    c.check_ambient(149.0)


def test_a_repeated_step_is_checked_once_not_per_repetition():
    seen = []
    c = Cycler.for_cell(D111)
    c.check_step = seen.append
    c.check_protocol(Protocol.parse("Repeat 50000 times:\n    Charge at 1 uA for 1 s\n    Rest for 1 s\n"))
    assert len(seen) == 2


def test_segment_fields_carry_every_limit_and_the_hold_limit_on_holds_only():
    c = Cycler.for_cell(D111)
    for step in (charge(1e-4, 1), discharge(1e-4, 1), rest(1), hold(2.5, duration_s=1)):
        fields = c.segment_fields(step)
        assert set(fields) == set(SEGMENT_FIELDS)
        assert fields["use_compliance"] == fields["use_safety_voltage"] == fields["use_safety_temperature"] == 1
        assert fields["safety_max_temperature_K"] == c["safety_max_temperature_C"] + KELVIN
        assert fields["use_current_limit"] == (1 if step.kind == "hold" else 0)
    assert set(CYCLER_UNITS) == set(CYCLER_FIELDS)
