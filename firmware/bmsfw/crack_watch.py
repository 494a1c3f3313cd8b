# Crack watch on a formed cell: lithium corroding through a cracked layer,
# seen from the catholyte before any short.
#
# A crack lets the catholyte reach the plated lithium. Most of what corrodes
# returns to the catholyte as dissolved lithium (the twin: 80 %), so the
# catholyte fills with lithium the ledger never counted: at the same counted
# state its voltage sits lower, and at rest it falls while nothing flows (a
# self-discharge). An intact layer passes no polysulfide: at rest the voltage
# settles (the RC pair, ~20 s) and then stays.
#
# Two steps, so that a fault is raised on evidence only:
#   suspicion - every constant-current segment leaves an anchor anchor_ms into
#     it (the averaged VCELL counts, the catholyte count, the setpoint, the
#     temperature). The next anchor of the same setpoint, at the same catholyte
#     count (within crack_suspect_tol_nah, the difference taken through the
#     table's slope) and temperature, must read the same voltage; reading
#     lower by crack_suspect_uv says the ledger and the voltage disagree.
#   evidence - the watch asks the controller for a short rest (hold_rest:
#     CCL and DCL 0). After settle_ms the averaged voltage must not fall by
#     crack_drift_uv over window_ms. Falling is a self-discharge: the crack.
#     Any rest the duty gives is watched the same way.
# Where the OCV table (Figure 5) is flat a self-discharge moves the voltage
# little; D111 cycles on the shoulder near Li2S8, where it moves most.
#
# The same anchors correct the count: a small disagreement (below suspicion)
# is the ledger's own drift (the shunt zero left after learning it at boot,
# ~0.03 µA, is 15 µAh over a 500 h life; the twin's side reactions take
# ~0.05 % of a charge). Through the table's slope at the catholyte's Li:S it is
# lithium (estimator units) the ledger counted but did not move; the estimator takes all
# of it at each anchor, and the anchor keeps the corrected count: each
# correction is the change since the last anchor, so their noise telescopes
# (the estimate carries one anchor's noise, never a sum of them).
#
# Integers only, nothing allocated per tick: two anchor slots in lists made once.
from .compat import const

_EMA_SHIFT = const(4)      # VCELL average: 1/16 per tick (noise / 4)


class CrackWatch:
    def __init__(self, config, bits, vref_mv):
        c = config
        self._c = c
        # µV thresholds as averaged counts x 16 (the EMA's scale); counts/µV = 2**bits / (vref_mv * 1000)
        self._suspect = _uv_to_avg(c.crack_suspect_uv, bits, vref_mv)
        self._drift = _uv_to_avg(c.crack_drift_uv, bits, vref_mv)
        # the catholyte tolerances in the estimator's units (k nAh each: bmsfw.estimator), rounded up
        k = c.est_unit_uas() // 3600
        self._cath_tol = -(-c.crack_cath_tol_nah // k)
        self._suspect_tol = -(-c.crack_suspect_tol_nah // k)
        self._avg = -1              # EMA of VCELL counts x 16 (-1: none)
        self._sp = 0                # setpoint of the segment being averaged
        self._seg_ms = 0            # how long it has lasted
        self._anchored = False      # this segment left its anchor
        # anchors: slot 0 charge, 1 discharge
        self._a_sp = [0, 0]
        self._a_cath = [0, 0]
        self._a_avg = [-1, -1]
        self._a_temp = [0, 0]
        # rest measurement
        self._rest_ms = 0
        self._v1 = -1
        self.hold_rest = False      # the controller keeps current 0 while set
        self._hold_ms = 0
        self.rests = 0              # rests scheduled
        self.suspect_uv = 0         # the last disagreement seen (µV, + lower)
        self.found = False          # evidence of a self-discharge: the controller latches CRACK_SUSPECTED
        self._per_mv = ((16 << bits) + vref_mv // 2) // vref_mv   # averaged counts x 16 per mV

    def request_rest(self):
        """Hold a rest and watch its voltage (a knee the estimate missed)."""
        if not self.hold_rest:
            self.hold_rest = True
            self._hold_ms = 0
            self.rests += 1

    def reset(self):
        """Not in READY: forget the segment, the anchors and any rest."""
        self._avg = -1
        self._seg_ms = 0
        self._anchored = False
        self._a_avg[0] = -1
        self._a_avg[1] = -1
        self._rest_ms = 0
        self._v1 = -1
        self.hold_rest = False

    def step(self, counts, setpoint_ua, current_ua, est, temp_dc, dt_ms):
        """One READY tick: counts is this tick's VCELL reading, taken under
        setpoint_ua (the last tick's setpoint)."""
        c = self._c
        if self.hold_rest:
            self._hold_ms += dt_ms
            if self._hold_ms > c.crack_settle_ms + c.crack_window_ms + 60000:
                self.hold_rest = False      # never longer than one window and a minute
        x16 = counts << _EMA_SHIFT
        if setpoint_ua != self._sp or self._avg < 0:
            self._sp = setpoint_ua
            self._avg = x16
            self._seg_ms = 0
            self._anchored = False
            self._rest_ms = 0
            self._v1 = -1
        else:
            self._avg += (x16 - self._avg) >> _EMA_SHIFT
            self._seg_ms += dt_ms
        if setpoint_ua == 0:
            if -c.rest_ua < current_ua < c.rest_ua:
                self._at_rest(dt_ms)
            return
        if not self._anchored and self._seg_ms >= c.crack_anchor_ms:
            self._anchored = True
            self._anchor(1 if setpoint_ua < 0 else 0, est, temp_dc)

    def _anchor(self, slot, est, temp_dc):
        c = self._c
        cath_eu = est.cath_eu
        prev = self._a_avg[slot]
        d_cath = cath_eu - self._a_cath[slot]
        if (prev >= 0 and self._a_sp[slot] == self._sp and
                -self._suspect_tol <= d_cath <= self._suspect_tol and
                -3 <= temp_dc - self._a_temp[slot] <= 3):
            low = prev - self._avg
            if -1000000 < low < 1000000:
                low_uv = low * 1000 // self._per_mv
                # µV per x per mille where the catholyte is; x falls as cath rises
                slope = ocv_slope_uv(c.ocv_table, est.x_pm())
                s_pm = est.s_eu // 1000                      # eu per x per mille
                if slope >= c.ocv_min_slope_uv and s_pm > 0:
                    # the voltage the count moved it by: + cath (Li taken out) raises it
                    low_uv += d_cath * slope // s_pm if -1000000 < d_cath < 1000000 else 0
                    self.suspect_uv = low_uv
                    if low_uv * 1000 >= c.crack_suspect_uv * 1000 and low >= self._suspect:
                        self.request_rest()
                    elif (-c.crack_suspect_uv < low_uv < c.crack_suspect_uv and
                          -self._cath_tol <= d_cath <= self._cath_tol):
                        # lower by low_uv: the catholyte holds that much more than counted
                        # The other slot keeps its uncorrected count: its next
                        # comparison then takes only the drift since this one
                        # (each slot spans a whole cycle, so both together
                        # correct a cycle's drift once, not twice).
                        est.correct(low_uv * s_pm // slope)
                        cath_eu = est.cath_eu
        self._a_sp[slot] = self._sp
        self._a_cath[slot] = cath_eu
        self._a_avg[slot] = self._avg
        self._a_temp[slot] = temp_dc

    def _at_rest(self, dt_ms):
        c = self._c
        self._rest_ms += dt_ms
        if self._rest_ms < c.crack_settle_ms:
            return
        if self._v1 < 0:
            self._v1 = self._avg
            self._rest_ms = c.crack_settle_ms
            return
        if self._rest_ms - c.crack_settle_ms >= c.crack_window_ms:
            if self._v1 - self._avg >= self._drift:
                self.found = True
            # the window is done: the scheduled rest ends; a longer rest is watched on
            self.hold_rest = False
            self._v1 = self._avg
            self._rest_ms = c.crack_settle_ms


def ocv_slope_uv(table, x_pm):
    """The table's falling slope at x_pm: µV per x per mille (>= 0)."""
    n = len(table)
    i = 1
    while i < n - 1 and table[i][0] < x_pm:
        i += 1
    dx = table[i][0] - table[i - 1][0]
    dv = table[i - 1][1] - table[i][1]
    return dv * 1000 // dx if dx > 0 and dv > 0 else 0


def _uv_to_avg(uv, bits, vref_mv):
    """µV as VCELL counts x 16 (rounded up: a threshold is never below its µV)."""
    num = uv * (1 << bits) * 16 // 1000
    return (num + vref_mv - 1) // vref_mv
