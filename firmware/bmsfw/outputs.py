# Limits and outputs: each tick CVL/DVL/CCL/DCL are recomputed (bmsfw.limits,
# docs/firmware.md "Limits"), the request is clamped to them into the setpoint,
# the current source and the relay are driven, and SOC and formation progress
# (per mille) are published. Also holds READY's duty request and the user's
# tightened limits (set_limits), which it persists.
#
# The current is set to 0 before the relay opens, and the HAL is called only
# when a value changes.
from . import limits
from .compat import ticks_add, ticks_diff
from .formation import V_DISCHARGE
from .ledger import UAS_PER_UAH, per_mille
from .states import FORMING, NONE, READY, VERIFY


class Outputs:
    # its fields of the persistent record (bmsfw.record.Store copies them)
    RECORD_FIELDS = ("user_cvl_mv", "user_dvl_mv", "user_ccl_ua", "user_dcl_ua")

    def __init__(self, hal, config):
        c = config
        self._hal = hal
        self._c = c
        # charges in the cell's charge units (bmsfw.ledger), as the ledger counts
        self.target_q = c.units(c.target_uas())
        self.reserve_q = c.units(c.reserve_uas())
        step = self.target_q // 1000
        ceiling = self.target_q + step * c.charge_margin_pm
        supply = c.units(c.supply_uas())
        self._ceiling_q = ceiling if ceiling < supply else supply
        self._charge_taper_q = step * (c.charge_taper_pm + c.charge_margin_pm)
        self._reserve_taper_q = step * c.reserve_taper_pm
        # the same in the estimator's units, for its figures (bmsfw.estimator)
        per = UAS_PER_UAH // c.est_unit_uas()
        target = c.target_inventory_uah * per
        step = target // 1000
        ceiling = target + step * c.charge_margin_pm
        supply = c.lithium_supply_uah * per
        self._ceiling_eu = ceiling if ceiling < supply else supply
        self._charge_taper_eu = step * (c.charge_taper_pm + c.charge_margin_pm)
        self._reserve_eu = c.lithium_reserve_uah * per
        self._reserve_taper_eu = step * c.reserve_taper_pm
        self._charge_floor_dc = limits.charge_floor_dc(c.charge_min_temp_dc, c.plating_derating,
                                                      c.temp_accuracy_dc)
        # published limits
        self.cvl_mv = c.charge_cutoff_mv
        self.dvl_mv = c.discharge_cutoff_mv
        self.ccl_ua = 0
        self.dcl_ua = 0
        # the user's tightened limits (-1: none), persisted
        self.user_cvl_mv = -1
        self.user_dvl_mv = -1
        self.user_ccl_ua = -1
        self.user_dcl_ua = -1
        # READY's duty request and when it ends by itself
        self.request_ua = 0
        self._deadline_ms = 0
        self._deadline_set = False
        # what the HAL was last given
        self.setpoint_ua = 0
        self.prev_setpoint_ua = 0       # the setpoint of the last update (0 after off())
        self.relay_closed = False
        self.step_ua = 0                # |setpoint step| of the last update, relay closed on both sides
        self.soc_pm = 0
        self.formation_pm = 0
        # The cell voltage the CV and DV ramps see: the reading through a first-order
        # filter (a quarter of the way each tick). The ramps are a control loop on the
        # terminal voltage; where the cell's IR drop at full current exceeds twice a
        # taper (a product cell: 240 mV against 50 mV) the unfiltered loop flips the
        # current on and off each tick. Filtered it settles for loop gains up to 7.
        self._ramp_mv = -1

    def plate_base_ua(self, m, cold):
        """Temperature-derated plating limit x area (µA); 0 when not allowed
        (no valid temperature, or `cold`: the UNDER_TEMPERATURE inhibit)."""
        c = self._c
        if m.ntc_fault or cold:
            return 0
        return c.density_to_ua(limits.plating_ua_cm2(m.temp_dc, c.plating_derating,
                                                     self._charge_floor_dc, c.charge_max_temp_dc))

    def set_request(self, current_ua, duration_s=None, now_ms=0):
        """READY's duty request (+ charge, - discharge, 0 rest; the limits
        still apply); with duration_s it returns to 0 that long after now_ms."""
        self.request_ua = current_ua
        self._deadline_set = duration_s is not None
        if duration_s is not None:
            self._deadline_ms = ticks_add(now_ms, duration_s * 1000)

    def update(self, now_ms, state, substate, m, ledger, formation, cold, dis_hit_dvl, est=None, hold=False):
        """One tick's limits and outputs. m: this tick's Measurements; cold:
        the UNDER_TEMPERATURE inhibit; dis_hit_dvl: a discharge ended on DVL;
        est: the Estimator (READY's limits: DCL keeps its pessimistic side,
        the low inventory, above the reserve; CCL its estimate below the ceiling);
        hold: the crack watch's rest (READY: CCL and DCL 0).
        FORMING takes formation's request, READY the duty request."""
        c = self._c
        if state == READY and self._deadline_set and ticks_diff(now_ms, self._deadline_ms) >= 0:
            self.set_request(0)
        inv = ledger.inventory[0]
        self.cvl_mv = limits.cvl_mv(c.charge_cutoff_mv, self.user_cvl_mv)
        self.dvl_mv = limits.dvl_mv(c.discharge_cutoff_mv, self.user_dvl_mv)
        operating = state == FORMING or state == READY
        ccl = 0
        dcl = 0
        if not operating or self._ramp_mv < 0:
            self._ramp_mv = m.cell_mv
        else:
            self._ramp_mv += (m.cell_mv - self._ramp_mv + 2) // 4
        v = self._ramp_mv
        use_est = est is not None and state == READY
        if use_est and hold:
            operating_limits = False
        else:
            operating_limits = operating
        if operating_limits and use_est:
            # CCL on the estimate itself: the bound, mostly the loss's
            # uncertainty, would otherwise lower the top of charge by all of it
            # (65 µAh after 1,000 D111 cycles); the 1 % margin covers the count.
            ccl = limits.ccl_ua(self.plate_base_ua(m, cold), est.li_eu, self._ceiling_eu,
                                self._charge_taper_eu, v, self.cvl_mv, c.cv_taper_mv,
                                self.user_ccl_ua)
            base = 0
            if not m.ntc_fault and not dis_hit_dvl:
                base = c.density_to_ua(limits.interp_table(m.temp_dc, c.discharge_derating))
            dcl = limits.dcl_ua(base, est.low_eu(), self._reserve_eu, self._reserve_taper_eu,
                                v, self.dvl_mv, c.dv_taper_mv, self.user_dcl_ua)
        elif operating_limits:
            ccl = limits.ccl_ua(self.plate_base_ua(m, cold), inv, self._ceiling_q,
                                self._charge_taper_q, v, self.cvl_mv, c.cv_taper_mv,
                                self.user_ccl_ua)
            base = 0
            if state == READY and not m.ntc_fault and not dis_hit_dvl:
                base = c.density_to_ua(limits.interp_table(m.temp_dc, c.discharge_derating))
            elif state == FORMING and substate == VERIFY and formation.verify_step == V_DISCHARGE:
                # The verify cycle's strip: the only discharge before formation is done.
                base = formation.formation_ua
            dcl = limits.dcl_ua(base, inv, self.reserve_q, self._reserve_taper_q,
                                v, self.dvl_mv, c.dv_taper_mv, self.user_dcl_ua)
        # The current source's usable range bounds both (a product-scale
        # cell's table may ask for more than the bench source can give).
        smax = c.current_max_ua
        if ccl > smax:
            ccl = smax
        if dcl > smax:
            dcl = smax
        self.ccl_ua = ccl
        self.dcl_ua = dcl
        if state == FORMING:
            request = formation.request_ua
        elif state == READY:
            request = self.request_ua
        else:
            request = 0
        setpoint = limits.clamp_request(request, ccl, dcl) if operating else 0
        # Remember a current step (relay closed on both sides): the next
        # tick's VCELL must differ (Measurements' stuck-ADC check).
        step = setpoint - self.prev_setpoint_ua
        self.step_ua = (step if step > 0 else -step) if operating and self.relay_closed else 0
        self.prev_setpoint_ua = setpoint
        if setpoint != self.setpoint_ua:
            self.setpoint_ua = setpoint
            self._hal.set_current_ua(setpoint)
        if operating != self.relay_closed:
            self.relay_closed = operating
            self._hal.set_relay(operating)
        if use_est:
            self.soc_pm = est.soc_pm()
            self.formation_pm = 1000
        elif operating:
            self.soc_pm = per_mille(inv, self.target_q)
            self.formation_pm = 1000 if state == READY else formation.progress_pm(substate, ledger.plated[0])
        else:
            formed = formation.formed
            if not formed:
                self.soc_pm = 0
            elif est is not None:
                self.soc_pm = est.soc_pm()
            else:
                self.soc_pm = per_mille(inv, self.target_q)
            self.formation_pm = 1000 if formed else formation.progress_pm(NONE, ledger.plated[0])

    def off(self):
        """Current 0, then the relay open, at once."""
        self.setpoint_ua = 0
        self.prev_setpoint_ua = 0
        self._hal.set_current_ua(0)
        self.relay_closed = False
        self._hal.set_relay(False)

    # --- set_limits (bmsfw.commands checked the values) -----------------------------
    def set_user_limits(self, args):
        if "cvl_mv" in args:
            self.user_cvl_mv = args["cvl_mv"]
        if "dvl_mv" in args:
            self.user_dvl_mv = args["dvl_mv"]
        if "ccl_ua" in args:
            self.user_ccl_ua = args["ccl_ua"]
        if "dcl_ua" in args:
            self.user_dcl_ua = args["dcl_ua"]

    def clear_user_limits(self):
        self.user_cvl_mv = -1
        self.user_dvl_mv = -1
        self.user_ccl_ua = -1
        self.user_dcl_ua = -1
