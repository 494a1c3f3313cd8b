"""The twin's board: raw ADC counts as docs/hal.md promises, the current source,
the relay, the clock, the record, and every injectable fault.
Run: .venv/bin/python -m pytest tests/twin/test_board.py
"""
import math

import pytest

from bmsfw.hal import ISHUNT, TCELL, VCELL, Hal
from twin.board import FAULTS, BoardError, TwinBoard
from twin.cell import Cell
from twin.parameters import ParameterError, load_board, load_parameter_set

IDEAL = dict(load_board("bench_ua").values, adc_gain_error=0.0, adc_offset_counts=0.0,
             adc_noise_counts=0.0)


def board(values=None, seed=0, params="d111"):
    return TwinBoard(Cell(load_parameter_set(params)), values or IDEAL, seed=seed)


def counts_of(mV: float) -> int:
    return int(round(mV * 65536 / 4096))


def test_it_is_a_hal_and_every_hal_method_is_implemented():
    b = board()
    assert isinstance(b, Hal)
    for name in ("adc_read", "adc_bits", "adc_vref_mv", "set_current_ua", "set_relay", "ticks_ms",
                 "load_record", "save_record", "feed_watchdog"):
        assert getattr(TwinBoard, name) is not getattr(Hal, name), name


def test_vcell_counts_follow_the_cell_voltage_at_0_0625_mV_per_count():
    b = board()
    assert b.adc_bits() == 16 and b.adc_vref_mv() == 4096
    assert b.adc_read(VCELL) == counts_of(b.cell.voltage_V * 1000)


def test_ishunt_reads_mid_scale_at_zero_and_1_mV_per_uA():
    b = board()
    assert b.adc_read(ISHUNT) == counts_of(2048.0)
    b.set_relay(True)
    b.set_current_ua(100)
    b.advance(1000)
    assert b.adc_read(ISHUNT) == counts_of(2048.0 + 100.0)
    b.set_current_ua(-100)
    b.advance(1000)
    assert b.adc_read(ISHUNT) == counts_of(2048.0 - 100.0)


def test_tcell_follows_the_ntc_beta_equation():
    b = board()
    r = 10000.0  # at 25 °C the NTC equals the pull-up: half of Vref
    assert b.adc_read(TCELL) == counts_of(4096 * r / (r + 10000))
    b.cell.set_temperature_c(0.0)
    assert b.adc_read(TCELL) == counts_of(4096 * r / (r + 10000))   # latched until the next scan
    b.scan()
    r0 = 10000 * math.exp(3950 * (1 / 273.15 - 1 / 298.15))
    assert b.adc_read(TCELL) == counts_of(4096 * r0 / (r0 + 10000))


def test_gain_offset_and_noise_are_applied_and_seeded():
    real = load_board("bench_ua").values
    a, b = board(real, seed=3), board(real, seed=3)
    readings_a = [a.scan()[VCELL] for _ in range(200)]
    readings_b = [b.scan()[VCELL] for _ in range(200)]
    assert readings_a == readings_b                       # same seed, same noise
    c = board(real, seed=4)
    assert [c.scan()[VCELL] for _ in range(200)] != readings_a
    ideal = a.cell.voltage_V * 1000 * 65536 / 4096
    mean = sum(readings_a) / len(readings_a)
    expected = ideal * (1 + real["adc_gain_error"]) + real["adc_offset_counts"]
    assert mean == pytest.approx(expected, abs=0.5)
    assert max(readings_a) - min(readings_a) >= 3        # there is noise


def test_counts_clamp_to_the_converter_range():
    b = board()
    b.inject("open_cell")
    b.scan()
    assert b.adc_read(VCELL) == 65535
    b.set_relay(True)
    b.clear_faults()
    b.set_current_ua(2048)
    b.advance(1000)
    assert b.adc_read(ISHUNT) == 65535                    # 2048 + 2048 mV = full scale


def test_setpoint_is_quantised_and_limited_to_the_source_range():
    b = board()
    b.set_current_ua(5000)
    assert b.setpoint_ua == 2048
    b.set_current_ua(-5000)
    assert b.setpoint_ua == -2048
    b.set_current_ua(7)
    assert b.setpoint_ua == 7.0
    with pytest.raises(BoardError, match="expected int"):
        b.set_current_ua(7.5)
    with pytest.raises(BoardError, match="expected int"):
        b.set_current_ua(True)


def test_source_slews_at_10_uA_per_ms():
    b = board()
    b.set_relay(True)
    b.set_current_ua(1000)
    b.advance(50)
    assert b.source_ua == pytest.approx(500.0)
    b.advance(60)
    assert b.source_ua == 1000.0


def test_an_open_relay_passes_no_current_and_the_cell_rests():
    b = board()
    b.set_current_ua(100)
    b.advance(10_000)
    assert b.cell_current_ua() == 0.0
    assert b.cell.plated_uAh == 0.0
    b.set_relay(True)
    b.advance(10_000)
    assert b.cell.plated_uAh > 0.2


def test_compliance_turns_the_source_into_a_voltage_source():
    b = board(dict(IDEAL, source_compliance_V=2.35))
    b.set_relay(True)
    b.set_current_ua(1000)
    for _ in range(600):
        b.advance(1000)
    assert b.compliance_hits > 0
    assert b.cell.voltage_V <= 2.35 + 1e-4   # held at compliance (to the hold's step)


def test_clock_advances_only_when_told_and_rejects_bad_steps():
    b = board()
    assert b.ticks_ms() == 0
    b.advance(1000)
    assert b.ticks_ms() == 1000
    assert b.cell.t_s == pytest.approx(1.0)
    with pytest.raises(BoardError):
        b.advance(0)


def test_record_is_stored_whole_and_counted():
    b = board()
    assert b.load_record() is None
    b.save_record(b"abc")
    assert b.load_record() == b"abc" and b.record_writes == 1
    with pytest.raises(BoardError, match="bytes"):
        b.save_record("text")
    assert b.load_record() == b"abc" and b.record_writes == 1


def test_power_off_stops_the_source_and_opens_the_relay():
    b = board()
    b.set_relay(True)
    b.set_current_ua(100)
    b.advance(1000)
    b.power(False)
    assert b.setpoint_ua == 0 and not b.relay_closed and b.cell_current_ua() == 0.0


def test_each_fault_shows_where_a_bench_would_show_it():
    b = board()
    b.inject("thermistor_open")
    assert b.scan()[TCELL] == 65535
    b.inject("thermistor_short")
    assert b.scan()[TCELL] == 0
    b.inject("adc_stuck", (VCELL, 1234))
    assert b.adc_read(VCELL) == 1234
    b.inject("source_offset", 5.0)
    b.set_relay(True)
    b.set_current_ua(100)
    b.advance(1000)
    assert b.cell_current_ua() == 105.0
    b.inject("ambient_step", -5.0)
    assert b.cell.state.ambient_K == pytest.approx(268.15)
    b.inject("internal_short", 100.0)
    assert b.cell.state.short_ohm == 100.0
    b.inject("crack_now")
    assert b.cell.layer_cracked
    b.clear_faults()
    assert b.scan()[VCELL] != 1234 and b.cell.state.short_ohm == 0.0
    assert set(FAULTS) == {"open_cell", "internal_short", "crack_now", "thermistor_open",
                           "thermistor_short", "adc_stuck", "source_offset", "ambient_step"}


@pytest.mark.parametrize("fault, value, pattern", [
    ("melt", None, "unknown fault 'melt'"),
    ("internal_short", -1.0, "must be > 0"),
    ("internal_short", "1", "finite number"),
    ("adc_stuck", (7, 10), "bad channel"),
    ("adc_stuck", (VCELL, 70000), "bad channel"),
    ("adc_stuck", 5, r"\(channel, counts\)"),
    ("source_offset", math.nan, "finite number"),
])
def test_bad_fault_requests_are_refused_and_change_nothing(fault, value, pattern):
    b = board()
    before = (b.adc_read(VCELL), b.cell.state.short_ohm, dict(b.stuck), b.source_offset_ua)
    with pytest.raises(BoardError, match=pattern):
        b.inject(fault, value)
    assert (b.adc_read(VCELL), b.cell.state.short_ohm, dict(b.stuck), b.source_offset_ua) == before


def test_every_read_of_a_tick_sees_the_same_scan_and_advance_rescans():
    b = board(load_board("bench_ua").values, seed=1)
    first = [b.adc_read(ch) for ch in (VCELL, ISHUNT, TCELL)]
    assert [b.adc_read(ch) for ch in (VCELL, ISHUNT, TCELL)] == first
    scans = {b.scan() for _ in range(20)}
    assert len(scans) > 1                                 # noise differs scan to scan
    b.advance(1000)
    assert tuple(b.adc_read(ch) for ch in (VCELL, ISHUNT, TCELL)) == b._scan


def test_an_unknown_channel_is_refused():
    with pytest.raises(BoardError, match="no channel 9"):
        board().adc_read(9)


def test_a_board_is_given_by_name_description_or_values_and_a_missing_field_is_named():
    cell = Cell(load_parameter_set("d111"))
    by_name = TwinBoard(cell, "bench_ua")
    assert by_name.description == TwinBoard(cell, load_board("bench_ua")).description == \
        {k: float(v) for k, v in load_board("bench_ua").values.items()}
    values = dict(IDEAL)
    del values["ntc_pullup_ohm"]
    with pytest.raises(ParameterError, match=r"ntc_pullup_ohm: missing field\(s\) ntc_pullup_ohm"):
        TwinBoard(cell, values)
