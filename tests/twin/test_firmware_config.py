"""twin/firmware_config.py: the firmware's front-end constants derived from a board
description, and config_for(parameters, board).

bmsfw.config.Config's defaults are the reference board: they must equal what
bench_ua.toml gives, so a change to either side alone fails here, naming the field.

Run: .venv/bin/python -m pytest tests/twin/test_firmware_config.py -q
"""
import pytest

from bmsfw.config import Config
from bmsfw.errors import FieldError
from twin.firmware_config import FrontEndError, config_for, front_end_config, ishunt_rail_ua, source_max_ua
from twin.parameters import ParameterError, available_parameter_sets, load_board, load_parameter_set

BENCH_UA = load_board("bench_ua").values
# 2 mV/µA around 1500 mV: ISHUNT rails at -750 µA and +1298 µA; a 100 k NTC on 47 k
OTHER = dict(BENCH_UA, shunt_ohm=50.0, shunt_amp_gain=40.0, ishunt_offset_mV=1500.0, source_range_uA=1000.0,
             source_resolution_uA=2000 / 65536, ntc_r25_ohm=100000.0, ntc_beta_K=4250.0, ntc_pullup_ohm=47000.0)


def test_the_firmware_defaults_are_the_reference_board():
    derived = front_end_config("bench_ua")
    assert "ishunt_uv_per_ua" in derived and "current_max_ua" in derived
    defaults = Config()
    for name, value in derived.items():
        assert getattr(defaults, name) == value, f"Config.{name} = {getattr(defaults, name)!r}, bench_ua gives {value!r}"


def test_the_reference_board_figures():
    assert front_end_config(BENCH_UA) == front_end_config(load_board("bench_ua")) == front_end_config("bench_ua")
    assert ishunt_rail_ua("bench_ua") == 2048.0
    derived = front_end_config("bench_ua")
    assert derived["ishunt_uv_per_ua"] == 1000          # 100 ohm x 10
    assert derived["ishunt_mid_mv"] == 2048
    assert derived["source_max_ua"] == 2048
    assert derived["current_max_ua"] == 2000            # 2 % below the 2048 µA rail, two digits
    assert derived["vcell_gain_err_ppm"] == 0


def test_another_board_gives_its_own_front_end():
    derived = front_end_config(OTHER)
    assert derived["ishunt_uv_per_ua"] == 2000
    assert derived["ishunt_mid_mv"] == 1500
    assert derived["ntc_r25_ohm"] == 100000 and derived["ntc_beta_k"] == 4250 and derived["ntc_pullup_ohm"] == 47000
    assert ishunt_rail_ua(OTHER) == 750.0               # the negative side rails first
    assert derived["source_max_ua"] == 1000
    assert derived["current_max_ua"] == 730             # 735 (2 % below 750), two digits


def test_a_source_narrower_than_the_shunt_bounds_the_current():
    derived = front_end_config(dict(BENCH_UA, source_range_uA=500.7))
    assert derived["source_max_ua"] == 500 == source_max_ua(dict(BENCH_UA, source_range_uA=500.7))
    assert derived["current_max_ua"] == 500


def test_a_vcell_divider_within_ten_percent_is_a_gain_error_to_remove():
    assert front_end_config(dict(BENCH_UA, vcell_gain=1.02))["vcell_gain_err_ppm"] == 20000
    assert front_end_config(dict(BENCH_UA, vcell_gain=0.99))["vcell_gain_err_ppm"] == -10000


def test_config_for_takes_the_front_end_from_the_board_and_the_design_from_the_cell():
    d111 = load_parameter_set("d111")
    on_other = config_for(d111, OTHER)
    on_bench = config_for(d111)
    derived = front_end_config(OTHER)
    for name in Config().names():
        expected = derived[name] if name in derived else getattr(on_bench, name)
        assert getattr(on_other, name) == expected, name
    assert config_for(d111, OTHER, current_max_ua=100).current_max_ua == 100      # overrides win


@pytest.mark.parametrize("name", available_parameter_sets())
def test_every_cell_gets_the_front_end_of_the_board_it_names(name):
    params = load_parameter_set(name)
    config = config_for(params)
    for field, value in front_end_config(params.board).items():
        assert getattr(config, field) == value, field
    if params.board == "bench_ua":
        # the reference board: the firmware's own defaults
        for field, value in front_end_config("bench_ua").items():
            assert getattr(Config, field) == value, field


def test_the_seed_cells_name_the_reference_board_and_the_product_cell_the_a_range_one():
    assert load_parameter_set("d111").board == "bench_ua"
    assert load_parameter_set("no_wetting_layer").board == "bench_ua"        # inherited
    assert load_parameter_set("product_1ah").board == "bench_a"
    product = config_for(load_parameter_set("product_1ah"))
    # 250 mA of formation on 250 cm2 fits the source; thresholds above the shunt's noise
    assert product.density_to_ua(product.formation_ua_cm2) == 250000 <= product.current_max_ua
    assert product.rest_ua > 8 * 62.5 and product.oc_margin_ua == product.rest_ua
    assert dict(product.plating_derating)[25] == 1000


def test_formation_timeouts_follow_from_the_cell():
    from twin.firmware_config import formation_timeouts_s, planned_formation_s
    d111 = planned_formation_s(config_for(load_parameter_set("d111")))
    product = planned_formation_s(config_for(load_parameter_set("product_1ah")))
    # d111: 1.67 µAh at 10 µA then the rest of 200 µAh at 100 µA; product: 1 Ah at 250 mA
    nucleation_uas = 1.67 * 3600000
    assert d111["charge"] == pytest.approx(8 + (nucleation_uas / 10 + (200 * 3600000 - nucleation_uas) / 100) / 1000)
    assert product["charge"] == pytest.approx(4.17 * 3600, rel=0.01)
    t = formation_timeouts_s(config_for(load_parameter_set("product_1ah")))
    assert t["charge"] == pytest.approx(1.5 * product["charge"] + 3600)


@pytest.mark.parametrize("changes, field, why", [
    (dict(shunt_ohm=0.5, shunt_amp_gain=3.0), "shunt_amp_gain", "gives 1.5, which the firmware's integer"),
    (dict(ntc_r25_ohm=10.4), "ntc_r25_ohm", "gives 10.4"),
    (dict(vcell_gain=0.5), "vcell_gain", "unity VCELL buffer and removes at most ±10 %"),
    (dict(source_range_uA=0.5), "source_range_uA", "below 1 µA"),
    (dict(ishunt_offset_mV=0.0), "shunt_amp_gain", "ISHUNT rails at 0 µA"),
])
def test_a_board_the_firmware_cannot_represent_is_refused(changes, field, why):
    board = dict(BENCH_UA, **changes)
    with pytest.raises(FrontEndError) as info:
        front_end_config(board)
    err = info.value
    assert isinstance(err, FieldError) and isinstance(err, ValueError)
    assert err.field == field and err.value == board[field]
    assert str(err).startswith(f"board {field}={board[field]!r}: ") and why in str(err)
    with pytest.raises(FrontEndError):
        config_for(load_parameter_set("d111"), board)


def test_a_board_mapping_missing_a_field_is_refused_by_name():
    board = dict(BENCH_UA)
    del board["shunt_amp_gain"]
    with pytest.raises(ParameterError, match=r"board mapping: shunt_amp_gain: missing field\(s\) shunt_amp_gain"):
        front_end_config(board)
