# State estimator: the lithium on the electrode and the catholyte's state,
# each with an error bound, corrected from what the cell shows.
#
# The ledger (bmsfw.ledger) counts charge exactly, but charge is not lithium:
# a fraction of every charge plated ends as dead lithium (the twin's
# plating_loss_fraction, ~0.5 % on D111), so the counted inventory drifts
# above the real one by that fraction of all charge ever put in. The
# catholyte does not see the loss (it gives the full charge either way), so
# the rest voltage cannot show it either: only the end-of-discharge knee,
# where the electrode runs out of lithium, measures it. Hence:
#
#   li      = counted charge, less loss_ppm of every charge in (the prior
#             from the cell's characterisation until a knee measures it)
#   bound   = grows with every charge in (the loss's uncertainty), with all
#             charge moved (counting) and with time (residual shunt zero);
#             a knee sets li to what is left there and the bound to knee_bound
#   cath    = lithium taken out of the catholyte (the ledger's net count:
#             the catholyte's Li:S ratio follows from it and the design)
#
# A knee (a discharge ended on DVL while the catholyte is well above Li2S2)
# corrects li to what is left there and learns the loss rate from the
# shortfall. More estimated than the bound allows is not yet a crack: an
# empty cell whose loss was misjudged looks the same. at_knee() returns that
# excess and the controller asks the crack watch for a rest, whose voltage
# decides (a crack corrodes lithium: a self-discharge; an empty cell rests).
#
# Integers only, nothing allocated per tick. The unit is per cell
# (Config.est_unit_uas(), "eu" in names): 1 nAh (3600 µA·ms) where the
# ledger's charge unit is finer (a 200 µAh cell is 200 000 eu), else the
# ledger's unit (10 nAh on 1 Ah, 1 µAh on 100 Ah), so the target stays below
# 2**27 eu and every intermediate below 2**30 (31-bit small ints on 32-bit
# MicroPython). An eu is always k nAh (k = 1, 10, 100, 1000). Products that
# could be large are formed through _per (a quotient by a step, not a product).
from .compat import const
from .ledger import UAS_PER_UAH

NAH_UAS = const(3600)           # µA·ms per nAh
_PPM = const(1000000)
_LOSS_MAX_PPM = const(100000)   # a learnt loss is clamped to 0..10 %
_SMALL = const(0x3FFFFFFF)      # the largest small int on a 32-bit board


def _per(value, of, scale):
    """value * scale // of (all >= 0, scale 1000 or 10**6) without forming
    value * scale: divided by of's step instead (ceiled, so never above)."""
    step = (of + scale - 1) // scale
    return value // step if step > 1 else value * scale // of


class Estimator:
    # its fields of the persistent record (bmsfw.record.Store copies them)
    RECORD_FIELDS = ("li_eu", "bound_eu", "cath_eu", "loss_ppm", "loss_unc_ppm", "knees",
                     "qin_eu")

    def __init__(self, config):
        c = config
        self._c = c
        self.unit_uas = unit = c.est_unit_uas()
        self.unit_nah = k = unit // NAH_UAS               # nAh per eu
        self.eu_per_uah = UAS_PER_UAH // unit
        self.target_eu = c.target_inventory_uah * self.eu_per_uah
        self.reserve_eu = c.lithium_reserve_uah * self.eu_per_uah
        self.cath0_eu = c.lithium_supply_uah * self.eu_per_uah      # dissolved Li as shipped
        self.s_eu = c.catholyte_s_uah * self.eu_per_uah             # Li that makes the catholyte Li2S2 (x = 1)
        self.knee_bound_eu = -(-c.knee_bound_nah // k)              # rounded up: a bound is never below
        self._qin_min_eu = 10000 // k if k < 10 else 1000           # a knee learns after 10 µAh in (1000 eu: qin // 1000 > 0)
        self._cath_max_eu = self.s_eu // 1000 * c.catholyte_max_x_pm
        self.li_eu = 0             # lithium on the electrode (estimate)
        self.bound_eu = 0          # |estimate - truth| <= bound
        self.cath_eu = 0           # lithium taken out of the catholyte (counted)
        self.loss_ppm = c.plating_loss_ppm
        self.loss_unc_ppm = c.plating_loss_unc_ppm
        self.knees = 0              # knees seen (loss measured)
        self.qin_eu = 0            # charge in since the last knee (or formation)
        self.last_shortfall_eu = 0 # li at the last knee (+: more was estimated than was there)
        self.knee_excess_eu = 0    # ... beyond the bound (> 0: evidence of lithium lost otherwise)
        self._rem_uas = 0           # charge below one eu, carried
        self._loss_rem = 0          # loss below one eu, ppm·eu
        self._bnd_rem = 0           # bound below one eu, ppm·eu
        self._off_rem = 0           # offset bound below one nAh, nA·ms ...
        self._off_nah = 0           # ... and below one eu, nAh
        self._meas_ppm = c.meas_unc_ppm
        self._off_na = c.offset_unc_na

    # --- the persistent record -------------------------------------------------
    def save_to(self, rec):
        for name in Estimator.RECORD_FIELDS:
            setattr(rec, name, getattr(self, name))

    def restore_from(self, rec):
        if rec.loss_ppm == 0 and rec.li_eu == 0 and rec.inventory_uas > 0:
            # A record no estimator wrote (its fields at their defaults): start
            # from the ledger's count, with the bound of a loss never measured.
            li = rec.inventory_uas // self.unit_uas
            self.li_eu = li
            self.cath_eu = li
            self.qin_eu = li
            self.bound_eu = li // 1000 * (self.loss_unc_ppm + self._meas_ppm) // 1000 + self.knee_bound_eu
            return
        for name in Estimator.RECORD_FIELDS:
            setattr(self, name, getattr(rec, name))

    # --- per tick ----------------------------------------------------------------
    def add(self, current_ua, dt_ms):
        """Count current_ua over dt_ms (relay closed), like Ledger.add."""
        unit = self.unit_uas
        mag = current_ua if current_ua >= 0 else -current_ua
        if dt_ms > 0 and mag > (_SMALL >> 1) // dt_ms:
            # |current| x dt_ms past 2^29 (amps on a big cell): whole eu of the
            # current first; the rest (below one eu) x dt_ms stays small by pieces
            whole = mag // unit
            part = mag - whole * unit
            n = whole * dt_ms
            rem = self._rem_uas if current_ua >= 0 else -self._rem_uas
            left = dt_ms
            most = (_SMALL >> 1) // unit if unit < (_SMALL >> 1) else 1
            while left > 0:
                piece = left if left <= most else most
                left -= piece
                rem += part * piece
                q = rem // unit
                n += q
                rem -= q * unit
            if current_ua < 0:
                # floor of a negative charge: carry a positive remainder
                n = -n
                if rem:
                    n -= 1
                    rem = unit - rem
            self._rem_uas = rem
        else:
            rem = self._rem_uas + current_ua * dt_ms
            n = rem // unit             # floor: a negative charge carries a positive remainder
            self._rem_uas = rem - n * unit
        # the residual shunt zero: offset_unc_na over dt_ms, in nA·ms (1 nAh = 3.6e6 nA·ms)
        off = self._off_rem + self._off_na * dt_ms
        if off >= 3600000:
            k = self._off_nah + off // 3600000
            off %= 3600000
            if k >= self.unit_nah:
                self.bound_eu += k // self.unit_nah
                k %= self.unit_nah
            self._off_nah = k
        self._off_rem = off
        if n == 0:
            return
        self.cath_eu += n
        if n > 0:
            self.qin_eu += n
            loss = self._loss_rem + n * self.loss_ppm
            k = loss // _PPM
            self._loss_rem = loss - k * _PPM
            li = self.li_eu + n - k
            bnd = self._bnd_rem + n * (self.loss_unc_ppm + self._meas_ppm)
        else:
            li = self.li_eu + n
            bnd = self._bnd_rem - n * self._meas_ppm
        # The electrode cannot hold less than nothing: stripping past zero
        # means the estimate was high; the knee will say by how much.
        self.li_eu = li if li > 0 else 0
        k = bnd // _PPM
        self._bnd_rem = bnd - k * _PPM
        self.bound_eu += k

    # --- what the limits and telemetry read ------------------------------------------
    def low_eu(self):
        """The pessimistic inventory: what DCL keeps above the reserve."""
        low = self.li_eu - self.bound_eu
        return low if low > 0 else 0

    def high_eu(self):
        """The optimistic inventory: what CCL keeps below the ceiling."""
        return self.li_eu + self.bound_eu

    def cath_left_eu(self):
        """Lithium dissolved in the catholyte now (design less what was taken)."""
        left = self.cath0_eu - self.cath_eu
        return left if left > 0 else 0

    def x_pm(self):
        """The catholyte's Li:S ratio, per mille (250 = Li2S8, 1000 = Li2S2)."""
        return _per(self.cath_left_eu(), self.s_eu, 1000)

    def cath_room_eu(self):
        """Lithium the catholyte takes before it reaches its limit (Li2S2)."""
        room = self._cath_max_eu - self.cath_left_eu()
        return room if room > 0 else 0

    def soc_pm(self):
        """State of charge, per mille: the narrower of the two windows, the
        electrode's lithium above the reserve and the catholyte's room before
        Li2S2, over the electrode's design window (target - reserve)."""
        span = self.target_eu - self.reserve_eu
        avail = self.li_eu - self.reserve_eu
        room = self.cath_room_eu()
        if room < avail:
            avail = room
        return _pm(avail, span)

    def soc_bound_pm(self):
        span = self.target_eu - self.reserve_eu
        return _pm(self.bound_eu, span) if self.bound_eu < span else 1000

    # --- corrections -------------------------------------------------------------
    def correct(self, eu):
        """The voltage says the count took eu more from the catholyte than
        moved (bmsfw.crack_watch): both the catholyte and the electrode hold
        that much less than counted."""
        self.cath_eu -= eu
        li = self.li_eu - eu
        self.li_eu = li if li > 0 else 0

    def formed(self, plated_uas):
        """Formation verified: the electrode holds what was plated, less the
        loss; the bound is the loss's uncertainty over it."""
        self.qin_eu = plated_uas // self.unit_uas
        self.bound_eu = self.qin_eu // 1000 * (self.loss_unc_ppm + self._meas_ppm) // 1000

    def at_knee(self):
        """A discharge ran into DVL: learn from it. Returns the lithium that
        was estimated beyond the bound (eu; > 0: more was missing than the
        loss's uncertainty explains, for the crack watch to look into). A knee with the catholyte near
        Li2S2 is the catholyte's: it corrects the catholyte count instead."""
        c = self._c
        if self.cath_room_eu() < self.target_eu // 10:
            # The catholyte's end (Li2S2), not the electrode's: it is where the design says.
            self.cath_eu = self.cath0_eu - self._cath_max_eu
            return 0
        shortfall = self.li_eu
        self.last_shortfall_eu = shortfall
        excess = shortfall - self.bound_eu - self.knee_bound_eu
        self.knee_excess_eu = excess if excess > 0 else 0
        if self.qin_eu >= self._qin_min_eu and shortfall > 0:
            # The loss of this knee's charge in: what it took to lose `shortfall`.
            s = shortfall if shortfall < 1000000 else 999999     # s * 1000 < 2**30
            more = s * 1000 // (self.qin_eu // 1000)
            loss = self.loss_ppm + more
            self.loss_ppm = loss if loss < _LOSS_MAX_PPM else _LOSS_MAX_PPM
            unc = self.loss_unc_ppm // 2
            self.loss_unc_ppm = unc if unc > c.plating_loss_min_unc_ppm else c.plating_loss_min_unc_ppm
        self.knees += 1
        self.li_eu = 0
        self.bound_eu = self.knee_bound_eu
        self.qin_eu = 0
        self._bnd_rem = 0
        return self.knee_excess_eu

    def uah(self, eu):
        """eu in whole µAh (telemetry: 100 Ah is 1e8 µAh, an i32)."""
        return eu // self.eu_per_uah


def _pm(value, of):
    if value <= 0 or of <= 0:
        return 0
    if value >= of:
        return 1000
    return _per(value, of, 1000)
