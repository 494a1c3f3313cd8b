# The BMS controller: one object, one tick at a time.
#
#   c = Controller(hal, Config(...), device_id="d111-0001")
#   every tick_ms:  c.tick(); frame = c.telemetry(); events = c.pop_events()
#   from outside:   c.command(name, args) -> (ok, code); c.request_current_ua(ua);
#                   c.report_link_lost()
#
# A tick: read the three ADC channels, convert, count charge, run the
# protections, step the state machine (boot detection, formation, READY),
# recompute CVL/DVL/CCL/DCL, set the current (the request clamped to the
# limits) and the relay, feed the watchdog, save the record when needed.
# A latched fault sets current 0 and opens the relay in the same tick.
#
# Time comes only from hal.ticks_ms(), compared with ticks_diff: the tick
# length is measured, never assumed. See docs/firmware.md.
from . import limits
from .calibration import FrontEnd
from .commands import COMMANDS, LIMIT_KEYS, MAX_DURATION_S
from .compat import ticks_add, ticks_diff
from .config import Config
from .errors import FieldError
from .formation import V_DISCHARGE, Formation
from .ledger import Ledger
from .protections import Protections
from .record import Record, RecordError
from .states import (BOOT, CHARGE, CHARGING, CRACK_SUSPECTED, DISCHARGE, DISCHARGING,
                     EV_COMMAND, EV_CYCLE, EV_FAULT, EV_FAULT_CLEARED, EV_FORMATION_DONE, EV_STATE,
                     FAULT, FAULT_LATCHED, FAULTS, FORMED_FOUND, FORMING, LINK_LOST,
                     NO_CELL, NONE, NUCLEATE, OVERVOLTAGE, PLATE, PRECURSOR_FOUND, READY,
                     RESET_FAULT, REST, RESTING, RESUME, RESUME_FORMING, RESUME_SAFE, SAFE, SHIPPED,
                     SHORT, START_FORMATION, STATES, STOP, SUBSTATES,
                     UNDER_TEMPERATURE, UNDERVOLTAGE, VERIFY, next_state)
from .telemetry import Telemetry, make_event

MAX_PENDING_EVENTS = 64         # oldest dropped beyond this (counted in events_dropped)

_UT_BIT = 1 << FAULTS.index(UNDER_TEMPERATURE)
_OPERATING = (SHIPPED, FORMING, READY)


class ControllerError(FieldError):
    pass


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_indices(rec):
    """The record's state and fault figures must name states.py's tuples."""
    if rec.state >= len(STATES) or rec.resume_state >= len(STATES):
        raise RecordError("state", rec.state, "not a state index")
    if rec.substate >= len(SUBSTATES) or rec.resume_substate >= len(SUBSTATES):
        raise RecordError("substate", rec.substate, "not a substate index")
    if rec.fault_mask >> len(FAULTS):
        raise RecordError("fault_mask", rec.fault_mask, "unknown fault bits")


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
        self.fe = FrontEnd(hal, c)
        self.ledger = Ledger(c.cycle_deadband_ua, c.cycle_min_uas)
        self.formation = Formation(c)
        self.protections = Protections(c)
        self._record = Record()
        self._persistent = (self.ledger, self.formation, self.protections)
        self.target_uas = c.target_uas()
        self.reserve_uas = c.reserve_uas()
        step = self.target_uas // 1000
        ceiling = self.target_uas + step * c.charge_margin_pm
        supply = c.supply_uas()
        self._ceiling_uas = ceiling if ceiling < supply else supply
        self._charge_taper_uas = step * (c.charge_taper_pm + c.charge_margin_pm)
        self._reserve_taper_uas = step * c.reserve_taper_pm
        self._charge_floor_dc = limits.charge_floor_dc(c.charge_min_temp_dc, c.plating_derating,
                                                       c.temp_accuracy_dc)
        self._tel = Telemetry(device_id, self.target_uas)

        # state
        self.state = BOOT
        self.substate = NONE
        self._op_state = SHIPPED        # last operating state (resumed after FAULT/SAFE)
        self._op_substate = NONE
        self._boot_safe = False         # the record says an operator stopped it
        self._form_requested = False
        # measurements (copied from the front end each tick)
        self.t_ms = hal.ticks_ms()
        self.cell_mv = 0
        self.current_ua = 0
        self.temp_dc = 0
        self.ntc_fault = False
        self.ishunt_railed = False
        # outputs and limits
        self.setpoint_ua = 0
        self.prev_setpoint_ua = 0
        self.relay_closed = False
        self.request_ua = 0
        self._deadline_ms = 0
        self._deadline_set = False
        self.cvl_mv = c.charge_cutoff_mv
        self.dvl_mv = c.discharge_cutoff_mv
        self.ccl_ua = 0
        self.dcl_ua = 0
        self.user_cvl_mv = -1
        self.user_dvl_mv = -1
        self.user_ccl_ua = -1
        self.user_dcl_ua = -1
        self.soc_pm = 0
        self.formation_pm = 0
        self.lithium_present = False
        self.charging_li = False
        self.inventory_uas = 0          # the ledger's, copied each tick for protections
        self._step_ua = 0               # current step applied at the end of the last tick
        self._vcell_before_step = 0
        self._stuck_steps = 0           # consecutive steps VCELL did not answer
        self.vcell_stuck = False
        # events and persistence
        self.event_seq = 0
        self._pending = []
        self._out = []
        self.events_dropped = 0
        self.writes = 0
        self._writes_at_formation_start = 0
        self._dirty = False
        self._saved_inventory_uas = 0
        self.record_status = "ABSENT"   # ABSENT, OK or INVALID
        self.record_error = ""
        self._load_record()
        self._boot_ms = self.t_ms
        self._last_ms = self.t_ms
        # Safe outputs from the first instant: no current, relay open.
        hal.set_current_ua(0)
        hal.set_relay(False)

    # ------------------------------------------------------------------ record
    def _load_record(self):
        data = self.hal.load_record()
        if data is None:
            return
        try:
            rec = Record.decode(data)
            _check_indices(rec)
        except RecordError as e:
            # Treated as absent, and said so in the first STATE event.
            self.record_status = "INVALID"
            self.record_error = str(e)
            return
        self.record_status = "OK"
        self.restore_from(rec)
        self._record = rec

    def save_to(self, rec):
        """Fill `rec` with everything that must survive a power cut: each
        part writes its own fields (bmsfw.record.FIELDS)."""
        rec.state = STATES.index(self.state)
        rec.substate = SUBSTATES.index(self.substate)
        rec.resume_state = STATES.index(self._op_state)
        rec.resume_substate = SUBSTATES.index(self._op_substate)
        rec.event_seq = self.event_seq
        rec.writes = self.writes
        rec.user_cvl_mv = self.user_cvl_mv
        rec.user_dvl_mv = self.user_dvl_mv
        rec.user_ccl_ua = self.user_ccl_ua
        rec.user_dcl_ua = self.user_dcl_ua
        for part in self._persistent:
            part.save_to(rec)

    def restore_from(self, rec):
        """The inverse of save_to(), at construction (the record's indices checked)."""
        op = STATES[rec.resume_state]
        self._op_state = op if op in _OPERATING else SHIPPED
        self._op_substate = SUBSTATES[rec.resume_substate]
        self._boot_safe = STATES[rec.state] == SAFE
        self.event_seq = rec.event_seq
        self.writes = rec.writes
        self.user_cvl_mv = rec.user_cvl_mv
        self.user_dvl_mv = rec.user_dvl_mv
        self.user_ccl_ua = rec.user_ccl_ua
        self.user_dcl_ua = rec.user_dcl_ua
        for part in self._persistent:
            part.restore_from(rec)
        self._saved_inventory_uas = rec.inventory_uas

    def _save(self):
        rec = self._record
        self.writes += 1
        self.save_to(rec)
        self.hal.save_record(rec.encode())
        self._saved_inventory_uas = self.ledger.inventory_uas
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
        fe = self.fe
        fe.read()
        if not self.relay_closed:
            # No current can flow: what the shunt reads is its zero.
            fe.learn_zero()
        step_ua = self.config.stuck_step_ua
        if step_ua > 0 and self._step_ua >= step_ua:
            # A current step of stuck_step_ua moves the cell voltage by its IR
            # drop (≥ 12 mV on D111); the very same counts after it, twice in a
            # row, mean a stuck VCELL channel.
            if fe.vcell_counts == self._vcell_before_step:
                self._stuck_steps += 1
            else:
                self._stuck_steps = 0
        self.vcell_stuck = self._stuck_steps >= 2
        self.cell_mv = fe.cell_mv
        self.current_ua = fe.current_ua
        self.ntc_fault = fe.ntc_fault
        self.ishunt_railed = fe.ishunt_railed
        if not fe.ntc_fault:
            self.temp_dc = fe.temp_dc
        # Count only while the relay connected the cell: an open relay's shunt
        # offset is not lithium.
        led = self.ledger
        if self.relay_closed:
            led.add(self.current_ua, dt_ms)
            if led.cycle_closed:
                self._cycle_closed()
        self.inventory_uas = led.inventory_uas
        state = self.state
        self.lithium_present = state == READY or (state == FORMING and self.formation.plateau_seen)
        self.charging_li = self.lithium_present and self.prev_setpoint_ua > 0
        prot = self.protections
        prot.check(self, now, dt_ms)
        if prot.tripped or prot.cleared:
            # Report first (and go to FAULT on a latch), then step the state:
            # an inhibit that ended this tick is cleared before formation starts.
            self._handle_trips()
        if not prot.tripped & prot.mask:
            prot.tripped = 0
            self._step_state(now)
            if prot.tripped:
                # raised by the step itself: boot detection, formation
                self._handle_trips()
        self._apply_limits_and_outputs()
        hal.feed_watchdog()
        if self._dirty:
            self._save()
        else:
            moved = led.inventory_uas - self._saved_inventory_uas
            if moved >= self.config.save_interval_uas or -moved >= self.config.save_interval_uas:
                self._save()

    def _step_state(self, now):
        state = self.state
        if state == FORMING:
            self._step_forming(now)
        elif state == READY:
            if self._deadline_set and ticks_diff(now, self._deadline_ms) >= 0:
                self.request_ua = 0
                self._deadline_set = False
        elif state == SHIPPED:
            if (self.config.auto_form or self._form_requested) and not self._blocked():
                self._form_requested = False
                self._fire(START_FORMATION, "auto" if self.config.auto_form else "requested")
        elif state == BOOT:
            if ticks_diff(now, self._boot_ms) >= self.config.boot_settle_ms:
                self._detect()

    def _blocked(self):
        """Formation may not start: a latched fault, the cold inhibit, or a
        temperature below the charging minimum that has not yet been held
        long enough to raise the inhibit (or no valid temperature at all)."""
        prot = self.protections
        return bool(prot.mask or prot.inhibit_mask & _UT_BIT or self.ntc_fault
                    or self.temp_dc < self._charge_floor_dc)

    def _step_forming(self, now):
        f = self.formation
        led = self.ledger
        paused = bool(self.protections.inhibit_mask & _UT_BIT)
        f.step(self.substate, now, self.cell_mv, led.plated_uas, led.inventory_uas,
               self._plate_base_ua(), self.dvl_mv, paused)
        if f.fault is not None:
            self.protections.trip(f.fault, f.detail)
        elif f.event is not None:
            self._fire(f.event, "")

    # ------------------------------------------------------------------ boot detection
    def _detect(self):
        """Relay open, current 0: read the OCV and the record (docs/firmware.md, Boot)."""
        c = self.config
        mv = self.cell_mv
        op = self._op_state
        detail = ""
        if self.record_status == "INVALID":
            detail = "record invalid, treated as absent: " + self.record_error
        if self.protections.mask:
            self._fire(FAULT_LATCHED, "faults latched before reset")
            return
        if self._boot_safe:
            self._boot_safe = False
            self._fire(RESUME_SAFE, detail)
            return
        if mv < c.short_ocv_mv:
            self._boot_fault(SHORT, "OCV %d mV" % mv)
        elif mv > c.no_cell_mv:
            self._boot_fault(NO_CELL, "OCV %d mV" % mv)
        elif c.precursor_min_mv <= mv <= c.precursor_max_mv:
            if op == FORMING:
                self._fire(RESUME_FORMING, detail)
            elif op == READY:
                self._boot_fault(CRACK_SUSPECTED, "formed cell reads %d mV: lithium gone" % mv)
            else:
                self._fire(PRECURSOR_FOUND, detail)
        elif c.formed_min_mv <= mv <= c.formed_max_mv:
            if op == FORMING:
                self._fire(RESUME_FORMING, detail)
            else:
                if op != READY:
                    # Formed elsewhere, or the record was lost: the inventory is
                    # unknown, so it is counted from 0 (DCL stays 0 until charged).
                    detail = (detail + "; " if detail else "") + "formed cell without record"
                    self.formation.formed = True
                self._fire(FORMED_FOUND, detail)
        elif op == FORMING:
            # Between the windows: an alloy plateau or a partly plated cell.
            self._fire(RESUME_FORMING, detail)
        elif mv < c.precursor_min_mv:
            self._boot_fault(SHORT, "OCV %d mV" % mv)
        elif mv > c.formed_max_mv:
            self._boot_fault(OVERVOLTAGE, "OCV %d mV" % mv)
        else:
            self._boot_fault(UNDERVOLTAGE, "OCV %d mV" % mv)

    def _boot_fault(self, name, detail):
        self.protections.trip(name, detail)
        # _handle_trips() in this tick emits the FAULT event and moves to FAULT.

    # ------------------------------------------------------------------ transitions
    def _fire(self, event, detail):
        row = next_state(self.state, self.substate, event)
        if row is None:
            return False
        old_state = self.state
        old_sub = self.substate
        new_sub = row[4]
        action = row[5]
        self.state = row[3]
        if new_sub is None:
            new_sub = self._op_substate if self._op_substate in (NUCLEATE, PLATE, VERIFY) else NUCLEATE
        self.substate = new_sub
        if self.state in _OPERATING:
            self._op_state = self.state
            self._op_substate = new_sub
        now = self.t_ms
        if action == "outputs_off":
            self._outputs_off()
        elif action == "start_formation":
            self.ledger.forming = True
            self._writes_at_formation_start = self.writes
        elif action == "resume_formation":
            self.ledger.forming = True
            if new_sub == VERIFY:
                self.formation.start_verify(now)
        elif action == "start_verify":
            self.formation.start_verify(now)
        elif action == "finish_formation":
            self._finish_formation()
        elif action == "reboot":
            self._outputs_off()
            self._boot_ms = now
        if self.state != READY or old_state != READY:
            self.request_ua = 0
            self._deadline_set = False
        if old_state != self.state or (self.state == FORMING and old_sub != new_sub):
            ev = self._emit(EV_STATE, detail)
            ev["from"] = old_state
            ev["to"] = self.state
            ev["from_substate"] = old_sub
            ev["to_substate"] = new_sub
        return True

    def _finish_formation(self):
        led = self.ledger
        f = self.formation
        led.forming = False
        led.restart_cycle()
        led.ce_ppm = f.ce_ppm
        self.formation.formed = True
        ev = self._emit(EV_FORMATION_DONE, "")
        ev["ce_ppm"] = f.ce_ppm
        ev["plated_uas"] = led.plated_uas
        ev["inventory_uas"] = led.inventory_uas
        # +1: the save at the end of this tick belongs to the formation too.
        ev["writes"] = self.writes - self._writes_at_formation_start + 1

    def _handle_trips(self):
        prot = self.protections
        tripped = prot.tripped
        latched = tripped & prot.mask
        cleared = prot.cleared
        prot.cleared = 0
        for i in range(len(FAULTS)):
            bit = 1 << i
            if tripped & bit:
                ev = self._emit(EV_FAULT, prot.details[i] if latched & bit else "charging inhibited")
                ev["fault"] = FAULTS[i]
                ev["cell_mv"] = self.cell_mv
                ev["current_ua"] = self.current_ua
                ev["temp_dc"] = self.temp_dc
            if cleared & bit:
                ev = self._emit(EV_FAULT_CLEARED, "inhibit ended")
                ev["fault"] = FAULTS[i]
        if latched:
            self._fire(FAULT_LATCHED, "")
            self._outputs_off()

    def _cycle_closed(self):
        led = self.ledger
        ev = self._emit(EV_CYCLE, "")
        ev["ce_ppm"] = led.ce_ppm
        ev["charge_uas"] = led.last_in_uas
        ev["discharge_uas"] = led.last_out_uas
        ev["cycles"] = led.cycles
        # A discharge that ended on DVL measured what the cell could give back.
        if self.protections.dis_hit_dvl and led.ce_ppm < self.config.crack_ce_ppm and self.state == READY:
            self.protections.trip(CRACK_SUSPECTED, "cycle CE %d ppm" % led.ce_ppm)

    def _outputs_off(self):
        # Current to 0 before the relay opens.
        self._form_requested = False
        self.setpoint_ua = 0
        self.prev_setpoint_ua = 0
        self.hal.set_current_ua(0)
        if self.relay_closed:
            self.relay_closed = False
        self.hal.set_relay(False)

    def _emit(self, event, detail):
        self.event_seq += 1
        ev = make_event(self.device_id, self.event_seq, self.t_ms, event, detail)
        if len(self._pending) >= MAX_PENDING_EVENTS:
            self._pending.pop(0)
            self.events_dropped += 1
        self._pending.append(ev)
        self._dirty = True
        return ev

    # ------------------------------------------------------------------ limits
    def _plate_base_ua(self):
        """Temperature-derated plating limit x area (µA); 0 when not allowed."""
        c = self.config
        if self.ntc_fault or self.protections.inhibit_mask & _UT_BIT:
            return 0
        return c.density_to_ua(limits.plating_ua_cm2(self.temp_dc, c.plating_derating,
                                                     self._charge_floor_dc, c.charge_max_temp_dc))

    def _apply_limits_and_outputs(self):
        c = self.config
        led = self.ledger
        state = self.state
        self.cvl_mv = limits.cvl_mv(c.charge_cutoff_mv, self.user_cvl_mv)
        self.dvl_mv = limits.dvl_mv(c.discharge_cutoff_mv, self.user_dvl_mv)
        operating = state == FORMING or state == READY
        ccl = 0
        dcl = 0
        if operating:
            ccl = limits.ccl_ua(self._plate_base_ua(), led.inventory_uas, self._ceiling_uas,
                                self._charge_taper_uas, self.cell_mv, self.cvl_mv, c.cv_taper_mv,
                                self.user_ccl_ua)
            base = 0
            if state == READY and not self.ntc_fault and not self.protections.dis_hit_dvl:
                base = c.density_to_ua(limits.interp_table(self.temp_dc, c.discharge_derating))
            elif state == FORMING and self.substate == VERIFY and self.formation.verify_step == V_DISCHARGE:
                # The verify cycle's strip: the only discharge before formation is done.
                base = self.formation.formation_ua
            dcl = limits.dcl_ua(base, led.inventory_uas, self.reserve_uas, self._reserve_taper_uas,
                                self.cell_mv, self.dvl_mv, c.dv_taper_mv, self.user_dcl_ua)
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
            request = self.formation.request_ua
        elif state == READY:
            request = self.request_ua
        else:
            request = 0
        setpoint = limits.clamp_request(request, ccl, dcl) if operating else 0
        # Remember a current step (relay closed on both sides) and the VCELL
        # counts before it: the next tick's VCELL must differ (stuck-ADC check).
        step = setpoint - self.prev_setpoint_ua
        self._step_ua = (step if step > 0 else -step) if operating and self.relay_closed else 0
        self._vcell_before_step = self.fe.vcell_counts
        self.prev_setpoint_ua = setpoint
        if setpoint != self.setpoint_ua:
            self.setpoint_ua = setpoint
            self.hal.set_current_ua(setpoint)
        if operating != self.relay_closed:
            self.relay_closed = operating
            self.hal.set_relay(operating)
        if state == READY:
            sub = CHARGING if setpoint > 0 else DISCHARGING if setpoint < 0 else RESTING
            if sub != self.substate:
                self._fire(CHARGE if setpoint > 0 else DISCHARGE if setpoint < 0 else REST, "")
            self.soc_pm = led.per_mille(led.inventory_uas, self.target_uas)
            self.formation_pm = 1000
        elif state == FORMING:
            self.soc_pm = led.per_mille(led.inventory_uas, self.target_uas)
            self.formation_pm = self.formation.progress_pm(self.substate, led.plated_uas)
        else:
            self.soc_pm = led.per_mille(led.inventory_uas, self.target_uas) if self.formation.formed else 0
            self.formation_pm = 1000 if self.formation.formed else self.formation.progress_pm(NONE, led.plated_uas)

    # ------------------------------------------------------------------ outputs
    def telemetry(self):
        """The telemetry frame: the SAME dict object every call, refreshed."""
        return self._tel.refresh(self)

    def pop_events(self):
        """Events since the last call, oldest first. Returns a list the
        controller reuses: consume (or copy) it before the next pop_events()."""
        out = self._out
        if out:
            out.clear()
        if self._pending:
            pending = self._pending
            self._pending = out
            self._out = pending
            return pending
        return out

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
        if not _is_int(current_ua):
            raise ControllerError("current_ua", current_ua, "must be an int")
        limit = self.config.source_max_ua
        if current_ua > limit or current_ua < -limit:
            raise ControllerError("current_ua", current_ua, "beyond ±%d uA" % limit)
        if self.state != READY:
            return False
        self.request_ua = current_ua
        self._deadline_set = False
        return True

    def report_link_lost(self):
        """Called by the link HAL path: latches LINK_LOST (current 0, relay
        open at once). Cleared by reset_fault (which arrives over the link)."""
        if self.protections.trip(LINK_LOST, "link lost"):
            self._handle_trips()
            self._save()

    def clear_user_limits(self):
        """Local (not remote) way back to the design limits."""
        self.user_cvl_mv = -1
        self.user_dvl_mv = -1
        self.user_ccl_ua = -1
        self.user_dcl_ua = -1
        self._dirty = True

    # ------------------------------------------------------------------ commands
    def command(self, name, args=None):
        """Apply a command (docs/frames.md). Returns (True, "OK") or (False,
        code); a rejected command changes nothing."""
        if not isinstance(name, str) or name not in COMMANDS:
            return False, "UNKNOWN_COMMAND"
        if args is None:
            args = {}
        if not isinstance(args, dict):
            return False, "BAD_ARGS"
        if name == "charge" or name == "discharge":
            code = self._cmd_current(name, args)
        elif name == "set_limits":
            code = self._cmd_limits(args)
        else:
            if args:
                return False, "BAD_ARGS"
            code = self._cmd_plain(name)
        if code != "OK":
            return False, code
        ev = self._emit(EV_COMMAND, name)
        ev["command"] = name
        return True, "OK"

    def _state_code(self, allowed):
        if self.state in allowed:
            return "OK"
        if self.state == FAULT:
            return "FAULT_ACTIVE"
        return "NOT_ALLOWED_IN_STATE"

    def _cmd_current(self, name, args):
        for key in args:
            if key != "current_ua" and key != "duration_s":
                return "BAD_ARGS"
        ua = args.get("current_ua")
        if not _is_int(ua):
            return "BAD_ARGS"
        duration = args.get("duration_s")
        if duration is not None and not _is_int(duration):
            return "BAD_ARGS"
        if ua <= 0 or ua > self.config.source_max_ua:
            return "OUT_OF_RANGE"
        if duration is not None and (duration <= 0 or duration > MAX_DURATION_S):
            return "OUT_OF_RANGE"
        code = self._state_code((READY,))
        if code != "OK":
            return code
        self.request_ua = ua if name == "charge" else -ua
        self._deadline_set = duration is not None
        if duration is not None:
            self._deadline_ms = ticks_add(self.t_ms, duration * 1000)
        return "OK"

    def _cmd_plain(self, name):
        state = self.state
        if name == "formation/start":
            if state == SHIPPED:
                if self._blocked():
                    return "FAULT_ACTIVE"
                self._fire(START_FORMATION, "command")
                return "OK"
            if state == SAFE and self._op_state in (SHIPPED, FORMING):
                self._fire(RESUME, "formation/start")
                self._form_requested = True
                return "OK"
            return self._state_code(())
        if name == "rest":
            if state == SAFE:
                self._fire(RESUME, "rest")
                return "OK"
            code = self._state_code((READY,))
            if code == "OK":
                self.request_ua = 0
                self._deadline_set = False
            return code
        if name == "stop":
            code = self._state_code((SHIPPED, FORMING, READY))
            if code == "OK":
                self._fire(STOP, "command")
            return code
        # reset_fault
        if state != FAULT:
            return "NOT_ALLOWED_IN_STATE"
        prot = self.protections
        for i in range(len(FAULTS)):
            if prot.mask & (1 << i) and prot.cause_present(FAULTS[i], self):
                return "FAULT_ACTIVE"
        for i in range(len(FAULTS)):
            bit = 1 << i
            if prot.mask & bit:
                prot.clear(bit)
                ev = self._emit(EV_FAULT_CLEARED, "reset_fault")
                ev["fault"] = FAULTS[i]
        self._fire(RESET_FAULT, "reset_fault")
        return "OK"

    def _cmd_limits(self, args):
        if not args:
            return "BAD_ARGS"
        for key in args:
            if key not in LIMIT_KEYS or not _is_int(args[key]):
                return "BAD_ARGS"
        c = self.config
        cvl = args.get("cvl_mv", self.cvl_mv if self.user_cvl_mv < 0 else self.user_cvl_mv)
        dvl = args.get("dvl_mv", self.dvl_mv if self.user_dvl_mv < 0 else self.user_dvl_mv)
        for key in ("cvl_mv", "dvl_mv"):
            if key in args and not c.discharge_cutoff_mv <= args[key] <= c.charge_cutoff_mv:
                return "OUT_OF_RANGE"
        for key in ("ccl_ua", "dcl_ua"):
            if key in args and not 0 <= args[key] <= c.source_max_ua:
                return "OUT_OF_RANGE"
        if dvl >= cvl:
            return "OUT_OF_RANGE"
        if "cvl_mv" in args and args["cvl_mv"] > limits.cvl_mv(c.charge_cutoff_mv, self.user_cvl_mv):
            return "WOULD_LOOSEN_LIMITS"
        if "dvl_mv" in args and args["dvl_mv"] < limits.dvl_mv(c.discharge_cutoff_mv, self.user_dvl_mv):
            return "WOULD_LOOSEN_LIMITS"
        if "ccl_ua" in args and self.user_ccl_ua >= 0 and args["ccl_ua"] > self.user_ccl_ua:
            return "WOULD_LOOSEN_LIMITS"
        if "dcl_ua" in args and self.user_dcl_ua >= 0 and args["dcl_ua"] > self.user_dcl_ua:
            return "WOULD_LOOSEN_LIMITS"
        if "cvl_mv" in args:
            self.user_cvl_mv = args["cvl_mv"]
        if "dvl_mv" in args:
            self.user_dvl_mv = args["dvl_mv"]
        if "ccl_ua" in args:
            self.user_ccl_ua = args["ccl_ua"]
        if "dcl_ua" in args:
            self.user_dcl_ua = args["dcl_ua"]
        return "OK"
