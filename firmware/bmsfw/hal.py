# The HAL contract: everything the controller may ask of the hardware.
#
# The controller never imports `machine`, the twin or the link; it is handed an
# object with these methods. Three implementations exist: the real board
# (bmsfw/board_hal.py), the in-process twin (twin/board.py) and the HIL link
# (bmsfw/link_hal.py). Each must implement every method: this base class raises
# NotImplementedError rather than return a plausible default, so a missing method
# fails loudly on the first tick. See docs/hal.md.

# ADC channels (raw counts, see docs/hal.md for the analog front end)
VCELL = 0   # cell voltage through the divider
ISHUNT = 1  # current-shunt amplifier, bipolar around mid-scale
TCELL = 2   # NTC thermistor divider


class Hal:
    def adc_read(self, channel):
        """Raw counts of VCELL, ISHUNT or TCELL (0 .. 2**adc_bits() - 1)."""
        raise NotImplementedError("adc_read")

    def adc_bits(self):
        raise NotImplementedError("adc_bits")

    def adc_vref_mv(self):
        raise NotImplementedError("adc_vref_mv")

    def set_current_ua(self, current_ua):
        """Current-source setpoint, signed int µA: + charges, - discharges."""
        raise NotImplementedError("set_current_ua")

    def set_relay(self, closed):
        raise NotImplementedError("set_relay")

    def ticks_ms(self):
        """Monotonic ms clock; may wrap on boards: compare with ticks_diff.

        The controller compares ticks with MicroPython's time.ticks_diff
        (period 2**30), so a HAL serving MicroPython keeps the value in
        0 .. 2**30 - 1 (wrapping like time.ticks_ms); under CPython any int
        works. Differences must stay below 2**29 ms (~6 days) between ticks."""
        raise NotImplementedError("ticks_ms")

    def load_record(self):
        """The persistent record as bytes, or None if never saved."""
        raise NotImplementedError("load_record")

    def save_record(self, data):
        """Store the record atomically: after a power cut either the old or the
        new record is read back whole, never a mix."""
        raise NotImplementedError("save_record")

    def feed_watchdog(self):
        raise NotImplementedError("feed_watchdog")
