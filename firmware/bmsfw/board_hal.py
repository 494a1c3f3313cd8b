# Board HAL: the controller's hardware on a real MicroPython board.
#
# Implements bmsfw.hal.Hal with
#   - an ADS1115 16-bit ADC on I2C for VCELL and TCELL (single-shot, +-4.096 V range),
#   - an INA226 current monitor on I2C across the current shunt for ISHUNT,
#   - machine.PWM feeding an RC filter and a Howland current pump for the setpoint,
#   - machine.Pin for the relay, machine.WDT, ticks_ms (bmsfw.compat: time.ticks_ms on a board),
#   - RecordStore: an atomic, A/B record store on the board's filesystem.
#
# Every reading is converted to the raw-count convention of docs/hal.md (16 bit,
# Vref 4096 mV: the ADS1115's full scale, so 16 counts per mV at the ADC pin),
# so the controller's calibration module sees the same counts here as from the
# twin and only per-board gain/offset trims differ (docs/board.md). What the
# counts of ISHUNT and the setpoint mean (the zero's pin voltage, mV per uA, the
# source's range) is the controller's bmsfw.config.Config, which BoardHal is
# given: the board emits the counts that Config's front end reads back.
#
# Nothing touches hardware at import: `machine` is imported and every bus, pin
# and the watchdog are created in BoardHal.__init__, which only main.py calls.
# A missing `machine` (or a missing peripheral class) raises BoardError; there is
# no dummy fallback. Pin numbers and addresses live in bmsfw/board_config.py.

import os

from bmsfw.calibration import div_round, gcd, ishunt_scale, mid_counts
from bmsfw.compat import const, ticks_diff, ticks_ms
from bmsfw.errors import FieldError
from bmsfw.hal import Hal, ISHUNT, TCELL, VCELL

# --- ADS1115 (TI SBAS444D) ---------------------------------------------------
_ADS_REG_CONV = const(0x00)  # conversion register, 16-bit two's complement
_ADS_REG_CONFIG = const(0x01)  # config register (section 9.6.3)
_ADS_OS_START = const(0x8000)  # write: start a single conversion; read: 1 = idle
_ADS_MUX_AIN0_GND = const(0b100)  # MUX[2:0] for AINx vs GND is 0b100 + x
_ADS_PGA_4V096 = const(0b001 << 9)  # FSR +-4.096 V: LSB 125 uV, the reference board's Vref
_ADS_MODE_SINGLE = const(1 << 8)  # single-shot: one conversion per read, no stale samples
_ADS_COMP_OFF = const(0b11)  # COMP_QUE = 11: comparator disabled, ALERT pin high-Z
_ADS_FULL_SCALE = const(0x7FFF)  # input at or above +4.096 V (open cell pulled up)

# --- INA226 (TI SBOS547A) ----------------------------------------------------
_INA_REG_CONFIG = const(0x00)  # configuration register (7.6.1)
_INA_REG_SHUNT = const(0x01)  # shunt voltage, signed 16 bit, LSB 2.5 uV (7.6.2)
_INA_REG_MFR_ID = const(0xFE)  # manufacturer ID, reads 0x5449 ("TI")
_INA_REG_DIE_ID = const(0xFF)  # die ID, reads 0x2260
_INA_MFR_ID = const(0x5449)
_INA_DIE_ID = const(0x2260)

_INA_LSB_NV = const(2500)  # INA226 shunt LSB: 2.5 uV = 2500 nV (7.6.2)

# --- docs/hal.md raw-count convention ----------------------------------------
_ADC_BITS = const(16)
_ADC_VREF_MV = const(4096)  # the ADS1115's full scale at _ADS_PGA_4V096
_COUNTS_MAX = const(65535)
_DUTY_ZERO = const(32768)  # duty_u16 mid-scale: the bipolar current pump's 0 uA
_SMALL_INT_MAX = const((1 << 30) - 1)  # MicroPython small int on 32-bit ports: beyond it ints allocate

# --- record files ------------------------------------------------------------
_RECORD_MAGIC = b"BMR1"  # header: magic + u32 little-endian length, then the record bytes
_HEADER_N_BYTES = const(8)


class BoardError(FieldError):
    """A hardware or filesystem fault on the board: `field` names what failed
    (the board_config name of the chip, pin or setting), `value` what it was."""


class BoardInputError(FieldError):
    """A bad argument from the caller; nothing was changed on the board."""


def _signed16(hi, lo):
    raw = (hi << 8) | lo
    if raw & 0x8000:
        raw -= 0x10000
    return raw


def _path_join(dir_path, name):
    if dir_path.endswith("/"):
        return dir_path + name
    return dir_path + "/" + name


def _exists(path):
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def _sync():
    # os.sync() flushes the filesystem's caches (MicroPython VFS and POSIX);
    # ports without it commit on close, which has already happened.
    sync = getattr(os, "sync", None)
    if sync is not None:
        sync()


def _replace(src, dst):
    # littlefs and POSIX replace `dst` atomically. FAT refuses to rename over an
    # existing file (EEXIST): remove it first. The window that opens is covered
    # by load()'s fallback to record.new / record.old.
    try:
        os.rename(src, dst)
    except OSError:
        if not _exists(dst):
            raise
        os.remove(dst)
        os.rename(src, dst)


class RecordStore:
    """Stores the controller's record bytes atomically on a filesystem.

    save(): write record.new, flush, sync, rename record.bin -> record.old, then
    record.new -> record.bin. load() takes the first whole copy among
    record.bin, record.new, record.old, so a power cut at any instant leaves the
    old or the new record readable, never a mix. "Whole" means the header's magic
    and length match the file; `is_valid(data) -> bool` (e.g. the controller's
    CRC check) may be injected to also reject a copy whose bytes rotted.
    """

    def __init__(self, dir_path, is_valid=None):
        if not isinstance(dir_path, str) or not dir_path:
            raise BoardInputError("dir_path", dir_path, "must be a non-empty directory path")
        self.bin_path = _path_join(dir_path, "record.bin")
        self.old_path = _path_join(dir_path, "record.old")
        self.new_path = _path_join(dir_path, "record.new")
        self._is_valid = is_valid

    def save(self, data):
        if not isinstance(data, (bytes, bytearray)):
            raise BoardInputError("data", type(data).__name__, "record must be bytes")
        n_bytes = len(data)
        header = bytearray(_HEADER_N_BYTES)
        header[0:4] = _RECORD_MAGIC
        header[4] = n_bytes & 0xFF
        header[5] = (n_bytes >> 8) & 0xFF
        header[6] = (n_bytes >> 16) & 0xFF
        header[7] = (n_bytes >> 24) & 0xFF
        with open(self.new_path, "wb") as f:
            f.write(header)
            f.write(data)
            f.flush()
        _sync()
        if _exists(self.bin_path):
            _replace(self.bin_path, self.old_path)
        _replace(self.new_path, self.bin_path)
        _sync()

    def load(self):
        for path in (self.bin_path, self.new_path, self.old_path):
            data = self._read_whole(path)
            if data is None:
                continue
            if self._is_valid is not None and not self._is_valid(data):
                continue
            return data
        return None

    def _read_whole(self, path):
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except OSError:
            return None
        if len(blob) < _HEADER_N_BYTES or blob[0:4] != _RECORD_MAGIC:
            return None
        n_bytes = blob[4] | (blob[5] << 8) | (blob[6] << 16) | (blob[7] << 24)
        if len(blob) != _HEADER_N_BYTES + n_bytes:
            return None  # torn write or trailing garbage
        return bytes(blob[_HEADER_N_BYTES:])


class BoardHal(Hal):
    """bmsfw.hal.Hal on a MicroPython board; see the module comment and docs/board.md."""

    def __init__(self, config=None, record_is_valid=None, front_end=None):
        """config: the pin map (bmsfw.board_config); front_end: the controller's
        bmsfw.config.Config, whose analog front end the counts follow."""
        if config is None:
            from bmsfw import board_config as config
        if front_end is None:
            from bmsfw.config import Config

            front_end = Config()
        self._cfg = config
        # ISHUNT counts at 0 uA, and uA = (counts - zero) * num / den.
        self._ishunt_zero = mid_counts(_ADC_BITS, _ADC_VREF_MV, front_end.ishunt_mid_mv)
        self._ua_num, self._ua_den = ishunt_scale(_ADC_BITS, _ADC_VREF_MV, front_end.ishunt_uv_per_ua)
        try:
            import machine
        except ImportError:
            raise BoardError("machine", None, "BoardHal needs MicroPython's machine module (on a PC use the twin's HAL)")
        for name in ("I2C", "Pin", "PWM", "WDT"):
            if not hasattr(machine, name):
                raise BoardError("machine." + name, None, "this port's machine module lacks it")
        self._buf2 = bytearray(2)  # every register read/write reuses this buffer

        # Safe state first: relay open and zero current before anything can fail.
        self._relay_on = 1 if config.RELAY_ACTIVE_HIGH else 0
        self._relay = machine.Pin(config.RELAY_PIN, machine.Pin.OUT, value=1 - self._relay_on)
        self._full_scale_ua = front_end.source_max_ua
        self._pwm = machine.PWM(machine.Pin(config.SETPOINT_PWM_PIN))
        self._pwm.freq(config.SETPOINT_PWM_FREQ_HZ)
        self._pwm.duty_u16(_DUTY_ZERO)

        self._i2c = machine.I2C(
            config.I2C_ID,
            sda=machine.Pin(config.I2C_SDA_PIN),
            scl=machine.Pin(config.I2C_SCL_PIN),
            freq=config.I2C_FREQ_HZ,
        )
        self._ads_addr = config.ADS1115_ADDR
        self._ads_timeout_ms = config.ADS1115_TIMEOUT_MS
        self._ads_cfg_vcell = self._ads_config_word(config.ADS1115_VCELL_AIN, "ADS1115_VCELL_AIN")
        self._ads_cfg_tcell = self._ads_config_word(config.ADS1115_TCELL_AIN, "ADS1115_TCELL_AIN")
        self._ina_addr = config.INA226_ADDR
        self._init_shunt_ratio(config.SHUNT_MOHM)
        self._probe_ads1115()
        self._init_ina226(config.INA226_CONFIG)

        self._store = RecordStore(config.RECORD_DIR, record_is_valid)
        # The watchdog last: once started it cannot be stopped, so a board whose
        # sensors fail to probe stays in the REPL (relay open) instead of looping.
        self._wdt = machine.WDT(timeout=config.WDT_TIMEOUT_MS)

    # --- set-up helpers ---------------------------------------------------------
    def _ads_config_word(self, ain, field):
        if ain not in (0, 1, 2, 3):
            raise BoardInputError(field, ain, "ADS1115 has AIN0..AIN3")
        dr = self._cfg.ADS1115_DR_CODE
        if dr < 0 or dr > 7:
            raise BoardInputError("ADS1115_DR_CODE", dr, "data-rate code is 3 bits")
        return (
            _ADS_OS_START
            | ((_ADS_MUX_AIN0_GND + ain) << 12)
            | _ADS_PGA_4V096
            | _ADS_MODE_SINGLE
            | (dr << 5)
            | _ADS_COMP_OFF
        )

    def _init_shunt_ratio(self, shunt_mohm):
        # counts offset = raw * 2500 nV / R[mohm] (uA) * den / num (counts per uA):
        # raw * 40000 / R[mohm] on the reference front end (16 counts per uA).
        # Reduced so raw * num stays a small int (no allocation per read).
        if not isinstance(shunt_mohm, int) or shunt_mohm <= 0:
            raise BoardInputError("SHUNT_MOHM", shunt_mohm, "must be a positive int")
        num = _INA_LSB_NV * self._ua_den
        den = shunt_mohm * self._ua_num
        g = gcd(num, den)
        self._shunt_num = num // g
        self._shunt_den = den // g
        if 32768 * self._shunt_num > _SMALL_INT_MAX:
            raise BoardInputError("SHUNT_MOHM", shunt_mohm, "40000/R must reduce to a small fraction (use a round value)")

    def _read_reg(self, addr, reg, field):
        try:
            self._i2c.readfrom_mem_into(addr, reg, self._buf2)
        except OSError as exc:
            raise BoardError(field, addr, "no answer on I2C (%s)" % exc)
        return (self._buf2[0] << 8) | self._buf2[1]

    def _write_reg(self, addr, reg, value, field):
        self._buf2[0] = (value >> 8) & 0xFF
        self._buf2[1] = value & 0xFF
        try:
            self._i2c.writeto_mem(addr, reg, self._buf2)
        except OSError as exc:
            raise BoardError(field, addr, "no answer on I2C (%s)" % exc)

    def _probe_ads1115(self):
        # The ADS1115 has no ID register: a config read that ACKs is the probe.
        self._read_reg(self._ads_addr, _ADS_REG_CONFIG, "ADS1115_ADDR")

    def _init_ina226(self, config_word):
        mfr = self._read_reg(self._ina_addr, _INA_REG_MFR_ID, "INA226_ADDR")
        die = self._read_reg(self._ina_addr, _INA_REG_DIE_ID, "INA226_ADDR")
        if mfr != _INA_MFR_ID or die != _INA_DIE_ID:
            raise BoardError("INA226_ADDR", self._ina_addr, "IDs 0x%04x/0x%04x are not an INA226" % (mfr, die))
        self._write_reg(self._ina_addr, _INA_REG_CONFIG, config_word, "INA226_CONFIG")
        back = self._read_reg(self._ina_addr, _INA_REG_CONFIG, "INA226_CONFIG")
        if back != config_word:
            raise BoardError("INA226_CONFIG", config_word, "read back 0x%04x" % back)

    # --- sensors ------------------------------------------------------------------
    def _ads_counts(self, config_word):
        addr = self._ads_addr
        self._write_reg(addr, _ADS_REG_CONFIG, config_word, "ADS1115_ADDR")
        start_ms = ticks_ms()
        while not (self._read_reg(addr, _ADS_REG_CONFIG, "ADS1115_ADDR") & _ADS_OS_START):
            if ticks_diff(ticks_ms(), start_ms) > self._ads_timeout_ms:
                raise BoardError("ADS1115_TIMEOUT_MS", self._ads_timeout_ms, "conversion did not finish")
        self._read_reg(addr, _ADS_REG_CONV, "ADS1115_ADDR")
        raw = _signed16(self._buf2[0], self._buf2[1])
        if raw <= 0:
            return 0  # single-ended inputs read a few LSB below zero at 0 V
        if raw >= _ADS_FULL_SCALE:
            return _COUNTS_MAX  # at or over range, e.g. an open cell pulled up
        return raw * 2  # 125 uV per LSB -> 62.5 uV per count

    def _ina_counts(self):
        self._read_reg(self._ina_addr, _INA_REG_SHUNT, "INA226_ADDR")
        raw = _signed16(self._buf2[0], self._buf2[1])
        counts = self._ishunt_zero + div_round(raw * self._shunt_num, self._shunt_den)
        if counts < 0:
            return 0
        if counts > _COUNTS_MAX:
            return _COUNTS_MAX
        return counts

    # --- the Hal contract -------------------------------------------------------
    def adc_read(self, channel):
        if channel == VCELL:
            return self._ads_counts(self._ads_cfg_vcell)
        if channel == ISHUNT:
            return self._ina_counts()
        if channel == TCELL:
            return self._ads_counts(self._ads_cfg_tcell)
        raise BoardInputError("channel", channel, "board has VCELL, ISHUNT, TCELL")

    def adc_bits(self):
        return _ADC_BITS

    def adc_vref_mv(self):
        return _ADC_VREF_MV

    def set_current_ua(self, current_ua):
        if not isinstance(current_ua, int) or isinstance(current_ua, bool):
            raise BoardInputError("current_ua", current_ua, "must be an int")
        fs_ua = self._full_scale_ua
        duty = _DUTY_ZERO + current_ua * _DUTY_ZERO // fs_ua
        if duty < 0 or duty > _COUNTS_MAX:
            raise BoardInputError("current_ua", current_ua, "outside -%d..+%d uA" % (fs_ua, fs_ua - 1))
        self._pwm.duty_u16(duty)

    def set_relay(self, closed):
        if closed is not True and closed is not False:
            raise BoardInputError("closed", closed, "must be True or False")
        self._relay.value(self._relay_on if closed else 1 - self._relay_on)

    def ticks_ms(self):
        return ticks_ms()

    def load_record(self):
        return self._store.load()

    def save_record(self, data):
        self._store.save(data)

    def feed_watchdog(self):
        self._wdt.feed()
