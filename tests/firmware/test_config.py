# bmsfw.config: defaults, overrides, and refusals that name the field.
# Run: .venv/bin/python -m pytest tests/firmware/test_config.py -q
from fakes import raises

from bmsfw.config import Config, ConfigError


def test_defaults_are_the_d111_cell_and_bench_ua_board():
    c = Config()
    assert c.area_mm2 == 100
    assert c.target_uas() == 200 * 3600000
    assert c.nucleation_uas == 6000000             # 10 µA x 10 min
    assert c.density_to_ua(c.nucleation_ua_cm2) == 10
    assert c.density_to_ua(c.formation_ua_cm2) == 100
    assert c.ishunt_uv_per_ua == 1000
    assert c.discharge_cutoff_mv == 2000
    assert c.has_wetting_layer is False
    # 0.1 % of target between saves (0.25 % is the most Config accepts)
    assert c.save_interval_uas * 1000 == c.target_uas()


def test_override_is_applied_and_default_untouched():
    c = Config(area_mm2=200, target_inventory_uah=100, save_interval_uas=900000)
    assert c.density_to_ua(100) == 200
    assert Config().area_mm2 == 100


def test_unknown_field_is_refused_by_name():
    e = raises(ConfigError, Config, area_cm2=1)
    assert e.field == "area_cm2"
    assert "unknown" in str(e)


def test_method_name_is_not_a_field():
    e = raises(ConfigError, Config, target_uas=5)
    assert e.field == "target_uas"


def test_wrong_types_are_refused():
    assert raises(ConfigError, Config, area_mm2=1.5).field == "area_mm2"
    assert raises(ConfigError, Config, area_mm2=True).field == "area_mm2"
    assert raises(ConfigError, Config, auto_form=1).field == "auto_form"


def test_nonpositive_and_inconsistent_values_are_refused():
    assert raises(ConfigError, Config, area_mm2=0).field == "area_mm2"
    assert raises(ConfigError, Config, lithium_reserve_uah=200).field == "lithium_reserve_uah"
    assert raises(ConfigError, Config, discharge_cutoff_mv=2600).field == "discharge_cutoff_mv"
    assert raises(ConfigError, Config, save_interval_uas=1800001).field == "save_interval_uas"
    assert raises(ConfigError, Config, vcell_gain_err_ppm=200000).field == "vcell_gain_err_ppm"


def test_derating_table_is_validated_and_normalised():
    c = Config(plating_derating=[[0, 20], [30, 80]])
    assert c.plating_derating == ((0, 20), (30, 80))
    assert raises(ConfigError, Config, plating_derating=[]).field == "plating_derating"
    assert raises(ConfigError, Config, plating_derating=[(10, 5), (5, 6)]).field == "plating_derating"
    assert raises(ConfigError, Config, plating_derating=[(10, -5)]).field == "plating_derating"
    assert raises(ConfigError, Config, plating_derating=[(10, 5.5)]).field == "plating_derating"
    assert raises(ConfigError, Config, plating_derating=[(10,)]).field == "plating_derating"


def test_names_lists_every_field():
    names = Config().names()
    assert "area_mm2" in names and "plating_derating" in names
    assert "target_uas" not in names
