# Protections: thresholds, debounce (time beyond threshold, measured with
# ticks_diff: no assumed tick length) and what a trip does.
#
# PROTECTIONS is the table (docs/firmware.md reproduces it): fault name,
# debounce config key, action. LATCH: the controller goes to FAULT in the same
# tick (current 0, relay open) and only an accepted reset_fault leaves.
# INHIBIT: charging is refused (CCL 0) while the condition lasts, and clears by
# itself with hysteresis: UNDER_TEMPERATURE, like the charge-temperature
# windows of foxBMS/Libre Solar; a cold cell is not damaged, only plating on
# cold glass is. The lower limits already hold CCL at 0 below 0 °C without
# any debounce; the inhibit is what gets reported.
#
# check() and cause_present() read only `m`, a Measurements (below) the
# controller fills in place each tick (no tuples passed).
# Debounces and details are indexed like FAULTS (bit i = FAULTS[i]); the
# _<FAULT> names below are those indices.
from .compat import const, ticks_diff
from .ledger import UAS_PER_UAH
from .limits import DVL_REACHED_MV, charge_floor_dc
from .states import (CRACK_SUSPECTED, FAULTS, FORMING, LINK_LOST, NO_CELL, NO_PLATING, OVER_TEMPERATURE,
                     OVERCURRENT, OVERVOLTAGE, READY, SENSOR, SHORT, UNDER_TEMPERATURE,
                     UNDERVOLTAGE)

LATCH = "LATCH"
INHIBIT = "INHIBIT"

PROTECTIONS = (
    # fault, debounce config key (None: raised by an event), action
    (NO_CELL, "no_cell_debounce_ms", LATCH),
    (SHORT, "short_debounce_ms", LATCH),
    (SENSOR, "sensor_debounce_ms", LATCH),
    (OVERVOLTAGE, "ov_debounce_ms", LATCH),
    (CRACK_SUSPECTED, "crack_debounce_ms", LATCH),
    (UNDERVOLTAGE, "uv_debounce_ms", LATCH),
    (OVERCURRENT, "oc_debounce_ms", LATCH),
    (OVER_TEMPERATURE, "ot_debounce_ms", LATCH),
    (UNDER_TEMPERATURE, "ut_debounce_ms", INHIBIT),
    (NO_PLATING, None, LATCH),
    (LINK_LOST, None, LATCH),
)

_NO_CELL = FAULTS.index(NO_CELL)
_SHORT = FAULTS.index(SHORT)
_SENSOR = FAULTS.index(SENSOR)
_OVERVOLTAGE = FAULTS.index(OVERVOLTAGE)
_CRACK = FAULTS.index(CRACK_SUSPECTED)
_UNDERVOLTAGE = FAULTS.index(UNDERVOLTAGE)
_OVERCURRENT = FAULTS.index(OVERCURRENT)
_OVER_TEMP = FAULTS.index(OVER_TEMPERATURE)
_UNDER_TEMP = FAULTS.index(UNDER_TEMPERATURE)
UT_BIT = 1 << _UNDER_TEMP           # the one inhibit: charging refused while it lasts
_UT_CLEAR = len(FAULTS)             # the debounce timer of the inhibit's clearing
_ALL_FAULTS = (1 << len(FAULTS)) - 1

# Voltage faults share one cause; in a tick only the first of them that
# check() evaluates (the table's order: the most specific) latches.
_VOLTAGE_GROUP = (1 << _NO_CELL) | (1 << _SHORT) | (1 << _OVERVOLTAGE) | (1 << _CRACK) | (1 << _UNDERVOLTAGE)



# What the protections judge each tick: the converted readings of the front
# end, and the context they are judged in (the state, the limits and setpoint
# of the last tick, the counted inventory). One object, made with the
# controller and filled in place every tick (no allocation): check() and
# cause_present() read only this.
class Measurements:
    def __init__(self, reserve_q=0, reserve_eu=0):
        # readings (read())
        self.cell_mv = 0
        self.current_ua = 0
        self.temp_dc = 0                # the last valid reading: kept while ntc_fault
        self.ntc_fault = False          # thermistor open or shorted
        self.ishunt_railed = False      # shunt amplifier at a rail
        self.vcell_stuck = False        # VCELL did not answer two current steps
        # context (judged_in(), before the protections run)
        self.state = ""
        self.lithium_present = False    # READY, or FORMING with the plateau seen
        self.charging_li = False        # lithium present and charging
        self.prev_setpoint_ua = 0       # the setpoint that drove this tick's current
        self.ccl_ua = 0                 # the limits published last tick
        self.dcl_ua = 0
        self.dvl_mv = 0
        self.inventory_q = 0            # counted lithium (ledger), charge units
        self.reserve_q = reserve_q      # the lithium reserve (Config), charge units
        self.li_low_eu = 0             # the estimator's pessimistic lithium (bmsfw.estimator)
        self.reserve_eu = reserve_eu
        self._vcell_before_step = 0     # VCELL counts of the previous tick
        self._stuck_steps = 0           # consecutive current steps VCELL did not answer

    def judged_in(self, state, plateau_seen, inventory_q, out, li_low_eu=0):
        """The context of this tick's readings: the state, the counted
        inventory, the estimator's pessimistic lithium, and the last tick's
        setpoint and limits (out: Outputs)."""
        self.state = state
        self.inventory_q = inventory_q
        self.li_low_eu = li_low_eu
        self.lithium_present = state == READY or (state == FORMING and plateau_seen)
        self.charging_li = self.lithium_present and out.prev_setpoint_ua > 0
        self.prev_setpoint_ua = out.prev_setpoint_ua
        self.ccl_ua = out.ccl_ua
        self.dcl_ua = out.dcl_ua
        self.dvl_mv = out.dvl_mv

    def read(self, fe, relay_closed, step_ua, stuck_step_ua):
        """Read and convert the three channels through `fe` (a
        calibration.FrontEnd). relay_closed: whether the last tick closed the
        relay (open: the shunt reads its zero); step_ua: the size of the
        current step the last tick applied."""
        fe.read()
        if not relay_closed:
            # No current can flow: what the shunt reads is its zero.
            fe.learn_zero()
        if stuck_step_ua > 0 and step_ua >= stuck_step_ua:
            # A current step of stuck_step_ua moves the cell voltage by its IR
            # drop (>= 12 mV on D111); the very same counts after it, twice in
            # a row, mean a stuck VCELL channel.
            if fe.vcell_counts == self._vcell_before_step:
                self._stuck_steps += 1
            else:
                self._stuck_steps = 0
        self.vcell_stuck = self._stuck_steps >= 2
        self._vcell_before_step = fe.vcell_counts
        self.cell_mv = fe.cell_mv
        self.current_ua = fe.current_ua
        self.ntc_fault = fe.ntc_fault
        self.ishunt_railed = fe.ishunt_railed
        if not fe.ntc_fault:
            self.temp_dc = fe.temp_dc


class Debounce:
    """n timers: timer i is True once its condition has held for debounce_ms
    (0: at once). One object for all (two small lists, not n objects)."""

    def __init__(self, n=1):
        self._pending = 0               # bit i: timer i's condition is holding
        self._since_ms = [0] * n

    def update(self, i, condition, now_ms, debounce_ms):
        bit = 1 << i
        if not condition:
            self._pending &= ~bit
            return False
        if not self._pending & bit:
            self._pending |= bit
            self._since_ms[i] = now_ms
        return ticks_diff(now_ms, self._since_ms[i]) >= debounce_ms

    def reset(self, mask):
        """Restart the timers whose bits are set in mask."""
        self._pending &= ~mask


class Protections:
    def __init__(self, config):
        c = config
        self._c = c
        self._ov_mv = c.charge_cutoff_mv + c.ov_margin_mv
        # below this reading it is too cold to charge (limits.charge_floor_dc)
        self._cold_dc = charge_floor_dc(c.charge_min_temp_dc, c.plating_derating, c.temp_accuracy_dc)
        self._uv_mv = c.discharge_cutoff_mv - c.uv_margin_mv
        # crack_missing_pm of the target, in the estimator's units (bmsfw.estimator)
        self._eu_per_uah = UAS_PER_UAH // c.est_unit_uas()
        self._missing_eu = c.target_inventory_uah * self._eu_per_uah // 1000 * c.crack_missing_pm
        self._debounce_ms = [0] * len(FAULTS)
        for row in PROTECTIONS:
            if row[1]:
                self._debounce_ms[FAULTS.index(row[0])] = getattr(c, row[1])
        # one timer per fault, and _UT_CLEAR: UNDER_TEMPERATURE clearing (hysteresis)
        self._deb = Debounce(_UT_CLEAR + 1)
        self.mask = 0                  # latched faults (bit i = FAULTS[i])
        self.inhibit_mask = 0          # active inhibits (reported, not latched)
        self.tripped = 0               # bits latched or inhibited in the last check()
        self.cleared = 0               # inhibit bits cleared in the last check()
        self.detail = ""                   # scratch: the detail check() is composing
        self.details = [""] * len(FAULTS)  # why each fault last tripped (event detail)
        self.ref_mv = 0                # crack watch: reference plating voltage
        self._ref_setpoint_ua = 0
        self._drift_ms = 0
        self.dis_hit_dvl = False       # this discharge segment ended on DVL

    # --- the persistent record (bmsfw.record) --------------------------------------
    # Latched faults survive a reset; inhibits are re-measured after it.
    def save_to(self, rec):
        rec.fault_mask = self.mask

    def restore_from(self, rec):
        self.mask = rec.fault_mask

    # --- raising from outside ----------------------------------------------------
    def trip(self, name, detail=""):
        """Latch a fault raised by an event (NO_PLATING, LINK_LOST, a
        formation or CE finding). Returns True if it was not latched yet."""
        i = FAULTS.index(name)
        bit = 1 << i
        if self.mask & bit:
            return False
        self.mask |= bit
        self.tripped |= bit
        self.details[i] = detail
        return True

    def blocks_formation(self, m):
        """Formation may not start: a latched fault, the cold inhibit, or a
        temperature below the charging minimum that has not yet been held
        long enough to raise the inhibit (or no valid temperature at all)."""
        return bool(self.mask or self.inhibit_mask & UT_BIT or m.ntc_fault or m.temp_dc < self._cold_dc)

    def reset(self, m):
        """reset_fault: clear every latched fault, unless one's cause is still
        measured in `m` (then nothing is cleared: -1). Returns the bits cleared."""
        mask = self.mask
        for i in range(len(FAULTS)):
            if mask & (1 << i) and self.cause_present(FAULTS[i], m):
                return -1
        self.clear(mask)
        return mask

    def clear(self, bit):
        self.mask &= ~bit
        self._deb.reset(_ALL_FAULTS)

    # --- the per-tick check --------------------------------------------------------
    def check(self, m, now_ms, dt_ms):
        """Evaluate every protection; sets self.tripped / self.cleared."""
        self.tripped = 0
        self.cleared = 0
        c = self._c
        cell_mv = m.cell_mv
        current_ua = m.current_ua
        li = m.lithium_present
        rest = -c.rest_ua < current_ua < c.rest_ua
        self._track_reference(m, dt_ms)
        # NO_CELL: open circuit pulls VCELL to full scale
        self._cond(_NO_CELL, cell_mv > c.no_cell_mv, now_ms, "VCELL at full scale: open circuit")
        # SHORT: a cell holding lithium collapsing to ~0 V
        self._cond(_SHORT, li and cell_mv < c.short_mv, now_ms, "cell voltage collapsed")
        # SENSOR: thermistor open/short, shunt amplifier railed with no
        #   current commanded, the measured current not following the setpoint,
        #   or VCELL not moving across two current steps (stuck ADC)
        sp = m.prev_setpoint_ua
        follow = False
        if sp >= c.sensor_follow_min_ua:
            follow = current_ua < sp // 4
        elif sp <= -c.sensor_follow_min_ua:
            follow = current_ua > sp // 4
        if m.ntc_fault:
            # A divider on a rail is unambiguous: latched at once, no debounce.
            self._latch(_SENSOR, "thermistor open or shorted")
        elif m.vcell_stuck:
            self._cond(_SENSOR, True, now_ms, "VCELL stuck")
        elif m.ishunt_railed and sp == 0:
            self._cond(_SENSOR, True, now_ms, "shunt amplifier railed with no current")
        else:
            self._cond(_SENSOR, follow, now_ms, "current not following the setpoint")
        # OVERVOLTAGE (not the open-circuit reading)
        self._cond(_OVERVOLTAGE, self._ov_mv < cell_mv <= c.no_cell_mv, now_ms, "above charge cutoff + margin")
        # CRACK_SUSPECTED: (a) the plating voltage drops suddenly;
        #   (b) the OCV of a cell with lithium to spare collapses at rest;
        #   (c) discharge reaches DVL with far more lithium estimated than came back.
        # "Lithium to spare" is the estimator's pessimistic side above the
        # reserve: an empty cell the ledger misreads (lost lithium it never
        # counted) is not a crack (the knee corrects the estimate, bmsfw.estimator).
        crack = False
        if m.state == READY and current_ua <= -c.rest_ua and cell_mv <= m.dvl_mv + DVL_REACHED_MV:
            # The discharge ran into DVL: the cell is empty whatever the ledger
            # says; DCL stays 0 until it has been charged again.
            self.dis_hit_dvl = True
        if li:
            if m.charging_li and self.ref_mv - cell_mv > c.crack_drop_mv:
                crack = True
                self.detail = "plating voltage fell %d mV" % (self.ref_mv - cell_mv)
            elif m.state == READY and m.li_low_eu > m.reserve_eu:
                if rest and cell_mv < c.discharge_cutoff_mv:
                    crack = True
                    self.detail = "OCV collapsed to %d mV" % cell_mv
                elif self.dis_hit_dvl and m.li_low_eu - m.reserve_eu > self._missing_eu:
                    crack = True
                    self.detail = "DVL reached with %d µAh estimated" % (m.li_low_eu // self._eu_per_uah)
        self._cond(_CRACK, crack, now_ms, None)
        # UNDERVOLTAGE: a formed cell pulled below the cutoff under discharge
        self._cond(_UNDERVOLTAGE, li and current_ua <= -c.rest_ua and cell_mv < self._uv_mv, now_ms,
                   "below discharge cutoff - margin")
        # OVERCURRENT: beyond max(limit, setpoint) + margin + 10 %, or off the
        #   shunt's range while current is commanded
        hi = m.ccl_ua if m.ccl_ua > sp else sp
        lo = m.dcl_ua if m.dcl_ua > -sp else -sp
        oc = current_ua > hi + c.oc_margin_ua + hi // 10 or -current_ua > lo + c.oc_margin_ua + lo // 10
        self._cond(_OVERCURRENT, oc or (m.ishunt_railed and sp != 0), now_ms, "beyond limit + margin")
        # OVER_TEMPERATURE
        self._cond(_OVER_TEMP, not m.ntc_fault and m.temp_dc > c.over_temp_dc, now_ms, "above over_temp_dc")
        # UNDER_TEMPERATURE (inhibit with hysteresis)
        cold = not m.ntc_fault and m.temp_dc < self._cold_dc
        debounce_ms = self._debounce_ms[_UNDER_TEMP]
        if self.inhibit_mask & UT_BIT:
            warm = not m.ntc_fault and m.temp_dc >= c.charge_min_temp_dc + c.ut_hysteresis_dc
            if self._deb.update(_UT_CLEAR, warm, now_ms, debounce_ms):
                self.inhibit_mask &= ~UT_BIT
                self.cleared |= UT_BIT
                self._deb.reset(UT_BIT)
        elif self._deb.update(_UNDER_TEMP, cold, now_ms, debounce_ms):
            self.inhibit_mask |= UT_BIT
            self.tripped |= UT_BIT
            self._deb.reset(1 << _UT_CLEAR)
        if current_ua > c.cycle_deadband_ua:
            self.dis_hit_dvl = False

    def _cond(self, i, condition, now_ms, detail):
        """Debounce the protection of FAULTS[i]; latch it when due. detail: a
        constant string for the event (None: keep the one check() just wrote)."""
        if self._deb.update(i, condition, now_ms, self._debounce_ms[i]):
            self._latch(i, detail)

    def _latch(self, i, detail):
        bit = 1 << i
        if self.mask & bit:
            return
        if self.tripped & _VOLTAGE_GROUP and bit & _VOLTAGE_GROUP:
            return
        self.mask |= bit
        self.tripped |= bit
        self.details[i] = self.detail if detail is None else detail

    def _track_reference(self, m, dt_ms):
        """The crack watch's reference follows the plating voltage up at once
        and down by 1 mV/s; a setpoint change of more than 10 % re-anchors it
        (IR step, not a crack)."""
        if not m.charging_li:
            self.ref_mv = m.cell_mv
            self._ref_setpoint_ua = m.prev_setpoint_ua
            return
        sp = m.prev_setpoint_ua
        ref_sp = self._ref_setpoint_ua
        diff = sp - ref_sp if sp > ref_sp else ref_sp - sp
        if diff * 10 > ref_sp:
            self.ref_mv = m.cell_mv
            self._ref_setpoint_ua = sp
            return
        self._drift_ms += dt_ms
        n = self._drift_ms // 1000
        self._drift_ms -= n * 1000
        ref = self.ref_mv - n
        self.ref_mv = m.cell_mv if m.cell_mv > ref else ref

    def cause_present(self, name, m):
        """Is the measured cause of a latched fault still there? (reset_fault
        is refused while it is.) Faults with no measurable cause once the
        current is 0 (CRACK_SUSPECTED, NO_PLATING, OVERCURRENT, LINK_LOST)
        are the operator's explicit decision."""
        c = self._c
        if name == NO_CELL:
            return m.cell_mv > c.no_cell_mv
        if name == SHORT:
            return m.cell_mv < c.short_ocv_mv
        if name == SENSOR:
            return m.ntc_fault or m.ishunt_railed or m.vcell_stuck
        if name == OVERVOLTAGE:
            return self._ov_mv < m.cell_mv <= c.no_cell_mv
        if name == UNDERVOLTAGE:
            return m.cell_mv < self._uv_mv
        if name == OVER_TEMPERATURE:
            return m.ntc_fault or m.temp_dc > c.over_temp_dc - c.ut_hysteresis_dc
        return False
