"""Tests for twin/parameters: the cell parameter sets, the board file and their loaders.

Pins every value of the default set d111 (as PyBaMM's test_Ecker2015 pins its set), checks
each shipped set and board loads, that based_on sets differ from their parent only where
they say, and that every refusal branch of the loaders raises with a message naming the
field.

Run: .venv/bin/python -m pytest tests/twin/test_parameter_sets.py -q
"""

import json
import math
import pathlib
import re
import tomllib

import pytest

from twin.parameters import (
    CELL_PARAM_FIELDS,
    DESIGN_UNITS,
    FIELD_UNITS,
    OCV_MAX_POINTS,
    ParameterError,
    ParameterSet,
    available_boards,
    available_parameter_sets,
    citation_keys,
    load_board,
    load_parameter_set,
)
from twin.parameters.board import BOARD_UNITS

ROOT = pathlib.Path(__file__).resolve().parents[2]
PARAM_DIR = ROOT / "twin" / "parameters"
FARADAY_UAH_PER_MOL = 96485.33212 / 3.6e-3  # uAh per mol of electrons

D111_VALUES = {
    "area_cm2": 1.0,
    "catholyte_volume_uL": 30.0,
    "sulfur_mol_L": 3.0,
    "lithium_mol_L": 0.75,
    "ocv_x": [0.0, 0.05, 0.125, 0.20, 0.25, 0.30, 0.40, 0.70, 1.00, 1.15, 1.40, 2.00],
    "ocv_V": [2.50, 2.45, 2.40, 2.37, 2.33, 2.22, 2.13, 2.10, 2.05, 1.90, 1.72, 1.50],
    "supply_knee_x": 1e-4,
    "supply_rise_V": 1.5,
    "li2s_saturation_x": 1.0,
    "precipitation_rate_per_s": 1e-3,
    "cathode_j0_A_cm2": 5e-4,
    "electrolyte_asr_ohm_cm2": 116.0,
    "electrolyte_Ea_eV": 0.22,
    "rc_resistance_ohm_cm2": 50.0,
    "rc_time_constant_s": 20.0,
    "copper_potential_V": 2.2,
    "wetting_capacity_uAh_cm2": 0.0,
    "alloy_potential_V": 0.385,
    "alloy_slope_V": 0.05,
    "nucleation_overpotential_V": 0.030,
    "nucleation_charge_uAh_cm2": 0.5,
    "anode_j0_A_cm2": 1e-3,
    "metal_coverage_uAh_cm2": 0.01,
    "layer_thickness_A": 1500.0,
    "layer_conductivity_S_cm": 2e-6,
    "layer_Ea_eV": 0.55,
    "layer_transfer_asr_ohm_cm2": 50.0,
    "layer_transfer_Ea_eV": 0.6,
    "critical_current_A_cm2": 1.5e-3,
    "critical_Ea_eV": 0.35,
    "patchy_concentration": 3.0,
    "damage_rate_per_s": 1.0 / 600.0,
    "crack_exposed_fraction": 0.002,
    "dendrite_charge_uAh_cm2": 50.0,
    "dendrite_short_ohm": 20000.0,
    "plating_loss_fraction": 0.005,
    "corrosion_current_A_cm2": 0.014,
    "corrosion_dead_fraction": 0.2,
    "heat_capacity_J_K": 1.8,
    "heat_transfer_W_K": 0.005,
    "reference_temperature_K": 298.15,
    "max_substep_s": 5.0,
}

D111_DESIGN = {
    "target_inventory_uAh": 200.0,
    "nucleation_current_density_uA_cm2": 10.0,
    "nucleation_charge_uAh_cm2": 1.67,
    "formation_current_density_uA_cm2": 100.0,
    "discharge_cutoff_V": 2.0,
    "charge_cutoff_V": 2.6,
    "lithium_reserve_uAh": 5.0,
}

# What each based_on set changes relative to d111 (values after merging the chain).
EXPECTED_DIFFERENCES = {
    "d111": {},
    "control_no_lipon": {"layer_thickness_A": 0.0},
    "no_wetting_layer": {"layer_thickness_A": 1000.0},
    "al_wetting_layer": {"layer_thickness_A": 1000.0, "wetting_capacity_uAh_cm2": 2.68,
                         "nucleation_overpotential_V": 0.005, "patchy_concentration": 1.0},
    "product_1ah": {"layer_thickness_A": 1000.0, "wetting_capacity_uAh_cm2": 26.8,
                    "nucleation_overpotential_V": 0.005, "patchy_concentration": 1.0,
                    "area_cm2": 250.0, "catholyte_volume_uL": 15000.0, "sulfur_mol_L": 6.0,
                    "lithium_mol_L": 3.0, "heat_capacity_J_K": 25.0, "heat_transfer_W_K": 0.1,
                    "copper_potential_V": 1.9},
}
EXPECTED_DESIGN_DIFFERENCES = {
    "product_1ah": {"target_inventory_uAh": 1.0e6, "lithium_reserve_uAh": 1250.0,
                    "formation_current_density_uA_cm2": 1000.0},
}

BENCH_UA = {
    "adc_bits": 16, "adc_vref_mV": 4096.0, "adc_gain_error": 0.002, "adc_offset_counts": 3.0,
    "adc_noise_counts": 1.5, "vcell_gain": 1.0, "shunt_ohm": 100.0, "shunt_amp_gain": 10.0,
    "ishunt_offset_mV": 2048.0, "ntc_r25_ohm": 10000.0, "ntc_beta_K": 3950.0,
    "ntc_pullup_ohm": 10000.0, "source_resolution_uA": 0.0625, "source_range_uA": 2048.0,
    "source_slew_uA_per_ms": 10.0, "source_compliance_V": 4.0,
}


# ---------------------------------------------------------------- helpers


def raw(name):
    with open(PARAM_DIR / (name + ".toml"), "rb") as handle:
        return tomllib.load(handle)


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def dump_toml(data):
    """Enough TOML for parameter files: top-level scalars, tables and [design.x] tables."""
    lines = [k + " = " + _toml_value(v) for k, v in data.items() if not isinstance(v, dict)]
    for key, table in data.items():
        if not isinstance(table, dict):
            continue
        if key == "design":
            for sub, entry in table.items():
                if isinstance(entry, dict):
                    lines.append("[design.%s]" % sub)
                    lines.extend(k + " = " + _toml_value(v) for k, v in entry.items())
                else:
                    lines.append("[design]\n%s = %s" % (sub, _toml_value(entry)))
            continue
        lines.append("[%s]" % key)
        lines.extend(k + " = " + _toml_value(v) for k, v in table.items())
    return "\n".join(lines) + "\n"


def write_set(tmp_path, data, name="custom"):
    path = tmp_path / (name + ".toml")
    path.write_text(dump_toml(data), encoding="utf-8")
    return path


def refused(tmp_path, data, pattern, name="custom"):
    path = write_set(tmp_path, data, name)
    with pytest.raises(ParameterError, match=pattern) as info:
        load_parameter_set(path)
    return info.value


def cell_h_fields(struct):
    header = (ROOT / "c_core" / "cell.h").read_text()
    body = header.split("} " + struct + ";")[0].rsplit("typedef struct {", 1)[1]
    names = []
    for line in body.splitlines():
        code = line.split("/*")[0].strip()
        if code.endswith(";"):
            names.append(re.sub(r"\[.*\]", "", code[:-1].split()[-1]))
    return names


# ---------------------------------------------------------------- the field table


def test_field_list_is_cell_params_t_in_struct_order():
    assert list(CELL_PARAM_FIELDS) == cell_h_fields("cell_params_t")
    assert set(FIELD_UNITS) == set(CELL_PARAM_FIELDS) - {"n_ocv_points", "ocv_x", "ocv_V"}


def test_ocv_limit_matches_cell_h():
    header = (ROOT / "c_core" / "cell.h").read_text()
    assert "#define CELL_OCV_MAX_POINTS %d" % OCV_MAX_POINTS in header


@pytest.mark.parametrize("suffix, unit", [
    ("_A_cm2", "A/cm2"), ("_ohm_cm2", "ohm*cm2"), ("_eV", "eV"), ("_per_s", "1/s"),
    ("_K", "K"), ("_J_K", "J/K"), ("_W_K", "W/K"), ("_uAh_cm2", "uAh/cm2"), ("_V", "V"),
    ("_S_cm", "S/cm"), ("_uL", "uL"), ("_mol_L", "mol/L"), ("_cm2", "cm2"),
    ("_thickness_A", "angstrom"), ("_ohm", "ohm"),
])
def test_units_follow_the_name_suffix(suffix, unit):
    # the longest matching suffix decides (_A_cm2 before _cm2, _J_K before _K)
    suffixes = ["_A_cm2", "_ohm_cm2", "_uAh_cm2", "_J_K", "_W_K", "_per_s", "_S_cm", "_eV",
                "_mol_L", "_uL", "_thickness_A", "_ohm", "_cm2", "_K", "_V", "_s"]
    matched = [f for f in FIELD_UNITS
               if next((s for s in suffixes if f.endswith(s)), None) == suffix]
    assert matched, suffix
    assert {FIELD_UNITS[f] for f in matched} == {unit}


def test_dimensionless_fields_are_unit_1():
    for field in ("supply_knee_x", "li2s_saturation_x", "patchy_concentration",
                  "crack_exposed_fraction", "plating_loss_fraction", "corrosion_dead_fraction"):
        assert FIELD_UNITS[field] == "1"
    assert FIELD_UNITS["rc_time_constant_s"] == FIELD_UNITS["max_substep_s"] == "s"


# ---------------------------------------------------------------- d111 pinned


def test_d111_every_value_pinned():
    params = load_parameter_set("d111")
    # values holds exactly the cell_params_t fields except the derived n_ocv_points
    assert set(params.values) == set(CELL_PARAM_FIELDS) - {"n_ocv_points"}
    assert set(D111_VALUES) == set(params.values)
    for field, expected in D111_VALUES.items():
        assert params.values[field] == expected, field
    assert all(type(v) is float for f, v in params.values.items() if f not in ("ocv_x", "ocv_V"))
    assert params.values["damage_rate_per_s"] == 0.0016666666666666668
    assert params.n_ocv_points == 12 and params["area_cm2"] == 1.0


def test_d111_design_pinned():
    params = load_parameter_set("d111")
    assert dict(params.design) == D111_DESIGN
    assert dict(params.design_units) == dict(DESIGN_UNITS)
    assert all(params.design_sources[f].strip() for f in DESIGN_UNITS)


def test_d111_units_and_sources_cover_every_value():
    params = load_parameter_set("d111")
    assert set(params.units) == set(params.values) == set(params.sources)
    for field, unit in FIELD_UNITS.items():
        assert params.units[field] == unit
    assert params.units["ocv_V"] == "V"
    assert "Marinescu2016" in params.sources["ocv_V"]
    assert params.sources["ocv_x"] == params.sources["ocv_V"]
    assert params.based_on == () and params.name == "d111"


def test_d111_derived_numbers_follow_from_their_inputs():
    params = load_parameter_set("d111")
    # ~1000 A for 58 min at 75 W, so 85 min at 78 W gives ~1520 A
    assert params["layer_thickness_A"] == pytest.approx(1000 * 85 * 78 / (58 * 75), rel=0.02)
    # 0.058 cm / 1e-3 S/cm x tortuosity 2
    assert params["electrolyte_asr_ohm_cm2"] == pytest.approx(0.058 / 1e-3 * 2)
    # shipped at Li2S8: OCV 2.33 V, precursor shows 0.1-0.2 V against the Cu couple
    x0 = params["lithium_mol_L"] / params["sulfur_mol_L"]
    assert x0 == 0.25
    ocv0 = params["ocv_V"][params["ocv_x"].index(x0)]
    assert 0.1 <= ocv0 - params["copper_potential_V"] <= 0.2
    # the no-wetting critical mean density lands inside DESIGN's 0.1..1 mA/cm2 bracket
    mean_critical = params["critical_current_A_cm2"] / params["patchy_concentration"]
    assert 1e-4 < mean_critical < 1e-3
    # 0.5 % of 701.6 uAh lost leaves at least the 188.2 uAh the seed stripped
    assert 201.6 - params["plating_loss_fraction"] * 701.6 >= 188.2


def test_d111_citations_are_bib_keys():
    params = load_parameter_set("d111")
    keys = citation_keys()
    assert set(params.citations) <= keys
    assert {"seed", "Yu1997", "Yan2016", "Marinescu2016", "Adams2018", "calibration_md"} <= set(params.citations)
    assert {"seed", "Yu1997", "Bates1992", "Yan2016", "Marinescu2016", "Hua2019", "Ueno2012",
            "Adams2018", "BatteryMaterialsHandbook", "calibration_md", "hal_md"} <= keys


# ---------------------------------------------------------------- all shipped sets


def test_available_sets():
    assert available_parameter_sets() == sorted(EXPECTED_DIFFERENCES)


@pytest.mark.parametrize("name", sorted(EXPECTED_DIFFERENCES))
def test_each_set_differs_from_d111_only_where_it_says(name):
    params = load_parameter_set(name)
    base = load_parameter_set("d111")
    assert isinstance(params, ParameterSet) and params.name == name
    changed = {f: params.values[f] for f in params.values if params.values[f] != base.values[f]}
    assert changed == EXPECTED_DIFFERENCES[name]
    design_changed = {f: params.design[f] for f in params.design if params.design[f] != base.design[f]}
    assert design_changed == EXPECTED_DESIGN_DIFFERENCES.get(name, {})


@pytest.mark.parametrize("name", sorted(EXPECTED_DIFFERENCES))
def test_each_set_file_has_a_header_and_lists_only_what_differs(name):
    text = (PARAM_DIR / (name + ".toml")).read_text()
    assert text.startswith("# %s -- " % name)
    assert "What it does not claim" in text
    data = raw(name)
    if "based_on" not in data:
        return
    parent = load_parameter_set(data["based_on"])
    for field, entry in data.items():
        if field in FIELD_UNITS:
            assert entry["value"] != parent.values[field], "%s repeats %s" % (name, field)
    for field, entry in data.get("design", {}).items():
        assert entry["value"] != parent.design[field], "%s repeats design.%s" % (name, field)


@pytest.mark.parametrize("name", sorted(EXPECTED_DIFFERENCES))
def test_each_set_catholyte_holds_the_design_inventory(name):
    params = load_parameter_set(name)
    li_uAh = params["lithium_mol_L"] * params["catholyte_volume_uL"] * 1e-6 * FARADAY_UAH_PER_MOL
    assert params.design["target_inventory_uAh"] + params.design["lithium_reserve_uAh"] < li_uAh


def test_based_on_chains():
    assert load_parameter_set("control_no_lipon").based_on == ("d111",)
    assert load_parameter_set("al_wetting_layer").based_on == ("no_wetting_layer", "d111")
    assert load_parameter_set("product_1ah").based_on == ("al_wetting_layer", "no_wetting_layer", "d111")


def test_based_on_keeps_the_parent_sources_of_inherited_fields():
    child = load_parameter_set("al_wetting_layer")
    parent = load_parameter_set("d111")
    assert child.sources["sulfur_mol_L"] == parent.sources["sulfur_mol_L"]
    assert child.sources["wetting_capacity_uAh_cm2"] != parent.sources["wetting_capacity_uAh_cm2"]
    assert "Cheng2022" in child.citations and "Cheng2022" not in parent.citations


def test_product_1ah_scaling():
    params = load_parameter_set("product_1ah")
    li_Ah = params["lithium_mol_L"] * params["catholyte_volume_uL"] * 1e-6 * FARADAY_UAH_PER_MOL * 1e-6
    assert 1.15 <= li_Ah <= 1.25
    assert params["lithium_mol_L"] / params["sulfur_mol_L"] == 0.5     # Li2S4
    assert params["wetting_capacity_uAh_cm2"] == 26.8
    # two thirds of the wetted glass's 1.5 mA/cm2 critical density: the fastest it tolerates
    assert params.design["formation_current_density_uA_cm2"] == 1000.0
    assert params.design["formation_current_density_uA_cm2"] < 1e6 * params["critical_current_A_cm2"]
    assert params.board == "bench_a"
    assert params["area_cm2"] == 250.0


def test_control_no_lipon_keeps_layer_fields():
    control = load_parameter_set("control_no_lipon")
    assert control["layer_thickness_A"] == 0.0
    assert control["layer_conductivity_S_cm"] == D111_VALUES["layer_conductivity_S_cm"]
    assert "ignored" in control.sources["layer_thickness_A"]


# ---------------------------------------------------------------- lookup errors


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ParameterError, match=r"unknown parameter set 'd112'; valid sets: "
                                             r"al_wetting_layer, control_no_lipon, d111"):
        load_parameter_set("d112")


def test_missing_path_and_bad_name_type(tmp_path):
    with pytest.raises(ParameterError, match=r"no such parameter file"):
        load_parameter_set(tmp_path / "nothing.toml")
    with pytest.raises(ParameterError, match=r"named by a non-empty str or a path"):
        load_parameter_set("")


def test_set_loads_by_path_and_by_str_path(tmp_path):
    path = write_set(tmp_path, raw("d111"), "copy")
    assert load_parameter_set(path).values == load_parameter_set("d111").values
    assert load_parameter_set(str(path)).name == "copy"


def test_not_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[area_cm2\nvalue = 1\n")
    with pytest.raises(ParameterError, match=r"broken.toml: not valid TOML"):
        load_parameter_set(path)


# ---------------------------------------------------------------- entry errors


def with_entry(field, **changes):
    data = raw("d111")
    data[field] = dict(data[field], **changes)
    return data


@pytest.mark.parametrize("field, unit, expected", [
    ("area_cm2", "cm^2", "cm2"),
    ("catholyte_volume_uL", "mL", "uL"),
    ("sulfur_mol_L", "M", "mol/L"),
    ("layer_thickness_A", "A", "angstrom"),
    ("electrolyte_asr_ohm_cm2", "ohm cm2", "ohm*cm2"),
    ("critical_current_A_cm2", "mA/cm2", "A/cm2"),
    ("precipitation_rate_per_s", "s-1", "1/s"),
    ("heat_capacity_J_K", "J/g/K", "J/K"),
    ("patchy_concentration", "", "1"),
])
def test_unit_mismatch_is_refused(tmp_path, field, unit, expected):
    error = refused(tmp_path, with_entry(field, unit=unit),
                    re.escape("custom.toml: %s: unit %r found, %r expected" % (field, unit, expected)))
    assert error.field == field


@pytest.mark.parametrize("value, pattern", [
    (float("nan"), r"value must be finite, found nan"),
    (float("inf"), r"value must be finite, found inf"),
    (True, r"value must be a number, found True"),
    ("1.0", r"value must be a number, found '1.0'"),
    ([1.0], r"value must be a number"),
])
def test_non_finite_or_non_numeric_value_is_refused(tmp_path, value, pattern):
    refused(tmp_path, with_entry("area_cm2", value=value), r"area_cm2: " + pattern)


def test_integer_value_is_accepted_as_float(tmp_path):
    params = load_parameter_set(write_set(tmp_path, with_entry("dendrite_short_ohm", value=2000)))
    assert params["dendrite_short_ohm"] == 2000.0 and isinstance(params["dendrite_short_ohm"], float)


@pytest.mark.parametrize("source, pattern", [
    ("", r"source must be a non-empty string"),
    (3, r"source must be a non-empty string, found 3"),
    ("trust me", r"source 'trust me' cites no key of citations.bib and does not start with "
                 r"one of assumed, derived, fit"),
    ("seedling data", r"source 'seedling data' cites no key"),
])
def test_bad_source_is_refused(tmp_path, source, pattern):
    refused(tmp_path, with_entry("area_cm2", source=source), r"area_cm2: " + pattern)


def test_entry_needs_exactly_value_unit_source(tmp_path):
    data = raw("d111")
    del data["area_cm2"]["source"]
    refused(tmp_path, data, r"area_cm2: entry needs exactly value, unit, source \(missing source\)")
    refused(tmp_path, with_entry("area_cm2", note="x"), r"\(unknown note\)")
    data = raw("d111")
    data["area_cm2"] = 1.0
    refused(tmp_path, data, r"area_cm2: must be a table with value, unit and source, found 1.0")


def test_unknown_and_missing_fields_are_refused(tmp_path):
    data = raw("d111")
    data["area_mm2"] = {"value": 100.0, "unit": "mm2", "source": "assumed"}
    error = refused(tmp_path, data, r"area_mm2: unknown field\(s\) area_mm2; valid fields: .*area_cm2")
    assert error.field == "area_mm2"
    data = raw("d111")
    data["name"] = "d111"
    refused(tmp_path, data, r"unknown field\(s\) name")
    data = raw("d111")
    del data["heat_capacity_J_K"]
    refused(tmp_path, data, r"heat_capacity_J_K: missing field\(s\) heat_capacity_J_K")
    data = raw("d111")
    del data["ocv"]
    refused(tmp_path, data, r"ocv: missing field\(s\) ocv")


@pytest.mark.parametrize("field, value, pattern", [
    ("area_cm2", 0.0, r"area_cm2: value 0.0 out of range: must be > 0"),
    ("catholyte_volume_uL", -1.0, r"must be > 0"),
    ("lithium_mol_L", -0.1, r"lithium_mol_L: value -0.1 out of range: must be >= 0"),
    ("patchy_concentration", 0.9, r"patchy_concentration: value 0.9 out of range: must be >= 1"),
    ("crack_exposed_fraction", 1.5, r"must be >= 0 and <= 1"),
    ("plating_loss_fraction", 1.0, r"plating_loss_fraction: value 1.0 out of range: must be >= 0 and < 1"),
    ("layer_thickness_A", -5.0, r"must be >= 0"),
    ("max_substep_s", 0.0, r"max_substep_s: .* must be > 0"),
    ("lithium_mol_L", 9.0, r"lithium_mol_L: shipped Li:S = lithium_mol_L / sulfur_mol_L = 3.0 lies "
                           r"outside the OCV table \(x from 0.0 to 2.0\)"),
    ("li2s_saturation_x", 2.5, r"li2s_saturation_x: 2.5 lies outside the OCV table"),
])
def test_out_of_range_values_are_refused(tmp_path, field, value, pattern):
    refused(tmp_path, with_entry(field, value=value), pattern)


# ---------------------------------------------------------------- OCV table errors


def with_ocv(**changes):
    data = raw("d111")
    data["ocv"] = dict(data["ocv"], **changes)
    return data


@pytest.mark.parametrize("changes, pattern", [
    ({"unit": "mV"}, r"ocv: unit 'mV' found, 'V' expected"),
    ({"x": [0.0, 0.1, 0.1, 2.0], "V": [2.5, 2.4, 2.3, 1.5]}, r"ocv_x: x must rise strictly: x\[2\] = 0.1 follows 0.1"),
    ({"x": [0.0, 0.5, 0.3, 2.0], "V": [2.5, 2.4, 2.3, 1.5]}, r"x\[2\] = 0.3 follows 0.5"),
    ({"x": [0.0, 2.0], "V": [2.5]}, r"ocv: x has 2 points but V has 1"),
    ({"x": [0.5], "V": [2.5]}, r"ocv: needs 2 to 24 points \(CELL_OCV_MAX_POINTS\), found 1"),
    ({"x": [i * 0.1 for i in range(25)], "V": [2.5] * 25}, r"needs 2 to 24 points .* found 25"),
    ({"x": [-0.1, 0.5, 2.0], "V": [2.5, 2.1, 1.5]}, r"ocv_x: x must start at >= 0"),
    ({"x": [0.0, 0.5, 2.0], "V": [2.5, 0.0, 1.5]}, r"ocv_V: V\[1\] = 0.0 must be > 0"),
    ({"x": [0.0, 0.5, 2.0], "V": [2.5, float("nan"), 1.5]}, r"ocv_V: value must be finite, found nan"),
    ({"x": "0 1 2"}, r"ocv_x: must be a list of numbers"),
    ({"source": "eyeballed"}, r"ocv: source 'eyeballed' cites no key"),
])
def test_ocv_table_errors(tmp_path, changes, pattern):
    refused(tmp_path, with_ocv(**changes), pattern)


def test_ocv_table_with_extra_key_is_refused(tmp_path):
    refused(tmp_path, with_ocv(x_unit="1"), r"ocv: must be a table with exactly x, V, unit, source")


def test_ocv_table_of_24_points_is_accepted(tmp_path):
    x = [i * 2.0 / 23 for i in range(24)]
    V = [2.5 - 0.04 * i for i in range(24)]
    params = load_parameter_set(write_set(tmp_path, with_ocv(x=x, V=V)))
    assert params.n_ocv_points == 24 and params["ocv_x"] == x


# ---------------------------------------------------------------- design table errors


def test_design_errors(tmp_path):
    data = raw("d111")
    data["design"]["target_inventory_uAh"]["unit"] = "mAh"
    refused(tmp_path, data, r"design.target_inventory_uAh: unit 'mAh' found, 'uAh' expected")
    data = raw("d111")
    data["design"]["formation_current_A"] = {"value": 1e-4, "unit": "A", "source": "assumed"}
    refused(tmp_path, data, r"design.formation_current_A: unknown design field\(s\) formation_current_A")
    data = raw("d111")
    del data["design"]["charge_cutoff_V"]
    refused(tmp_path, data, r"design.charge_cutoff_V: missing design field\(s\) charge_cutoff_V")
    data = raw("d111")
    data["design"]["discharge_cutoff_V"]["value"] = 2.7
    refused(tmp_path, data, r"design.discharge_cutoff_V: discharge_cutoff_V 2.7 must be below charge_cutoff_V 2.6")
    data = raw("d111")
    data["design"]["target_inventory_uAh"]["value"] = 0.0
    refused(tmp_path, data, r"design.target_inventory_uAh: value 0.0 out of range")
    data = raw("d111")
    data["design"] = {"target_inventory_uAh": 200.0}
    refused(tmp_path, data, r"design.target_inventory_uAh: must be a table with value, unit and source")


# ---------------------------------------------------------------- based_on


def test_based_on_in_a_private_file_resolves_to_the_shipped_set(tmp_path):
    path = write_set(tmp_path, {
        "based_on": "d111",
        "layer_thickness_A": {"value": 500.0, "unit": "angstrom", "source": "assumed: thin film"},
        "design": {"lithium_reserve_uAh": {"value": 7.0, "unit": "uAh", "source": "assumed: more"}},
    }, "thin")
    params = load_parameter_set(path)
    assert params["layer_thickness_A"] == 500.0 and params.based_on == ("d111",)
    assert params.design["lithium_reserve_uAh"] == 7.0
    assert params.design["target_inventory_uAh"] == 200.0
    assert params.sources["layer_thickness_A"] == "assumed: thin film"


def test_based_on_prefers_a_sibling_file(tmp_path):
    write_set(tmp_path, dict(raw("d111"), area_cm2={"value": 2.0, "unit": "cm2", "source": "assumed"}), "base")
    path = write_set(tmp_path, {"based_on": "base"}, "child")
    assert load_parameter_set(path)["area_cm2"] == 2.0


def test_based_on_errors(tmp_path):
    refused(tmp_path, {"based_on": "d112"}, r"based_on: unknown parameter set 'd112'; valid sets:")
    refused(tmp_path, {"based_on": 111}, r"based_on: must name another parameter set, found 111")
    write_set(tmp_path, {"based_on": "loop_b"}, "loop_a")
    refused(tmp_path, {"based_on": "loop_a"}, r"based_on forms a loop: loop_b -> loop_a -> loop_b", "loop_b")
    refused(tmp_path, {"based_on": "d111", "area_cm2": {"value": 1.0, "unit": "m2", "source": "assumed"}},
            r"area_cm2: unit 'm2' found, 'cm2' expected")


# ---------------------------------------------------------------- with_overrides


def test_with_overrides_returns_a_new_checked_set():
    base = load_parameter_set("d111")
    thin = base.with_overrides(layer_thickness_A=1000.0, patchy_concentration=2)
    assert thin["layer_thickness_A"] == 1000.0 and thin["patchy_concentration"] == 2.0
    assert base["layer_thickness_A"] == 1500.0
    assert thin.overrides == ("layer_thickness_A", "patchy_concentration")
    assert thin.sources["layer_thickness_A"] == "override (with_overrides)"
    assert thin.name == "d111" and thin.design == base.design
    again = thin.with_overrides(layer_thickness_A=800.0)
    assert again.overrides == ("layer_thickness_A", "patchy_concentration")


def test_with_overrides_ocv():
    base = load_parameter_set("d111")
    params = base.with_overrides(ocv_x=[0.0, 0.25, 2.0], ocv_V=[2.5, 2.3, 1.5])
    assert params.n_ocv_points == 3 and params["ocv_V"] == [2.5, 2.3, 1.5]
    with pytest.raises(ParameterError, match=r"ocv: x has 3 points but V has 12"):
        base.with_overrides(ocv_x=[0.0, 0.25, 2.0])


@pytest.mark.parametrize("fields, pattern", [
    ({"area_m2": 1.0}, r"area_m2: unknown field; valid fields: area_cm2"),
    ({"n_ocv_points": 3}, r"n_ocv_points: is derived from ocv_x/ocv_V"),
    ({"area_cm2": float("nan")}, r"area_cm2: value must be finite, found nan"),
    ({"area_cm2": "2"}, r"area_cm2: value must be a number"),
    ({"area_cm2": -1.0}, r"area_cm2: value -1.0 out of range: must be > 0"),
    ({"sulfur_mol_L": 0.1}, r"lithium_mol_L: shipped Li:S .* outside the OCV table"),
])
def test_with_overrides_errors(fields, pattern):
    base = load_parameter_set("d111")
    with pytest.raises(ParameterError, match=r"with_overrides\(.*\): " + pattern):
        base.with_overrides(**fields)
    assert base["area_cm2"] == 1.0 and base["sulfur_mol_L"] == 3.0


def test_parameter_set_hands_out_copies():
    params = load_parameter_set("d111")
    values = params.values
    values["area_cm2"] = 2.0
    values["ocv_x"][0] = 9.0
    params.design["target_inventory_uAh"] = 1.0
    params.sources["area_cm2"] = "edited"
    assert params["area_cm2"] == 1.0 and params["ocv_x"][0] == 0.0
    assert params.design["target_inventory_uAh"] == 200.0
    assert params.sources["area_cm2"].startswith("seed")
    # plain dicts and lists: the CLI json-dumps them as they are
    assert json.loads(json.dumps(params.values)) == D111_VALUES
    board = load_board("bench_ua")
    board.values["shunt_ohm"] = 1.0
    assert board["shunt_ohm"] == 100.0


# ---------------------------------------------------------------- board


def test_bench_ua_every_value_pinned():
    board = load_board("bench_ua")
    assert dict(board.values) == BENCH_UA
    assert isinstance(board["adc_bits"], int)
    assert board.citations == ("hal_md",)
    assert set(board.sources) == set(BOARD_UNITS)
    assert available_boards() == ["bench_a", "bench_ma", "bench_ua"]


def test_bench_ua_matches_the_hal_doc_transfer():
    board = load_board("bench_ua")
    lsb_mV = board["adc_vref_mV"] / 2 ** board["adc_bits"]
    assert lsb_mV == 0.0625
    # ISHUNT: 1.0 mV per uA, and +-2048 uA span the ADC around the mid-scale offset
    mV_per_uA = board["shunt_ohm"] * board["shunt_amp_gain"] * 1e-3
    assert mV_per_uA == 1.0
    assert board["ishunt_offset_mV"] / mV_per_uA == board["source_range_uA"]
    # source: 16-bit DAC over +-range
    assert 2 * board["source_range_uA"] / 2 ** 16 == board["source_resolution_uA"]


def board_data():
    with open(PARAM_DIR / "boards" / "bench_ua.toml", "rb") as handle:
        return tomllib.load(handle)


def refused_board(tmp_path, data, pattern):
    path = write_set(tmp_path, data, "board")
    with pytest.raises(ParameterError, match=pattern):
        load_board(path)


def test_board_errors(tmp_path):
    data = board_data()
    data["shunt_ohm"]["unit"] = "kohm"
    refused_board(tmp_path, data, r"board.toml: shunt_ohm: unit 'kohm' found, 'ohm' expected")
    data = board_data()
    data["adc_bits"]["value"] = 16.5
    refused_board(tmp_path, data, r"adc_bits: value must be a whole number, found 16.5")
    data = board_data()
    data["adc_bits"]["value"] = 40
    refused_board(tmp_path, data, r"adc_bits: value 40 out of range: must be >= 1 and <= 32")
    data = board_data()
    data["adc_noise_counts"]["value"] = float("nan")
    refused_board(tmp_path, data, r"adc_noise_counts: value must be finite")
    data = board_data()
    data["relay_ohm"] = {"value": 0.1, "unit": "ohm", "source": "assumed"}
    refused_board(tmp_path, data, r"relay_ohm: unknown field\(s\) relay_ohm")
    data = board_data()
    del data["ntc_beta_K"]
    refused_board(tmp_path, data, r"ntc_beta_K: missing field\(s\) ntc_beta_K")
    data = board_data()
    data["ishunt_offset_mV"]["value"] = 5000.0
    refused_board(tmp_path, data, r"ishunt_offset_mV: offset 5000.0 mV lies above the ADC reference 4096.0 mV")
    data = board_data()
    data["vcell_gain"]["source"] = "guess"
    refused_board(tmp_path, data, r"vcell_gain: source 'guess' cites no key")


def test_unknown_board_lists_the_valid_ones():
    with pytest.raises(ParameterError, match=r"unknown board 'bench_kA'; valid boards: bench_a, bench_ma, bench_ua"):
        load_board("bench_kA")


@pytest.mark.parametrize("name, range_ua, lsb_ua", [("bench_ma", 20480, 0.625), ("bench_a", 2048000, 62.5)])
def test_the_ma_and_a_boards_span_their_source_with_the_shunt(name, range_ua, lsb_ua):
    from twin.firmware_config import current_resolution, ishunt_rail_ua
    board = load_board(name)
    assert board["source_range_uA"] == range_ua == pytest.approx(ishunt_rail_ua(board))
    assert current_resolution(board)[0] == pytest.approx(lsb_ua)
    assert board["source_resolution_uA"] == pytest.approx(2 * range_ua / 65536)
    # the same ADC and thermistor chain as the reference board
    for field in ("adc_bits", "adc_vref_mV", "adc_gain_error", "ntc_r25_ohm", "ntc_beta_K", "ntc_pullup_ohm"):
        assert board[field] == BENCH_UA[field]


def test_a_parameter_set_naming_an_unknown_board_is_refused(tmp_path):
    path = tmp_path / "odd.toml"
    path.write_text('based_on = "d111"\nboard = "bench_kA"\n')
    with pytest.raises(ParameterError, match=r"board.*bench_a, bench_ma, bench_ua.*'bench_kA'"):
        load_parameter_set(str(path))
