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
# Integers only, nothing allocated per tick: the unit is the nAh (3600 µA·ms),
# so a 200 µAh cell is 200 000 units and every intermediate stays far below
# 2**30 (31-bit small ints on 32-bit MicroPython). Products that could be large
# are formed through _per (a quotient by a step, not a product).
from .compat import const

NAH_UAS = const(3600)           # µA·ms per nAh
_PPM = const(1000000)
_LOSS_MAX_PPM = const(100000)   # a learnt loss is clamped to 0..10 %


def _per(value, of, scale):
    """value * scale // of (all >= 0, scale 1000 or 10**6) without forming
    value * scale: divided by of's step instead (ceiled, so never above)."""
    step = (of + scale - 1) // scale
    return value // step if step > 1 else value * scale // of


class Estimator:
    # its fields of the persistent record (bmsfw.record.Store copies them)
    RECORD_FIELDS = ("li_nah", "bound_nah", "cath_nah", "loss_ppm", "loss_unc_ppm", "knees",
                     "qin_nah")

    def __init__(self, config):
        c = config
        self._c = c
        self.target_nah = c.target_inventory_uah * 1000
        self.reserve_nah = c.lithium_reserve_uah * 1000
        self.cath0_nah = c.lithium_supply_uah * 1000       # dissolved Li as shipped
        self.s_nah = c.catholyte_s_uah * 1000              # Li that makes the catholyte Li2S2 (x = 1)
        self._cath_max_nah = self.s_nah // 1000 * c.catholyte_max_x_pm
        self.li_nah = 0             # lithium on the electrode (estimate)
        self.bound_nah = 0          # |estimate - truth| <= bound
        self.cath_nah = 0           # lithium taken out of the catholyte (counted)
        self.loss_ppm = c.plating_loss_ppm
        self.loss_unc_ppm = c.plating_loss_unc_ppm
        self.knees = 0              # knees seen (loss measured)
        self.qin_nah = 0            # charge in since the last knee (or formation)
        self.last_shortfall_nah = 0 # li at the last knee (+: more was estimated than was there)
        self.knee_excess_nah = 0    # ... beyond the bound (> 0: evidence of lithium lost otherwise)
        self._rem_uas = 0           # charge below one nAh, carried
        self._loss_rem = 0          # loss below one nAh, ppm·nAh
        self._bnd_rem = 0           # bound below one nAh, ppm·nAh
        self._off_rem = 0           # offset bound below one nAh, nA·ms
        self._meas_ppm = c.meas_unc_ppm
        self._off_na = c.offset_unc_na

    # --- the persistent record -------------------------------------------------
    def save_to(self, rec):
        for name in Estimator.RECORD_FIELDS:
            setattr(rec, name, getattr(self, name))

    def restore_from(self, rec):
        if rec.loss_ppm == 0 and rec.li_nah == 0 and rec.inventory_uas > 0:
            # A record no estimator wrote (its fields at their defaults): start
            # from the ledger's count, with the bound of a loss never measured.
            li = rec.inventory_uas // NAH_UAS
            self.li_nah = li
            self.cath_nah = li
            self.qin_nah = li
            self.bound_nah = li // 1000 * (self.loss_unc_ppm + self._meas_ppm) // 1000 + self._c.knee_bound_nah
            return
        for name in Estimator.RECORD_FIELDS:
            setattr(self, name, getattr(rec, name))

    # --- per tick ----------------------------------------------------------------
    def add(self, current_ua, dt_ms):
        """Count current_ua over dt_ms (relay closed), like Ledger.add."""
        rem = self._rem_uas + current_ua * dt_ms
        n = rem // NAH_UAS              # floor: a negative charge carries a positive remainder
        self._rem_uas = rem - n * NAH_UAS
        # the residual shunt zero: offset_unc_na over dt_ms, in nA·ms (1 nAh = 3.6e6 nA·ms)
        off = self._off_rem + self._off_na * dt_ms
        if off >= 3600000:
            self.bound_nah += off // 3600000
            off %= 3600000
        self._off_rem = off
        if n == 0:
            return
        self.cath_nah += n
        if n > 0:
            self.qin_nah += n
            loss = self._loss_rem + n * self.loss_ppm
            k = loss // _PPM
            self._loss_rem = loss - k * _PPM
            li = self.li_nah + n - k
            bnd = self._bnd_rem + n * (self.loss_unc_ppm + self._meas_ppm)
        else:
            li = self.li_nah + n
            bnd = self._bnd_rem - n * self._meas_ppm
        # The electrode cannot hold less than nothing: stripping past zero
        # means the estimate was high; the knee will say by how much.
        self.li_nah = li if li > 0 else 0
        k = bnd // _PPM
        self._bnd_rem = bnd - k * _PPM
        self.bound_nah += k

    # --- what the limits and telemetry read ------------------------------------------
    def low_nah(self):
        """The pessimistic inventory: what DCL keeps above the reserve."""
        low = self.li_nah - self.bound_nah
        return low if low > 0 else 0

    def high_nah(self):
        """The optimistic inventory: what CCL keeps below the ceiling."""
        return self.li_nah + self.bound_nah

    def cath_left_nah(self):
        """Lithium dissolved in the catholyte now (design less what was taken)."""
        left = self.cath0_nah - self.cath_nah
        return left if left > 0 else 0

    def x_pm(self):
        """The catholyte's Li:S ratio, per mille (250 = Li2S8, 1000 = Li2S2)."""
        return _per(self.cath_left_nah(), self.s_nah, 1000)

    def cath_room_nah(self):
        """Lithium the catholyte takes before it reaches its limit (Li2S2)."""
        room = self._cath_max_nah - self.cath_left_nah()
        return room if room > 0 else 0

    def soc_pm(self):
        """State of charge, per mille: the narrower of the two windows, the
        electrode's lithium above the reserve and the catholyte's room before
        Li2S2, over the electrode's design window (target - reserve)."""
        span = self.target_nah - self.reserve_nah
        avail = self.li_nah - self.reserve_nah
        room = self.cath_room_nah()
        if room < avail:
            avail = room
        return _pm(avail, span)

    def soc_bound_pm(self):
        span = self.target_nah - self.reserve_nah
        return _pm(self.bound_nah, span) if self.bound_nah < span else 1000

    # --- corrections -------------------------------------------------------------
    def correct(self, nah):
        """The voltage says the count took nah more from the catholyte than
        moved (bmsfw.crack_watch): both the catholyte and the electrode hold
        that much less than counted."""
        self.cath_nah -= nah
        li = self.li_nah - nah
        self.li_nah = li if li > 0 else 0

    def formed(self, plated_uas):
        """Formation verified: the electrode holds what was plated, less the
        loss; the bound is the loss's uncertainty over it."""
        self.qin_nah = plated_uas // NAH_UAS
        self.bound_nah = self.qin_nah // 1000 * (self.loss_unc_ppm + self._meas_ppm) // 1000

    def at_knee(self):
        """A discharge ran into DVL: learn from it. Returns the lithium that
        was estimated beyond the bound (nAh; > 0: more was missing than the
        loss's uncertainty explains, for the crack watch to look into). A knee with the catholyte near
        Li2S2 is the catholyte's: it corrects the catholyte count instead."""
        c = self._c
        if self.cath_room_nah() < self.target_nah // 10:
            # The catholyte's end (Li2S2), not the electrode's: it is where the design says.
            self.cath_nah = self.cath0_nah - self._cath_max_nah
            return 0
        shortfall = self.li_nah
        self.last_shortfall_nah = shortfall
        excess = shortfall - self.bound_nah - c.knee_bound_nah
        self.knee_excess_nah = excess if excess > 0 else 0
        if self.qin_nah >= 10000 and shortfall > 0:
            # The loss of this knee's charge in: what it took to lose `shortfall`.
            s = shortfall if shortfall < 1000000 else 999999     # s * 1000 < 2**30
            more = s * 1000 // (self.qin_nah // 1000)
            loss = self.loss_ppm + more
            self.loss_ppm = loss if loss < _LOSS_MAX_PPM else _LOSS_MAX_PPM
            unc = self.loss_unc_ppm // 2
            self.loss_unc_ppm = unc if unc > c.plating_loss_min_unc_ppm else c.plating_loss_min_unc_ppm
        self.knees += 1
        self.li_nah = 0
        self.bound_nah = c.knee_bound_nah
        self.qin_nah = 0
        self._bnd_rem = 0
        return self.knee_excess_nah


def _pm(value, of):
    if value <= 0 or of <= 0:
        return 0
    if value >= of:
        return 1000
    return _per(value, of, 1000)
