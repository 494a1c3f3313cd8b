# Lithium ledger: exact integer coulomb counting in µA·ms.
#
# The negative electrode holds only the lithium that was plated onto it, so
# the counted charge IS the lithium inventory: charge (+) plates, discharge (-)
# strips. Each tick adds current_ua * dt_ms, an exact int: no float32 drift
# (LibreSolar bms_soc.c sums float mAs; we do not). Lifetime totals are kept as
# whole µAh plus a remainder so they stay small ints on 32-bit MicroPython for
# any realistic life.
#
# Cycles: the direction changes only when |current| exceeds a deadband (rest
# noise does not split a cycle). A cycle is a charge segment followed by a
# discharge segment; it closes when charging starts again, and its coulombic
# efficiency (out / in, ppm) is kept when both sides moved at least
# cycle_min_uas. No cycle closes while forming: formation's "charge" is the
# whole inventory, and its verify cycle reports its own figure.

from .compat import const

# The unit of every *_uas figure in bmsfw: µA·ms. 1 µAh = 3 600 000 µA·ms.
UAS_PER_UAH = const(3600000)


class Ledger:
    # The ledger's fields of the persistent record (bmsfw.record.Store copies
    # them). The remainders below 1 µAh and the direction are not kept: a reset
    # loses less than 1 µAh of lifetime total and starts the next cycle afresh.
    RECORD_FIELDS = ("plated_uas", "inventory_uas", "cycle_in_uas", "cycle_out_uas", "plated_uah",
                     "stripped_uah", "cycles", "ce_ppm")

    def __init__(self, deadband_ua, cycle_min_uas):
        self._deadband_ua = deadband_ua
        self._cycle_min_uas = cycle_min_uas
        self.inventory_uas = 0        # lithium on the negative electrode (counted)
        self.plated_uas = 0           # charge plated during formation
        self.forming = False          # count charge into plated_uas too
        self.plated_uah = 0           # lifetime charge in, whole µAh ...
        self._plated_rem_uas = 0      # ... and the remainder below 1 µAh
        self.stripped_uah = 0         # lifetime charge out, whole µAh ...
        self._stripped_rem_uas = 0
        self.direction = 0            # +1 charging, -1 discharging, 0 not yet known
        self.cycle_in_uas = 0         # this cycle's charge in
        self.cycle_out_uas = 0        # this cycle's charge out
        self.cycles = 0               # cycles closed with a measured CE
        self.ce_ppm = 0               # last measured coulombic efficiency (0: unknown)
        self.cycle_closed = False     # set by add() when a cycle closed this call
        self.last_in_uas = 0          # the closed cycle's figures
        self.last_out_uas = 0

    def add(self, current_ua, dt_ms):
        """Count current_ua over dt_ms (both ints; dt_ms >= 0)."""
        self.cycle_closed = False
        charge = current_ua * dt_ms
        if current_ua > self._deadband_ua:
            if self.direction < 0 and not self.forming:
                self._close_cycle()
            self.direction = 1
        elif current_ua < -self._deadband_ua:
            self.direction = -1
        if charge > 0:
            self.inventory_uas += charge
            self.cycle_in_uas += charge
            if self.forming:
                self.plated_uas += charge
            rem = self._plated_rem_uas + charge
            if rem >= UAS_PER_UAH:
                self.plated_uah += rem // UAS_PER_UAH
                rem %= UAS_PER_UAH
            self._plated_rem_uas = rem
        elif charge < 0:
            self.inventory_uas += charge
            self.cycle_out_uas -= charge
            if self.forming:
                # Formation's verify cycle strips some of what was plated.
                self.plated_uas += charge
            rem = self._stripped_rem_uas - charge
            if rem >= UAS_PER_UAH:
                self.stripped_uah += rem // UAS_PER_UAH
                rem %= UAS_PER_UAH
            self._stripped_rem_uas = rem

    def _close_cycle(self):
        q_in = self.cycle_in_uas
        q_out = self.cycle_out_uas
        if q_in >= self._cycle_min_uas and q_out >= self._cycle_min_uas:
            # Once per cycle; may form a long int on 32-bit MicroPython (not per tick).
            self.ce_ppm = q_out * 1000000 // q_in
            self.cycles += 1
            self.last_in_uas = q_in
            self.last_out_uas = q_out
            self.cycle_closed = True
        self.cycle_in_uas = 0
        self.cycle_out_uas = 0

    def restart_cycle(self):
        """Forget the open cycle (after formation: its 'charge' was the whole
        formation, not a cycle)."""
        self.cycle_in_uas = 0
        self.cycle_out_uas = 0
        self.direction = 0

    def stripped_uas(self):
        return self.stripped_uah * UAS_PER_UAH + self._stripped_rem_uas

    def lifetime_plated_uas(self):
        return self.plated_uah * UAS_PER_UAH + self._plated_rem_uas


def per_mille(value_uas, of_uas):
    """value / of in per mille, clamped to 0..1000, without forming
    value * 1000 (small ints on 32-bit MicroPython)."""
    if value_uas <= 0 or of_uas <= 0:
        return 0
    if value_uas >= of_uas:
        return 1000
    step = (of_uas + 999) // 1000
    pm = value_uas // step
    return 999 if pm > 999 else pm
