# Lithium ledger: exact integer coulomb counting, in small ints on any cell.
#
# The negative electrode holds only the lithium that was plated onto it, so
# the counted charge IS the lithium inventory: charge (+) plates, discharge (-)
# strips. Each tick adds current_ua * dt_ms exactly: no float32 drift
# (LibreSolar bms_soc.c sums float mAs; we do not).
#
# Units (docs/firmware.md, "Accounting units"). A 1 Ah cell holds 3.6e12 µA·ms,
# far past MicroPython's small ints (31 bits on a 32-bit board: below 2^30); a
# long int is heap, and a tick must not allocate. So every charge is kept as a
# pair [q, r]: q whole *charge units* of unit_uas µA·ms and a remainder
# 0 <= r < unit_uas. The unit is chosen per cell (Config.charge_unit_uas(): the
# finest unit (unit_for) that keeps the target below 2^27 units), so the tick's
# comparisons and ramps run on q alone, and the pair is still exact. Every
# unit divides 1 µAh: µAh totals stay exact too.
# Lifetime totals are whole µAh plus a remainder.
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

# The charge units a cell may be counted in (µA·ms), finest first: 1, 10, 100,
# 1000, 3600, 36000 ... up to 1 µAh (unit_for). Each divides UAS_PER_UAH. Not a
# tuple constant: frozen into a 32-bit image, the ints of a constant tuple from
# 2^15 up are long-int objects (seen on MicroPython 1.28's unix-32 build), and
# arithmetic on one allocates.
# A cell's target stays below this many units (a 100 Ah cell: 1e8 units of 1 µAh):
# headroom of 8x below 2^30 for sums and the ceiling's margin.
UNITS_PER_TARGET_MAX = const(1 << 27)

_SMALL = const(0x3FFFFFFF)      # the largest small int on a 32-bit board
_PIECE_MS = const(4096)         # a longer tick is counted in pieces: mA x ms stays small to 262 A


def unit_for(target_uas):
    """The charge unit (µA·ms) of a cell whose target inventory is target_uas
    (may be a long int: called once, at construction)."""
    unit = 1
    while unit < UAS_PER_UAH and target_uas // unit >= UNITS_PER_TARGET_MAX:
        unit = 3600 if unit == 1000 else unit * 10
    return unit


def to_units(uas, unit_uas):
    """uas (µA·ms, may be long) in whole units, rounded up: a threshold in
    units is met only once the exact charge met it."""
    return -(-uas // unit_uas)


_PAIRS = ("plated", "inventory", "cycle_in", "cycle_out")


def _uas(acc, unit):
    return acc[0] * unit + acc[1]


class Ledger:
    # The ledger's fields of the persistent record (bmsfw.record): save_to and
    # restore_from convert the pairs to the record's exact µA·ms (long ints on
    # big cells: a save allocates anyway). The lifetime remainders below 1 µAh
    # and the direction are not kept: a reset loses less than 1 µAh of lifetime
    # total and starts the next cycle afresh.
    RECORD_FIELDS = ("plated_uas", "inventory_uas", "cycle_in_uas", "cycle_out_uas", "plated_uah",
                     "stripped_uah", "cycles", "ce_ppm")

    def save_to(self, rec):
        for name in _PAIRS:
            setattr(rec, name + "_uas", _uas(getattr(self, name), self.unit_uas))
        rec.plated_uah = self.plated_uah
        rec.stripped_uah = self.stripped_uah
        rec.cycles = self.cycles
        rec.ce_ppm = self.ce_ppm

    def restore_from(self, rec):
        for name in _PAIRS:
            self.set_uas(getattr(self, name), getattr(rec, name + "_uas"))
        self.plated_uah = rec.plated_uah
        self.stripped_uah = rec.stripped_uah
        self.cycles = rec.cycles
        self.ce_ppm = rec.ce_ppm

    def set_uas(self, acc, uas):
        """Set a pair to uas µA·ms."""
        acc[0] = uas // self.unit_uas
        acc[1] = uas - acc[0] * self.unit_uas

    def __init__(self, deadband_ua, cycle_min_uas, unit_uas=1):
        if UAS_PER_UAH % unit_uas:
            raise ValueError("unit_uas must divide 1 µAh")
        self.unit_uas = unit_uas
        self._deadband_ua = deadband_ua
        self._cycle_min_q = to_units(cycle_min_uas, unit_uas)
        self._q_per_uah = UAS_PER_UAH // unit_uas
        # mA·ms per unit, for currents whose µA x ms passes 2^30 (0: count those in pieces)
        self._unit_mams = unit_uas // 1000 if unit_uas % 1000 == 0 else 0
        self.inventory = [0, 0]       # lithium on the negative electrode (counted)
        self.plated = [0, 0]          # charge plated during formation
        self.forming = False          # count charge into plated too
        self.cycle_in = [0, 0]        # this cycle's charge in
        self.cycle_out = [0, 0]       # this cycle's charge out
        self.plated_uah = 0           # lifetime charge in, whole µAh ...
        self._plated_life = [0, 0]    # ... and the units below 1 µAh
        self.stripped_uah = 0         # lifetime charge out, whole µAh ...
        self._stripped_life = [0, 0]
        self.direction = 0            # +1 charging, -1 discharging, 0 not yet known
        self.cycles = 0               # cycles closed with a measured CE
        self.ce_ppm = 0               # last measured coulombic efficiency (0: unknown)
        self.cycle_closed = False     # set by add() when a cycle closed this call
        self.last_in_uas = 0          # the closed cycle's figures (set once per cycle)
        self.last_out_uas = 0
        self._dq = 0                  # scratch: one piece's charge, units ...
        self._dr = 0                  # ... and remainder

    def uas(self, name):
        """The exact µA·ms of the pair `name` ("inventory", "plated", "cycle_in",
        "cycle_out"): a long int on big cells, so not on the tick path."""
        return _uas(getattr(self, name), self.unit_uas)

    # --- counting ------------------------------------------------------------------
    def add(self, current_ua, dt_ms):
        """Count current_ua over dt_ms (both ints; dt_ms >= 0)."""
        self.cycle_closed = False
        if current_ua > self._deadband_ua:
            if self.direction < 0 and not self.forming:
                self._close_cycle()
            self.direction = 1
        elif current_ua < -self._deadband_ua:
            self.direction = -1
        if current_ua == 0:
            return
        mag = current_ua if current_ua > 0 else -current_ua
        unit = self.unit_uas
        if dt_ms <= _PIECE_MS and mag <= _SMALL // dt_ms:
            # the usual tick: the product is a small int
            p = mag * dt_ms
            dq = p // unit
            dr = p - dq * unit
        else:
            most = _PIECE_MS
            if not self._unit_mams and mag > _SMALL // most:
                # a unit finer than 1 µA·s (a cell below ~19 mAh) at more than 262 mA
                most = _SMALL // mag
            dq = 0
            dr = 0
            while dt_ms > 0:
                piece = dt_ms if dt_ms <= most else most
                dt_ms -= piece
                self._measure(mag, piece)
                dq += self._dq
                dr += self._dr
                if dr >= unit:
                    dr -= unit
                    dq += 1
        # Count (dq units, dr µA·ms) in or out: inline, this runs every tick.
        charging = current_ua > 0
        acc = self.cycle_in if charging else self.cycle_out
        r = acc[1] + dr
        if r >= unit:
            r -= unit
            acc[0] += 1
        acc[1] = r
        acc[0] += dq
        life = self._plated_life if charging else self._stripped_life
        r = life[1] + dr
        if r >= unit:
            r -= unit
            life[0] += 1
        life[1] = r
        n = life[0] + dq
        per = self._q_per_uah
        whole = 0
        if n >= per:
            whole = n // per
            n -= whole * per
        life[0] = n
        if charging:
            self.plated_uah += whole
        else:
            # minus (dq, dr) is plus (-dq - 1, unit - dr): the remainder stays >= 0
            self.stripped_uah += whole
            if dr:
                dq = -dq - 1
                dr = unit - dr
            else:
                dq = -dq
        acc = self.inventory
        r = acc[1] + dr
        if r >= unit:
            r -= unit
            acc[0] += 1
        acc[1] = r
        acc[0] += dq
        if self.forming:
            acc = self.plated
            r = acc[1] + dr
            if r >= unit:
                r -= unit
                acc[0] += 1
            acc[1] = r
            acc[0] += dq

    def _measure(self, mag, dt_ms):
        """mag x dt_ms into (self._dq, self._dr) without forming an int >= 2^30."""
        unit = self.unit_uas
        if mag <= _SMALL // dt_ms:
            p = mag * dt_ms
        else:
            # mag = ma * 1000 + ua: the mA part in units of k mA·ms, the rest in µA·ms
            k = self._unit_mams
            ma = mag // 1000
            x = ma * dt_ms
            q = x // k
            p = (x - q * k) * 1000 + (mag - ma * 1000) * dt_ms
            n = p // unit
            self._dq = q + n
            self._dr = p - n * unit
            return
        q = p // unit
        self._dq = q
        self._dr = p - q * unit

    def _close_cycle(self):
        q_in = self.cycle_in[0]
        q_out = self.cycle_out[0]
        if q_in >= self._cycle_min_q and q_out >= self._cycle_min_q:
            # Once per cycle (an event): the exact µA·ms may be long ints.
            self.ce_ppm = ratio_ppm(q_out, q_in)
            self.cycles += 1
            self.last_in_uas = self.uas("cycle_in")
            self.last_out_uas = self.uas("cycle_out")
            self.cycle_closed = True
        d = self.direction
        self.restart_cycle()
        self.direction = d

    def restart_cycle(self):
        """Forget the open cycle (after formation: its 'charge' was the whole
        formation, not a cycle)."""
        for acc in (self.cycle_in, self.cycle_out):
            acc[0] = 0
            acc[1] = 0
        self.direction = 0

    def stripped_uas(self):
        return self.stripped_uah * UAS_PER_UAH + _uas(self._stripped_life, self.unit_uas)

    def lifetime_plated_uas(self):
        return self.plated_uah * UAS_PER_UAH + _uas(self._plated_life, self.unit_uas)


def per_mille(value, of):
    """value / of in per mille, clamped to 0..1000, without forming
    value * 1000 (small ints on 32-bit MicroPython)."""
    if value <= 0 or of <= 0:
        return 0
    if value >= of:
        return 1000
    step = (of + 999) // 1000
    pm = value // step
    return 999 if pm > 999 else pm


def ratio_ppm(num, den):
    """num / den in ppm, rounded down, clamped to 0 .. 10^7, by long division:
    no int beyond 10 x den forms (a den from 2^26 up is first divided by 16)."""
    if den >= 67108864:
        num >>= 4
        den >>= 4
    if num <= 0 or den <= 0:
        return 0
    whole = num // den
    if whole >= 10:
        return 10000000
    r = num - whole * den
    out = whole
    for _ in range(6):
        r *= 10
        d = r // den
        r -= d * den
        out = out * 10 + d
    return out


def scale_pm(value, pm):
    """value x pm / 1000 rounded down (value >= 0, 0 <= pm <= 1000), without
    forming value x pm: limits in µA on A-range cells pass 2^30 / 1000."""
    if value < 1048576:
        return value * pm // 1000
    k = value // 1000
    return k * pm + (value - k * 1000) * pm // 1000
