# Raw ADC counts -> mV, µA, deci-°C for the reference front end (docs/hal.md).
#
# Module functions are pure (counts and front-end constants in, int out) so the
# tests exercise them at and beyond both ends of each range. FrontEnd binds them
# to one board: it precomputes the scale factors and a thermistor table once, so
# a tick converts with integer arithmetic only and allocates nothing (boxed
# floats would, on most MicroPython ports). Like bmm150's magnet_raw()/magnet(),
# FrontEnd keeps the raw counts of the last read next to the converted values.
import math
from array import array

from .compat import const
from .hal import ISHUNT, TCELL, VCELL

# Thermistor fault bands: within 2 % of either rail the divider is open
# (NTC disconnected: pulled to Vref, below about -43 °C) or shorted (above about
# +149 °C). Neither is a temperature the cell can have in service.
_NTC_RAIL_PART = const(50)
_NTC_TABLE_SHIFT = const(8)   # table step = 2**(bits - 8) counts: 257 points for any ADC width
_ZERO_SHIFT = const(3)        # running mean over ~8 open-relay ticks
_ZERO_AVERAGE_N = const(8)    # the first 8 samples are averaged plainly (an unbiased start)


def div_round(num, den):
    """Integer division rounding half away from zero (den > 0)."""
    if num >= 0:
        return (num + den // 2) // den
    return -((-num + den // 2) // den)


def counts_to_pin_mv(counts, bits, vref_mv):
    """ADC pin voltage (mV, rounded) for unipolar counts 0 .. 2**bits - 1."""
    return (counts * vref_mv + (1 << (bits - 1))) >> bits


def correct(value, gain_err_ppm, offset):
    """Remove a gain error (ppm, + reads high) and an offset from a reading."""
    value -= offset
    return value - div_round(value * gain_err_ppm, 1000000 + gain_err_ppm)


def vcell_mv(counts, bits, vref_mv, gain_err_ppm=0, offset_mv=0):
    """Cell voltage (mV): VCELL is a unity buffer, so pin mV = cell mV."""
    return correct(counts_to_pin_mv(counts, bits, vref_mv), gain_err_ppm, offset_mv)


def ishunt_scale(bits, vref_mv, uv_per_ua):
    """(num, den) with current_ua = counts_from_mid * num / den, reduced so the
    product stays a small int on 32-bit MicroPython (nominal board: 1/16)."""
    num = vref_mv * 1000
    den = (1 << bits) * uv_per_ua
    g = gcd(num, den)
    return num // g, den // g


def mid_counts(bits, vref_mv, mid_mv):
    """ADC counts at the shunt amplifier's zero-current output."""
    return div_round(mid_mv << bits, vref_mv)


def ishunt_ua(counts, mid, num, den, gain_err_ppm=0, offset_ua=0):
    """Measured current (µA, + charges): bipolar around mid-scale `mid` counts."""
    return correct(div_round((counts - mid) * num, den), gain_err_ppm, offset_ua)


def ntc_temp_dc(counts, bits, r25_ohm, beta_k, pullup_ohm):
    """Thermistor temperature (deci-°C) from the beta equation, or None when
    the counts are on a rail (no finite resistance). Floats here; FrontEnd
    calls it only when it builds its table."""
    full = 1 << bits
    if counts <= 0 or counts >= full:
        return None
    r_ohm = pullup_ohm * counts / (full - counts)
    inv_t = 1.0 / 298.15 + math.log(r_ohm / r25_ohm) / beta_k
    return int(round((1.0 / inv_t - 273.15) * 10))


def ntc_open(counts, bits):
    """NTC disconnected: the pull-up takes the pin to full scale."""
    return counts >= (1 << bits) - ((1 << bits) // _NTC_RAIL_PART)


def ntc_shorted(counts, bits):
    """NTC shorted to ground: the pin sits near 0."""
    return counts <= (1 << bits) // _NTC_RAIL_PART


def gcd(a, b):
    while b:
        a, b = b, a % b
    return a


class FrontEnd:
    """One board's ADC channels, read and converted without allocation."""

    def __init__(self, hal, config):
        self._hal = hal
        self.bits = hal.adc_bits()
        self.vref_mv = hal.adc_vref_mv()
        c = config
        self._v_gain = c.vcell_gain_err_ppm
        self._v_off = c.vcell_offset_mv
        self._i_gain = c.ishunt_gain_err_ppm
        self._i_off = c.ishunt_offset_ua
        self._i_mid = mid_counts(self.bits, self.vref_mv, c.ishunt_mid_mv)
        self._i_num, self._i_den = ishunt_scale(self.bits, self.vref_mv, c.ishunt_uv_per_ua)
        self.full_counts = (1 << self.bits) - 1
        # Auto-zero of the shunt amplifier: with the relay open no current can
        # flow, so the counts read then are the true zero (a 0.2 % ADC gain
        # error alone moves mid-scale by 4 µA on the reference board). Learned
        # as a x16 fixed-point running mean; readings further than
        # Config.ishunt_zero_window_ua from nominal are not a zero and are ignored.
        self._i_mid_nominal = self._i_mid
        self._zero_acc = -1
        self.zero_samples = 0
        self._zero_window = self._ua_to_counts(c.ishunt_zero_window_ua)
        # Thermistor table: temp_dc at counts = i << step_shift, built once.
        self._t_shift = self.bits - _NTC_TABLE_SHIFT if self.bits > _NTC_TABLE_SHIFT else 0
        n = (self.full_counts >> self._t_shift) + 2
        table = []
        fits = True
        for i in range(n):
            counts = i << self._t_shift
            # Clamp the rail points to their neighbours: they are fault bands anyway.
            counts = min(max(counts, 1), self.full_counts)
            t_dc = ntc_temp_dc(counts, self.bits, c.ntc_r25_ohm, c.ntc_beta_k, c.ntc_pullup_ohm)
            fits = fits and -32768 <= t_dc <= 32767
            table.append(t_dc)
        # As int16 (half the RAM of a list) unless an odd divider gives
        # beyond ±3276.7 °C at a rail point.
        self._t_table = array("h", table) if fits else table
        # Raw counts of the last read() (the "magnet_raw" view).
        self.vcell_counts = 0
        self.ishunt_counts = 0
        self.tcell_counts = 0
        # Converted values of the last read().
        self.cell_mv = 0
        self.current_ua = 0
        self.temp_dc = 0
        self.ntc_fault = False   # thermistor open or shorted: temp_dc is not valid
        self.ishunt_railed = False

    def read_raw(self):
        hal = self._hal
        self.vcell_counts = hal.adc_read(VCELL)
        self.ishunt_counts = hal.adc_read(ISHUNT)
        self.tcell_counts = hal.adc_read(TCELL)

    def read(self):
        """Read all three channels and convert them (ints only)."""
        self.read_raw()
        self.cell_mv = vcell_mv(self.vcell_counts, self.bits, self.vref_mv, self._v_gain, self._v_off)
        counts = self.ishunt_counts
        self.ishunt_railed = counts <= 0 or counts >= self.full_counts
        self.current_ua = ishunt_ua(counts, self._i_mid, self._i_num, self._i_den, self._i_gain, self._i_off)
        counts = self.tcell_counts
        self.ntc_fault = ntc_open(counts, self.bits) or ntc_shorted(counts, self.bits)
        if not self.ntc_fault:
            self.temp_dc = self.table_temp_dc(counts)

    def _ua_to_counts(self, ua):
        return ua * self._i_den // self._i_num

    def learn_zero(self):
        """Call after read() when the relay has been open for the whole
        interval: the ISHUNT counts of no current refine the zero."""
        counts = self.ishunt_counts
        off = counts - self._i_mid_nominal
        if off > self._zero_window or -off > self._zero_window:
            return
        n = self.zero_samples
        if n < _ZERO_AVERAGE_N:
            # plain mean of the first samples: one noisy sample must not set the
            # zero for a whole formation (a reboot has only the boot settle)
            if n == 0:
                self._zero_acc = counts << 4
            else:
                self._zero_acc += ((counts << 4) - self._zero_acc) // (n + 1)
            self.zero_samples = n + 1
        else:
            self._zero_acc += ((counts << 4) - self._zero_acc) >> _ZERO_SHIFT
        self._i_mid = (self._zero_acc + 8) >> 4
        self.current_ua = ishunt_ua(counts, self._i_mid, self._i_num, self._i_den, self._i_gain, self._i_off)

    def zero_counts(self):
        """The ISHUNT counts taken as zero current."""
        return self._i_mid

    def table_temp_dc(self, counts):
        """Thermistor temperature by linear interpolation in the table (ints)."""
        shift = self._t_shift
        i = counts >> shift
        frac = counts - (i << shift)
        t0 = self._t_table[i]
        if frac == 0:
            return t0
        t1 = self._t_table[i + 1]
        return t0 + div_round((t1 - t0) * frac, 1 << shift)
