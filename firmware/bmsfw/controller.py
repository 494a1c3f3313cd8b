# The BMS controller: one object, one tick at a time.
#
#   c = Controller(hal, Config(...), device_id="d111-0001")
#   every tick_ms:  c.tick(); frame = c.telemetry(); events = c.pop_events()
#   from outside:   c.command(name, args) -> (ok, code); c.request_current_ua(ua);
#                   c.report_link_lost()
#
# A tick: read and convert the ADC channels (Measurements), count charge
# (Ledger), run the protections, step the state machine (boot detection,
# formation), recompute the limits and drive the current and the relay
# (Outputs), feed the watchdog, save the record when needed. A latched fault
# sets current 0 and opens the relay in the same tick. This module joins the
# parts: the tick, the transitions and their actions, commands, the record.
# Its size (~440 lines) is that one job: the work itself lives in the parts
# (ledger, estimator, protections, outputs, formation, boot_detect, commands);
# what stays here is their order within a tick and the transition actions.
# Time comes only from hal.ticks_ms(), compared with ticks_diff: the tick
# length is measured, never assumed. See docs/firmware.md.
from .boot_detect import detect
from .calibration import FrontEnd
from .commands import check, request_error
from .compat import ticks_diff
from .config import Config
from .crack_watch import CrackWatch
from .errors import FieldError
from .estimator import Estimator
from .formation import Formation
from .ledger import UAS_PER_UAH, Ledger
from .outputs import Outputs
from .protections import UT_BIT, Measurements, Protections
from .record import Store
from .states import (BOOT, CHARGE, CHARGING, CRACK_SUSPECTED, DISCHARGE, DISCHARGING,
                     EV_COMMAND, EV_CYCLE, EV_FAULT, EV_FAULT_CLEARED, EV_FORMATION_DONE, EV_STATE,
                     FAULT_LATCHED, FAULTS, FORMING, LINK_LOST, NONE, NUCLEATE, PLATE, READY,
                     RESET_FAULT, REST, RESTING, RESUME, RESUME_SAFE, SAFE, SHIPPED, START_FORMATION,
                     STATES, STOP, SUBSTATES, VERIFY, next_state)
from .telemetry import Events, Telemetry

_OPERATING = (SHIPPED, FORMING, READY)
_FORMING_SUBSTATES = (NUCLEATE, PLATE, VERIFY)


class ControllerError(FieldError):
    pass


class Controller:
    def __init__(self, hal, config=None, device_id="bms-0001"):
        if not isinstance(device_id, str) or not device_id:
            raise ControllerError("device_id", device_id, "must be a non-empty str")
        if config is None:
            config = Config()
        elif not isinstance(config, Config):
            raise ControllerError("config", type(config).__name__, "must be a bmsfw.config.Config")
        c = config
        self.hal = hal
        self.config = c
        self.device_id = device_id
        # the parts
        self.fe = FrontEnd(hal, c)
        self.meas = Measurements(c.units(c.reserve_uas()), c.lithium_reserve_uah * (UAS_PER_UAH // c.est_unit_uas()))
        self.ledger = Ledger(c.cycle_deadband_ua, c.cycle_min_uas, c.charge_unit_uas())
        self.est = Estimator(c)
        self.crack = CrackWatch(c, self.fe.bits, self.fe.vref_mv)
        self._at_knee = False           # this discharge's knee was judged
        self.formation = Formation(c)
        self.protections = Protections(c)
        self.outputs = Outputs(hal, c)
        self.events = Events(device_id)
        # the ledger converts its fields (charge pairs); it restores before the controller reads it
        self.store = Store(hal, (self.outputs,), (self.ledger, self, self.formation, self.protections, self.est))
        self.target_uas = c.target_uas()
        self.reserve_uas = c.reserve_uas()
        self._tel = Telemetry(device_id, self.target_uas)
        # state
        self.state = BOOT
        self.substate = NONE
        self._op_state = SHIPPED        # last operating state (resumed after FAULT/SAFE)
        self._op_substate = NONE
        self._boot_safe = False         # the record says an operator stopped it
        self._form_requested = False
        self.t_ms = hal.ticks_ms()
        # persistence
        self._writes_at_formation_start = 0
        self._dirty = False
        self._saved_inventory_q = 0     # the ledger's inventory (charge units) at the last save
        self._save_interval_q = c.units(c.save_interval_uas)
        self.store.load()
        self._boot_ms = self.t_ms
        self._last_ms = self.t_ms
        # Safe outputs from the first instant: no current, relay open.
        hal.set_current_ua(0)
        hal.set_relay(False)

    # What the runner and the tests read of the parts.
    ccl_ua = property(lambda self: self.outputs.ccl_ua)
    dcl_ua = property(lambda self: self.outputs.dcl_ua)
    cvl_mv = property(lambda self: self.outputs.cvl_mv)
    event_seq = property(lambda self: self.events.seq)               # the last event's number
    writes = property(lambda self: self.store.writes)                # record writes

    # ------------------------------------------------------------------ record
    # The controller's own fields of the record: the states and the event count.
    def save_to(self, rec):
        rec.state = STATES.index(self.state)
        rec.substate = SUBSTATES.index(self.substate)
        rec.resume_state = STATES.index(self._op_state)
        rec.resume_substate = SUBSTATES.index(self._op_substate)
        rec.event_seq = self.events.seq

    def restore_from(self, rec):
        op = STATES[rec.resume_state]
        self._op_state = op if op in _OPERATING else SHIPPED
        self._op_substate = SUBSTATES[rec.resume_substate]
        self._boot_safe = STATES[rec.state] == SAFE
        self.events.seq = rec.event_seq
        self._saved_inventory_q = self.ledger.inventory[0]

    def _save(self):
        self.store.save()
        self._saved_inventory_q = self.ledger.inventory[0]
        self._dirty = False

    # ------------------------------------------------------------------ the tick
    def tick(self):
        hal = self.hal
        now = hal.ticks_ms()
        dt_ms = ticks_diff(now, self._last_ms)
        if dt_ms < 0:
            dt_ms = 0
        self._last_ms = now
        self.t_ms = now
        out = self.outputs
        m = self.meas
        m.read(self.fe, out.relay_closed, out.step_ua, self.config.stuck_step_ua)
        # Count only while the relay connected the cell: an open relay's shunt
        # offset is not lithium.
        led = self.ledger
        est = self.est
        if out.relay_closed:
            led.add(m.current_ua, dt_ms)
            est.add(m.current_ua, dt_ms)
            if led.cycle_closed:
                self._cycle_closed()
        m.judged_in(self.state, self.formation.plateau_seen, led.inventory[0], out, est.low_eu())
        prot = self.protections
        prot.check(m, now, dt_ms)
        if prot.tripped or prot.cleared:
            # Report first (and go to FAULT on a latch), then step the state:
            # an inhibit that ended this tick is cleared before formation starts.
            self._handle_trips()
        if self.state == READY:
            self._watch(m, dt_ms)
        else:
            self.crack.reset()
            self._at_knee = False
        if not prot.tripped & prot.mask:
            prot.tripped = 0
            self._step_state(now)
            if prot.tripped:
                # raised by the step itself: boot detection, formation
                self._handle_trips()
        out.update(now, self.state, self.substate, m, led, self.formation,
                   bool(prot.inhibit_mask & UT_BIT), prot.dis_hit_dvl, est, self.crack.hold_rest)
        if self.state == READY:
            sp = out.setpoint_ua
            sub = CHARGING if sp > 0 else DISCHARGING if sp < 0 else RESTING
            if sub != self.substate:
                self._fire(CHARGE if sp > 0 else DISCHARGE if sp < 0 else REST, "")
        hal.feed_watchdog()
        if self._dirty:
            self._save()
        else:
            moved = led.inventory[0] - self._saved_inventory_q
            if moved >= self._save_interval_q or -moved >= self._save_interval_q:
                self._save()

    def _step_state(self, now):
        state = self.state
        if state == FORMING:
            self._step_forming(now)
        elif state == SHIPPED:
            if (self.config.auto_form or self._form_requested) and not self.protections.blocks_formation(self.meas):
                self._form_requested = False
                self._fire(START_FORMATION, "auto" if self.config.auto_form else "requested")
        elif state == BOOT:
            if ticks_diff(now, self._boot_ms) >= self.config.boot_settle_ms:
                self._detect()

    def _step_forming(self, now):
        f = self.formation
        led = self.ledger
        m = self.meas
        out = self.outputs
        cold = bool(self.protections.inhibit_mask & UT_BIT)
        f.step(self.substate, now, m.cell_mv, led.plated[0], led.inventory[0],
               out.plate_base_ua(m, cold), out.dvl_mv, cold)
        if f.fault is not None:
            self.protections.trip(f.fault, f.detail)
        elif f.event is not None:
            self._fire(f.event, "")

    def _detect(self):
        """Relay open, current 0: the OCV and the record decide (bmsfw.boot_detect)."""
        event, fault, detail = detect(self.config, self.meas.cell_mv, self._op_state,
                                      self.protections.mask != 0, self._boot_safe, self.store.error)
        if fault is not None:
            # _handle_trips() in this tick emits the FAULT event and moves to FAULT.
            self.protections.trip(fault, detail)
            return
        if event == RESUME_SAFE:
            self._boot_safe = False
        self._fire(event, detail)

    # ------------------------------------------------------------------ transitions
    def _fire(self, event, detail):
        row = next_state(self.state, self.substate, event)
        if row is None:
            return False
        old_state = self.state
        old_sub = self.substate
        new_sub = row[4]
        self.state = row[3]
        if new_sub is None:
            # resume formation where the record left it (see states.TRANSITIONS)
            new_sub = self._op_substate if self._op_substate in _FORMING_SUBSTATES else NUCLEATE
        self.substate = new_sub
        if self.state in _OPERATING:
            self._op_state = self.state
            self._op_substate = new_sub
        action = ACTIONS[row[5]]
        if action is not None:
            action(self, self.t_ms, new_sub)
        if self.state != READY or old_state != READY:
            self.outputs.set_request(0)
        if old_state != self.state or (self.state == FORMING and old_sub != new_sub):
            self._emit(EV_STATE, detail, old_state, self.state, old_sub, new_sub)
        return True

    # The actions of states.TRANSITIONS (dispatched through ACTIONS, below the
    # class): called after the state changed, with the time and the new substate.
    def _act_outputs_off(self, now_ms, substate):
        self._outputs_off()

    def _act_start_formation(self, now_ms, substate):
        self.ledger.forming = True
        self._writes_at_formation_start = self.store.writes

    def _act_resume_formation(self, now_ms, substate):
        self.ledger.forming = True
        if substate == VERIFY:
            self.formation.start_verify(now_ms)

    def _act_start_verify(self, now_ms, substate):
        self.formation.start_verify(now_ms)

    def _act_finish_formation(self, now_ms, substate):
        led = self.ledger
        f = self.formation
        f.finish(led)
        self.est.formed(led.uas("plated"))
        # writes + 1: the save at the end of this tick belongs to the formation too.
        self._emit(EV_FORMATION_DONE, "", f.ce_ppm, led.uas("plated"), led.uas("inventory"),
                   self.store.writes - self._writes_at_formation_start + 1)

    def _act_found_formed(self, now_ms, substate):
        # A formed cell found at boot (with or without its record) is formed.
        self.formation.formed = True

    def _act_reboot(self, now_ms, substate):
        self._outputs_off()
        self._boot_ms = now_ms

    # ------------------------------------------------------------------ events
    def _handle_trips(self):
        prot = self.protections
        m = self.meas
        tripped = prot.tripped
        latched = tripped & prot.mask
        cleared = prot.cleared
        prot.cleared = 0
        for i in range(len(FAULTS)):
            bit = 1 << i
            if tripped & bit:
                self._emit(EV_FAULT, prot.details[i] if latched & bit else "charging inhibited",
                           FAULTS[i], m.cell_mv, m.current_ua, m.temp_dc)
            if cleared & bit:
                self._emit(EV_FAULT_CLEARED, "inhibit ended", FAULTS[i])
        if latched:
            self._fire(FAULT_LATCHED, "")
            self._outputs_off()

    def _cycle_closed(self):
        led = self.ledger
        self._emit(EV_CYCLE, "", led.ce_ppm, led.last_in_uas, led.last_out_uas, led.cycles)
        # A discharge that ended on DVL measured what the cell could give back;
        # a shortfall the estimator's loss explains (within its bound) is no crack.
        if self.protections.dis_hit_dvl and led.ce_ppm < self.config.crack_ce_ppm and self.state == READY \
                and self.est.knee_excess_eu > 0:
            self._crack("cycle CE %d ppm" % led.ce_ppm)

    def _watch(self, m, dt_ms):
        """READY: the knee (a discharge that ran into DVL) and the crack watch."""
        est = self.est
        if self.protections.dis_hit_dvl:
            if not self._at_knee:
                self._at_knee = True
                if est.at_knee() > 0:
                    # more missing than the bound: a rest's voltage decides
                    self.crack.request_rest()
                self._dirty = True
        else:
            self._at_knee = False
        cw = self.crack
        cw.step(self.fe.vcell_counts, self.outputs.prev_setpoint_ua, m.current_ua, est, m.temp_dc, dt_ms)
        if cw.found:
            cw.found = False
            self._crack("self-discharge at rest (anchor %d uV low)" % cw.suspect_uv)

    def _crack(self, detail):
        # Latched and reported at once: a trip outside Protections.check() is
        # otherwise cleared by the next check() before anyone reports it.
        prot = self.protections
        prot.tripped = 0                # what check() tripped is reported already
        prot.cleared = 0
        if prot.trip(CRACK_SUSPECTED, detail):
            self._handle_trips()

    def _outputs_off(self):
        self._form_requested = False
        self.outputs.off()

    def _emit(self, event, detail, *values):
        # Every event is saved with the record at the end of its tick.
        self._dirty = True
        self.events.emit(self.t_ms, event, detail, *values)

    # ------------------------------------------------------------------ outputs
    def telemetry(self):
        """The telemetry frame: the SAME dict object every call, refreshed."""
        return self._tel.refresh(self)

    def pop_events(self):
        """Events since the last call, oldest first. Returns a list the
        controller reuses: consume (or copy) it before the next pop_events()."""
        return self.events.pop()

    def fault_mask(self):
        return self.protections.mask | self.protections.inhibit_mask

    @property
    def faults(self):
        """Active faults (latched and inhibits), in FAULTS order."""
        mask = self.fault_mask()
        return tuple(FAULTS[i] for i in range(len(FAULTS)) if mask & (1 << i))

    # ------------------------------------------------------------------ inputs
    def request_current_ua(self, current_ua):
        """The duty-cycle request (+ charge, - discharge, 0 rest), always
        clamped to CCL/DCL. Honoured in READY only: returns True if taken,
        False (and stores nothing) in any other state."""
        why = request_error(current_ua, self.config.source_max_ua)
        if why:
            raise ControllerError("current_ua", current_ua, why)
        if self.state != READY:
            return False
        self.outputs.set_request(current_ua)
        return True

    def report_link_lost(self):
        """Called by the link HAL path: latches LINK_LOST (current 0, relay
        open at once). Cleared by reset_fault (which arrives over the link)."""
        if self.protections.trip(LINK_LOST, "link lost"):
            self._handle_trips()
            self._save()

    def clear_user_limits(self):
        """Local (not remote) way back to the design limits."""
        self.outputs.clear_user_limits()
        self._dirty = True

    # ------------------------------------------------------------------ commands
    def command(self, name, args=None):
        """Apply a command (docs/frames.md). Returns (True, "OK") or (False,
        code); a rejected command changes nothing (bmsfw.commands.check
        judges the name, arguments and state first)."""
        code = check(name, args, self.state, self.config, self.outputs)
        if code == "OK":
            code = self._run_command(name, args)
        if code != "OK":
            return False, code
        self._emit(EV_COMMAND, name, name)
        return True, "OK"

    def _run_command(self, name, args):
        """Apply a command check() accepted; "OK" or what refuses it still."""
        state = self.state
        if name == "charge" or name == "discharge":
            ua = args["current_ua"]
            self.outputs.set_request(ua if name == "charge" else -ua, args.get("duration_s"), self.t_ms)
        elif name == "formation/start":
            if state == SHIPPED:
                if self.protections.blocks_formation(self.meas):
                    return "FAULT_ACTIVE"
                self._fire(START_FORMATION, "command")
            elif self._op_state == SHIPPED or self._op_state == FORMING:
                # SAFE, formation unfinished: through BOOT, which resumes it
                self._fire(RESUME, "formation/start")
                self._form_requested = True
            else:
                return "NOT_ALLOWED_IN_STATE"
        elif name == "rest":
            if state == SAFE:
                self._fire(RESUME, "rest")
            else:
                self.outputs.set_request(0)
        elif name == "stop":
            self._fire(STOP, "command")
        elif name == "set_limits":
            self.outputs.set_user_limits(args)
        else:
            # reset_fault: refused while a latched fault's cause is measured
            cleared = self.protections.reset(self.meas)
            if cleared < 0:
                return "FAULT_ACTIVE"
            for i in range(len(FAULTS)):
                if cleared & (1 << i):
                    self._emit(EV_FAULT_CLEARED, "reset_fault", FAULTS[i])
            self._fire(RESET_FAULT, "reset_fault")
        return "OK"


# states.TRANSITIONS' action names -> what they do (None: nothing).
ACTIONS = {
    "none": None,
    "outputs_off": Controller._act_outputs_off,
    "start_formation": Controller._act_start_formation,
    "resume_formation": Controller._act_resume_formation,
    "start_verify": Controller._act_start_verify,
    "finish_formation": Controller._act_finish_formation,
    "found_formed": Controller._act_found_formed,
    "reboot": Controller._act_reboot,
}
