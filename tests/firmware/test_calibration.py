# bmsfw.calibration: counts -> mV, µA, deci-°C at, below and above each range
# end, with counts generated like the docs/hal.md front end (fakes.pin_counts).
# Run: .venv/bin/python -m pytest tests/firmware/test_calibration.py -q
from fakes import FULL, FakeHal, ntc_pin_mv, pin_counts

from bmsfw import calibration as cal
from bmsfw.config import Config


def test_pin_mv_at_both_rails_and_mid_scale():
    assert cal.counts_to_pin_mv(0, 16, 4096) == 0
    assert cal.counts_to_pin_mv(FULL, 16, 4096) == 4096      # 4095.94 rounds up
    assert cal.counts_to_pin_mv(32768, 16, 4096) == 2048
    assert cal.counts_to_pin_mv(16, 16, 4096) == 1           # 16 counts = 1 mV


def test_vcell_mv_precursor_plateau_and_open_cell():
    assert cal.vcell_mv(pin_counts(150), 16, 4096) == 150
    assert cal.vcell_mv(pin_counts(2300), 16, 4096) == 2300
    assert cal.vcell_mv(FULL, 16, 4096) == 4096              # open cell: full scale


def test_vcell_gain_and_offset_are_removed():
    # A board reading 1 % high plus 5 mV: 2300 mV appears as 2328 mV.
    counts = pin_counts(2300 * 1.01 + 5)
    assert cal.vcell_mv(counts, 16, 4096, 10000, 5) == 2300
    assert cal.vcell_mv(counts, 16, 4096) == 2328


def test_ishunt_scale_of_the_reference_board_is_one_sixteenth():
    assert cal.ishunt_scale(16, 4096, 1000) == (1, 16)
    assert cal.mid_counts(16, 4096, 2048) == 32768


def test_ishunt_zero_at_mid_scale_and_signed_either_side():
    mid = cal.mid_counts(16, 4096, 2048)
    assert cal.ishunt_ua(mid, mid, 1, 16) == 0
    assert cal.ishunt_ua(pin_counts(2048 + 100), mid, 1, 16) == 100
    assert cal.ishunt_ua(pin_counts(2048 - 100), mid, 1, 16) == -100
    assert cal.ishunt_ua(mid + 8, mid, 1, 16) == 1            # half a µA rounds away from 0
    assert cal.ishunt_ua(mid - 8, mid, 1, 16) == -1


def test_ishunt_at_and_beyond_the_range_ends():
    mid = 32768
    assert cal.ishunt_ua(0, mid, 1, 16) == -2048
    assert cal.ishunt_ua(FULL, mid, 1, 16) == 2048
    # beyond ±2048 µA the amplifier clamps: the counts cannot say more
    assert cal.ishunt_ua(pin_counts(2048 + 3000), mid, 1, 16) == 2048


def test_ishunt_gain_and_offset_are_removed():
    counts = pin_counts(2048 + 100 * 1.02 + 3)
    assert cal.ishunt_ua(counts, 32768, 1, 16, 20000, 3) == 100


def test_ntc_at_reference_points():
    for temp_c in (-10, 0, 25, 45, 60):
        got = cal.ntc_temp_dc(pin_counts(ntc_pin_mv(temp_c)), 16, 10000, 3950, 10000)
        assert abs(got - temp_c * 10) <= 1, (temp_c, got)


def test_ntc_rails_have_no_temperature():
    assert cal.ntc_temp_dc(0, 16, 10000, 3950, 10000) is None
    assert cal.ntc_temp_dc(1 << 16, 16, 10000, 3950, 10000) is None


def test_ntc_open_and_short_bands():
    assert cal.ntc_open(FULL, 16)
    assert not cal.ntc_open(pin_counts(ntc_pin_mv(-40)), 16)   # -40 °C is still a reading
    assert cal.ntc_shorted(0, 16)
    assert not cal.ntc_shorted(pin_counts(ntc_pin_mv(140)), 16)


def test_front_end_table_matches_beta_equation():
    fe = cal.FrontEnd(FakeHal(), Config())
    worst = 0
    for temp_c in range(-40, 141, 5):
        counts = pin_counts(ntc_pin_mv(temp_c))
        exact = cal.ntc_temp_dc(counts, 16, 10000, 3950, 10000)
        err = abs(fe.table_temp_dc(counts) - exact)
        worst = err if err > worst else worst
    assert worst <= 3, worst      # table interpolation within 0.3 °C over -40..140 °C


def test_front_end_reads_raw_and_converted():
    hal = FakeHal(temp_c=10.0)
    hal.relay = True
    hal.setpoint_ua = -250
    fe = cal.FrontEnd(hal, Config())
    fe.read()
    # the fake cell: 150 mV precursor OCV minus 250 µA x 500 ohm
    assert fe.vcell_counts == pin_counts(150 - 125)
    assert fe.cell_mv == 25
    assert fe.ishunt_counts == pin_counts(2048 - 250)
    assert fe.current_ua == -250
    assert abs(fe.temp_dc - 100) <= 1
    assert not fe.ntc_fault and not fe.ishunt_railed


def test_front_end_flags_sensor_faults_and_keeps_last_temperature():
    hal = FakeHal(temp_c=30.0)
    fe = cal.FrontEnd(hal, Config())
    fe.read()
    last = fe.temp_dc
    hal.ntc_open = True
    fe.read()
    assert fe.ntc_fault and fe.temp_dc == last
    hal.ntc_open = False
    hal.ntc_short = True
    fe.read()
    assert fe.ntc_fault
    hal.ntc_short = False
    hal.relay = True
    hal.setpoint_ua = 5000          # beyond the shunt range: railed
    fe.read()
    assert fe.ishunt_railed and not fe.ntc_fault


def test_front_end_learns_the_shunt_zero_with_the_relay_open():
    hal = FakeHal()
    hal.current_offset_ua = 4          # what a 0.2 % ADC gain error does to mid-scale
    hal.relay = False
    fe = cal.FrontEnd(hal, Config())
    fe.read()
    assert fe.current_ua == 4          # not yet zeroed
    fe.learn_zero()
    assert fe.current_ua == 0
    assert fe.zero_counts() == 32768 + 64
    hal.relay = True
    hal.setpoint_ua = 100
    fe.read()
    assert fe.current_ua == 100


def test_front_end_zero_is_the_plain_mean_of_the_first_samples():
    hal = FakeHal()
    hal.relay = False
    fe = cal.FrontEnd(hal, Config())
    # samples 2, 6, 2, 6 µA above nominal: a single first sample would leave 2 µA
    for offset_ua in (2, 6, 2, 6, 4, 4, 4, 4):
        hal.current_offset_ua = offset_ua
        fe.read()
        fe.learn_zero()
    assert fe.zero_samples == 8
    assert fe.zero_counts() == 32768 + 64           # 4 µA = 64 counts: the mean
    hal.current_offset_ua = 4
    fe.read()
    assert fe.current_ua == 0


def test_front_end_ignores_an_open_relay_reading_that_is_not_a_zero():
    hal = FakeHal()
    hal.current_offset_ua = 300        # a welded relay or a broken amplifier
    fe = cal.FrontEnd(hal, Config())
    fe.read()
    fe.learn_zero()
    assert fe.zero_counts() == 32768 and fe.current_ua == 300
