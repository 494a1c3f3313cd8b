# Formation: the first charge of a cell shipped with no free lithium.
#
# NUCLEATE  a low current density (D111: 10 µA/cm² for 10 min) until the
#           nucleation charge is counted AND the voltage shows lithium on the
#           copper (the cell jumps from the precursor's ~0.15 V, copper vs
#           polysulfide, to the Li-S plateau ~2.3 V; with a wetting layer an
#           alloy plateau ~1.9-2.0 V comes first and also counts as "lithium
#           is going in evenly"). Plating fast onto bare copper concentrates
#           current on the first nuclei (patchy plating without a wetting
#           layer), so the high rate waits for this signature.
# PLATE     at the highest current density the glass tolerates at the present
#           temperature (the plating table x area; the controller also clamps
#           to CCL), coulomb-counted to the target inventory.
# VERIFY    rest, OCV on the Li-S plateau, then one small cycle (strip 5 % of
#           target and plate it back at the formation current).
#
# NO_PLATING: a bounded charge went in and the voltage never reached the
# plateau (the seed's control cell without LiPON: "no lithium at all").
# Crack and short signatures during plating are watched by protections.py.
#
# The object holds only the formation's own progress (and persists it: the
# record's flags); the ledger holds the charge, the controller the state. step() sets .request_ua, .event, .fault
# (attributes, so a tick allocates no tuple).
from .compat import ticks_diff
from .ledger import UAS_PER_UAH, per_mille, ratio_ppm
from .limits import DVL_REACHED_MV
from .record import FLAG_ALLOY_SEEN, FLAG_FORMED, FLAG_PLATEAU_SEEN
from .states import CRACK_SUSPECTED, FORMATION_DONE, NO_PLATING, NUCLEATE, NUCLEATED, PLATE, TARGET_REACHED, VERIFY

# VERIFY steps
V_REST = 0
V_DISCHARGE = 1
V_RECHARGE = 2


class Formation:
    def __init__(self, config):
        c = config
        self.nucleation_ua = c.density_to_ua(c.nucleation_ua_cm2)
        self.formation_ua = c.density_to_ua(c.formation_ua_cm2)
        # Charge thresholds in the cell's charge units (bmsfw.ledger), as the
        # ledger's counts they are compared with.
        self.nucleation_q = c.units(c.nucleation_uas)
        self.target_q = c.units(c.target_uas())
        bound = c.no_plating_uas
        if c.has_wetting_layer:
            # The alloy takes lithium before metal plates (Al: ~27 µAh/cm² per 1000 Å).
            bound += c.wetting_capacity_uah * UAS_PER_UAH
        self.no_plating_q = c.units(bound)
        self.verify_q = self.target_q // 1000 * c.verify_cycle_pm
        self._unit_uas = c.charge_unit_uas()
        self._c = c
        self.plateau_seen = False
        self.alloy_seen = False
        self.formed = False             # formation verified (or a formed cell found at boot)
        self.verify_step = V_REST
        self._step_since_ms = 0
        self._step_start_q = 0
        self.verify_out_q = 0
        self.ce_ppm = 0
        self.request_ua = 0
        self.event = None
        self.fault = None
        self.detail = ""

    # --- the persistent record (bmsfw.record): the flags --------------------------
    def save_to(self, rec):
        flags = 0
        if self.plateau_seen:
            flags |= FLAG_PLATEAU_SEEN
        if self.alloy_seen:
            flags |= FLAG_ALLOY_SEEN
        if self.formed:
            flags |= FLAG_FORMED
        rec.flags = flags

    def restore_from(self, rec):
        self.plateau_seen = bool(rec.flags & FLAG_PLATEAU_SEEN)
        self.alloy_seen = bool(rec.flags & FLAG_ALLOY_SEEN)
        self.formed = bool(rec.flags & FLAG_FORMED)

    def finish(self, ledger):
        """Formation verified: the ledger stops counting plated charge and
        starts a fresh cycle (formation's charge was not one); the verify
        cycle's CE is the first known."""
        ledger.forming = False
        ledger.restart_cycle()
        ledger.ce_ppm = self.ce_ppm
        self.formed = True

    def start_verify(self, now_ms):
        self.verify_step = V_REST
        self._step_since_ms = now_ms
        self.verify_out_q = 0

    def step(self, substate, now_ms, cell_mv, plated_q, inventory_q, plate_limit_ua, dvl, paused):
        """One tick of formation. plated_q, inventory_q: the ledger's counts
        (charge units). paused: charging inhibited (too cold): hold the
        current at 0 and the clocks still (a rest step restarts)."""
        self.event = None
        self.fault = None
        c = self._c
        if cell_mv >= c.plateau_mv:
            self.plateau_seen = True
        elif c.has_wetting_layer and cell_mv >= c.alloy_min_mv:
            self.alloy_seen = True
        if substate == NUCLEATE or substate == PLATE:
            if plated_q >= self.no_plating_q and not self.plateau_seen:
                self.fault = NO_PLATING
                self.detail = "no Li-S plateau after %d uAs" % (plated_q * self._unit_uas)
                self.request_ua = 0
                return
        if paused:
            self.request_ua = 0
            if substate == VERIFY and self.verify_step == V_REST:
                self._step_since_ms = now_ms
            return
        if substate == NUCLEATE:
            self.request_ua = self.nucleation_ua
            if plated_q >= self.nucleation_q and (self.plateau_seen or self.alloy_seen):
                self.event = NUCLEATED
        elif substate == PLATE:
            self.request_ua = plate_limit_ua
            if plated_q >= self.target_q:
                self.request_ua = 0
                self.event = TARGET_REACHED
        elif substate == VERIFY:
            self._verify(now_ms, cell_mv, inventory_q, plate_limit_ua, dvl)
        else:
            self.request_ua = 0

    def _verify(self, now_ms, cell_mv, inventory_q, plate_limit_ua, dvl):
        c = self._c
        current_ua = self.formation_ua if self.formation_ua < plate_limit_ua else plate_limit_ua
        if self.verify_step == V_REST:
            self.request_ua = 0
            if ticks_diff(now_ms, self._step_since_ms) < c.verify_rest_ms:
                return
            if cell_mv < c.verify_ocv_min_mv or cell_mv > c.verify_ocv_max_mv:
                self.fault = CRACK_SUSPECTED
                self.detail = "verify OCV %d mV off the Li-S plateau" % cell_mv
                return
            self.verify_step = V_DISCHARGE
            self._step_start_q = inventory_q
            self.request_ua = -self.formation_ua
        elif self.verify_step == V_DISCHARGE:
            out_q = self._step_start_q - inventory_q
            if out_q >= self.verify_q or cell_mv <= dvl + DVL_REACHED_MV:
                # Voltage-ended early means the lithium is not all there.
                self.verify_out_q = out_q if out_q > 0 else 0
                self.verify_step = V_RECHARGE
                self.request_ua = current_ua
            else:
                self.request_ua = -self.formation_ua
        else:
            # Plate back to the target, not just what came out: after a power
            # cut the verify restarts, and an earlier partial strip is made good.
            if inventory_q >= self.target_q:
                self.request_ua = 0
                ce = ratio_ppm(self.verify_out_q, self.verify_q)
                self.ce_ppm = 1000000 if ce > 1000000 else ce
                if self.ce_ppm < c.verify_min_ce_ppm:
                    self.fault = CRACK_SUSPECTED
                    self.detail = "verify cycle gave back %d ppm" % self.ce_ppm
                else:
                    self.event = FORMATION_DONE
            else:
                self.request_ua = current_ua

    def progress_pm(self, substate, plated_q):
        """Formation progress in per mille: the plated share of target, 1000
        once plating is complete (VERIFY)."""
        if substate == VERIFY:
            return 1000
        return per_mille(plated_q, self.target_q)
