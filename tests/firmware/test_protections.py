# bmsfw.protections: each protection's debounce (time beyond threshold, any
# tick length) and latching; UNDER_TEMPERATURE inhibits with hysteresis.
# Run: .venv/bin/python -m pytest tests/firmware/test_protections.py -q
from fakes import Measurements, d111_units

from bmsfw.config import Config
from bmsfw.protections import PROTECTIONS, Debounce, Protections
from bmsfw.states import FAULTS


def _bit(name):
    return 1 << FAULTS.index(name)


def _trip_time(m, step_ms=100, limit_ms=20000, config=None):
    """Run check() every step_ms; return (ms until something latched, mask)."""
    p = Protections(config or Config())
    t = 0
    while t <= limit_ms:
        p.check(m, t, step_ms)
        if p.mask or p.inhibit_mask:
            return t, p.mask | p.inhibit_mask
        t += step_ms
    return None, 0


def test_debounce_measures_time_not_ticks():
    d = Debounce()
    assert not d.update(0, True, 1000, 500)
    assert not d.update(0, True, 1499, 500)
    assert d.update(0, True, 1500, 500)
    assert not d.update(0, False, 1600, 500)     # a gap restarts the clock
    assert not d.update(0, True, 1700, 500)
    assert d.update(0, True, 2200, 500)


def test_debounce_zero_trips_at_once_and_survives_clock_wrap():
    d = Debounce()
    assert d.update(0, True, 5, 0)
    d2 = Debounce()
    assert not d2.update(0, True, (1 << 30) - 100, 500)
    assert d2.update(0, True, 400, 500)          # wrapped clock: 500 ms later


def test_debounce_timers_are_independent_and_reset_by_mask():
    d = Debounce(3)
    assert not d.update(0, True, 0, 500)
    assert not d.update(2, True, 300, 500)
    assert d.update(0, True, 500, 500) and not d.update(2, True, 500, 500)
    d.reset(1 << 0)                              # timer 0 restarts, timer 2 keeps its start
    assert not d.update(0, True, 800, 500) and d.update(2, True, 800, 500)


def test_healthy_cell_trips_nothing():
    t, mask = _trip_time(Measurements())
    assert t is None and mask == 0


def test_overvoltage_after_its_debounce():
    t, mask = _trip_time(Measurements(cell_mv=2701))
    assert mask == _bit("OVERVOLTAGE") and t == 1000
    assert _trip_time(Measurements(cell_mv=2700))[0] is None     # at the threshold: fine


def test_undervoltage_only_under_discharge_of_a_formed_cell():
    t, mask = _trip_time(Measurements(cell_mv=1899, current_ua=-100, prev_setpoint_ua=-100,
                                      inventory_uas=0))
    assert mask == _bit("UNDERVOLTAGE") and t == 1000
    # a precursor (no lithium) is low by nature
    assert _trip_time(Measurements(cell_mv=150, lithium_present=False, state="SHIPPED"))[0] is None


def test_short_beats_undervoltage_for_a_collapsed_cell():
    t, mask = _trip_time(Measurements(cell_mv=200, current_ua=-100, prev_setpoint_ua=-100,
                                      inventory_uas=0))
    assert mask == _bit("SHORT") and t == 500


def test_no_cell_on_an_open_circuit():
    t, mask = _trip_time(Measurements(cell_mv=4096, lithium_present=False))
    assert mask == _bit("NO_CELL") and t == 1000


def test_overcurrent_beyond_limit_and_margin():
    m = Measurements(current_ua=200, prev_setpoint_ua=100, ccl_ua=100)
    t, mask = _trip_time(m)
    assert mask == _bit("OVERCURRENT") and t == 1000
    # within 10 % + 20 µA of the larger of limit and setpoint: fine
    assert _trip_time(Measurements(current_ua=130, prev_setpoint_ua=100, ccl_ua=100))[0] is None
    # discharge side
    t, mask = _trip_time(Measurements(current_ua=-300, prev_setpoint_ua=-100, dcl_ua=100))
    assert mask == _bit("OVERCURRENT")


def test_sensor_open_thermistor_and_current_not_following():
    t, mask = _trip_time(Measurements(ntc_fault=True))
    assert mask == _bit("SENSOR") and t == 0                 # a rail reading: at once
    t, mask = _trip_time(Measurements(current_ua=0, prev_setpoint_ua=100))
    assert mask == _bit("SENSOR")
    t, mask = _trip_time(Measurements(ishunt_railed=True, current_ua=2048, prev_setpoint_ua=0,
                                      ccl_ua=3000))
    assert mask == _bit("SENSOR")


def test_over_temperature_latches_after_five_seconds():
    t, mask = _trip_time(Measurements(temp_dc=601))
    assert mask == _bit("OVER_TEMPERATURE") and t == 5000


def test_crack_when_plating_voltage_drops_suddenly():
    p = Protections(Config())
    m = Measurements(state="FORMING", charging_li=True, current_ua=100,
                     prev_setpoint_ua=100, cell_mv=2350)
    t = 0
    for _ in range(30):
        p.check(m, t, 1000)
        t += 1000
    assert p.mask == 0
    m.cell_mv = 2150                                 # 200 mV down in one tick
    p.check(m, t, 1000)
    assert p.mask == 0                               # debounce: 2 s
    p.check(m, t + 1000, 1000)
    assert p.mask == 0
    p.check(m, t + 2000, 1000)
    assert p.mask == _bit("CRACK_SUSPECTED")


def test_slow_voltage_sag_during_plating_is_not_a_crack():
    p = Protections(Config())
    m = Measurements(state="FORMING", charging_li=True, current_ua=100,
                     prev_setpoint_ua=100, cell_mv=2400)
    for i in range(400):
        m.cell_mv = 2400 - i // 2                    # 0.5 mV/s: drift, not a crack
        p.check(m, i * 1000, 1000)
    assert p.mask == 0


def test_crack_when_ocv_collapses_at_rest_with_lithium_counted():
    t, mask = _trip_time(Measurements(cell_mv=1800, current_ua=0))
    assert mask == _bit("CRACK_SUSPECTED") and t == 2000


def test_crack_when_discharge_hits_dvl_with_inventory_left():
    m = Measurements(cell_mv=2005, current_ua=-100, prev_setpoint_ua=-100,
                     inventory_uas=150 * 3600000)
    t, mask = _trip_time(m)
    assert mask == _bit("CRACK_SUSPECTED")
    # near the reserve, reaching DVL is the normal end of discharge
    p = Protections(Config())
    m.inventory_q = d111_units(6 * 3600000)
    m.li_low_eu = 6000
    for i in range(50):
        p.check(m, i * 100, 100)
    assert p.mask == 0 and p.dis_hit_dvl


def test_latched_fault_stays_after_the_cause_goes():
    p = Protections(Config())
    m = Measurements(cell_mv=2800)
    p.check(m, 0, 1000)
    p.check(m, 1000, 1000)
    assert p.mask == _bit("OVERVOLTAGE") and p.tripped == _bit("OVERVOLTAGE")
    m.cell_mv = 2300
    p.check(m, 2000, 1000)
    assert p.mask == _bit("OVERVOLTAGE") and p.tripped == 0
    assert not p.cause_present("OVERVOLTAGE", m)
    m.cell_mv = 2800
    assert p.cause_present("OVERVOLTAGE", m)


def test_under_temperature_inhibits_and_clears_with_hysteresis():
    p = Protections(Config())
    m = Measurements(temp_dc=-100)
    bit = _bit("UNDER_TEMPERATURE")
    p.check(m, 0, 1000)
    assert p.inhibit_mask == 0
    p.check(m, 3000, 1000)
    assert p.inhibit_mask == bit and p.tripped == bit and p.mask == 0     # not latched
    m.temp_dc = 10                                    # 1 °C: inside the 2 °C hysteresis
    for t in range(4000, 20000, 1000):
        p.check(m, t, 1000)
    assert p.inhibit_mask == bit
    m.temp_dc = 20
    p.check(m, 20000, 1000)
    p.check(m, 23000, 1000)
    assert p.inhibit_mask == 0 and p.cleared == bit


def test_under_temperature_allows_the_sensor_accuracy_at_the_limit():
    # a reading of -0.3 °C may be 0 °C: within the 0.5 °C accuracy, no inhibit
    t, mask = _trip_time(Measurements(temp_dc=-3))
    assert t is None and mask == 0
    t, mask = _trip_time(Measurements(temp_dc=-6))
    assert mask == _bit("UNDER_TEMPERATURE")


def test_trip_from_an_event_latches_once():
    p = Protections(Config())
    assert p.trip("LINK_LOST", "link lost")
    assert not p.trip("LINK_LOST", "again")
    assert p.mask == _bit("LINK_LOST")


def test_table_names_every_fault_once():
    names = [row[0] for row in PROTECTIONS]
    assert sorted(names) == sorted(FAULTS)
    for row in PROTECTIONS:
        assert row[1] is None or hasattr(Config, row[1])


def test_each_protection_debounces_with_its_own_config_key():
    # Distinct debounces per key: a protection wired to another's debounce
    # (PROTECTIONS and the check() order disagreeing) trips at the wrong time.
    keys = [row[1] for row in PROTECTIONS if row[1]]
    cfg = Config(**dict((key, 1000 + 100 * i) for i, key in enumerate(keys)))
    cases = (
        ("OVERVOLTAGE", Measurements(cell_mv=2701)),
        ("UNDERVOLTAGE", Measurements(cell_mv=1899, current_ua=-100, prev_setpoint_ua=-100, inventory_uas=0)),
        ("NO_CELL", Measurements(cell_mv=4096, lithium_present=False)),
        ("SHORT", Measurements(cell_mv=200, current_ua=-100, prev_setpoint_ua=-100, inventory_uas=0)),
        ("OVERCURRENT", Measurements(current_ua=200, prev_setpoint_ua=100, ccl_ua=100)),
        ("SENSOR", Measurements(current_ua=0, prev_setpoint_ua=100)),
        ("OVER_TEMPERATURE", Measurements(temp_dc=601)),
        ("CRACK_SUSPECTED", Measurements(cell_mv=1800, current_ua=0)),
        ("UNDER_TEMPERATURE", Measurements(temp_dc=-100)),
    )
    for name, m in cases:
        key = [row[1] for row in PROTECTIONS if row[0] == name][0]
        t, mask = _trip_time(m, config=cfg)
        assert mask == _bit(name), name
        assert t == getattr(cfg, key), (name, t, getattr(cfg, key))
