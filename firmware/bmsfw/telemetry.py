# Telemetry and event frames (docs/frames.md): plain dicts of ints, strings
# and one list. The telemetry dict and its faults list are created once and
# refreshed in place every tick (no allocation in steady state); an event dict
# is created per event (events are rare: state changes, faults, cycles,
# commands) and queued in Events until the runner pops them.
from .states import EV_COMMAND, EV_CYCLE, EV_FAULT, EV_FAULT_CLEARED, EV_FORMATION_DONE, EV_STATE, FAULTS

# The telemetry frame's keys in order, each with its type on the HIL wire (a
# struct code: bmsfw.link_codec derives the REPLY layout from this table).
# None: not sent (the twin knows the kind, and the device from the HELLO).
# state and substate go as indices into STATES/SUBSTATES, faults as a bit
# mask of FAULTS (bit i = FAULTS[i]).
TELEMETRY_FIELDS = (
    ("kind", None),
    ("device", None),
    ("t_ms", "I"),
    ("state", "B"),
    ("substate", "B"),
    ("cell_mv", "i"),
    ("current_ua", "i"),
    ("temp_dc", "h"),
    ("setpoint_ua", "i"),
    ("cvl_mv", "i"),
    ("dvl_mv", "i"),
    ("ccl_ua", "i"),
    ("dcl_ua", "i"),
    ("plated_uas", "q"),
    ("inventory_uas", "q"),
    ("target_uas", "q"),
    ("soc_pm", "i"),
    ("soc_bound_pm", "i"),       # bmsfw.estimator: SOC is soc_pm ± this
    ("li_uah", "i"),             # estimated lithium on the electrode, µAh (an i32 to 2000 Ah)
    ("li_bound_uah", "i"),       # ... ± this (rounded up)
    ("catholyte_x_pm", "i"),     # estimated Li:S of the catholyte, per mille (1000 = Li2S2)
    ("loss_ppm", "i"),           # lithium lost per charge plated (learnt at knees)
    ("formation_pm", "i"),
    ("ce_ppm", "i"),
    ("faults", "H"),
    ("event_seq", "I"),
)
TELEMETRY_KEYS = tuple(field[0] for field in TELEMETRY_FIELDS)

EVENT_KEYS = ("kind", "device", "seq", "t_ms", "event", "detail")

# Each event kind's own keys, in order after EVENT_KEYS (docs/frames.md,
# "Event-specific keys"): Events.emit() takes their values in this order.
EVENT_FIELDS = {
    EV_STATE: ("from", "to", "from_substate", "to_substate"),
    EV_FAULT: ("fault", "cell_mv", "current_ua", "temp_dc"),
    EV_FAULT_CLEARED: ("fault",),
    EV_FORMATION_DONE: ("ce_ppm", "plated_uas", "inventory_uas", "writes"),
    EV_CYCLE: ("ce_ppm", "charge_uas", "discharge_uas", "cycles"),
    EV_COMMAND: ("command",),
}


class Telemetry:
    def __init__(self, device_id, target_uas):
        frame: dict = {}
        for key in TELEMETRY_KEYS:
            frame[key] = 0
        frame["kind"] = "telemetry"
        frame["device"] = device_id
        frame["state"] = ""
        frame["substate"] = ""
        frame["target_uas"] = target_uas
        frame["faults"] = []
        self.frame = frame
        self._faults_mask = -1   # mask the faults list was last built from

    def refresh(self, c):
        """Copy the controller's figures into the frame (same dict object):
        every key of TELEMETRY_FIELDS but the three fixed at construction
        (tests/firmware/test_telemetry.py checks the two agree)."""
        f = self.frame
        m = c.meas
        out = c.outputs
        led = c.ledger
        f["t_ms"] = c.t_ms
        f["state"] = c.state
        f["substate"] = c.substate
        f["cell_mv"] = m.cell_mv
        f["current_ua"] = m.current_ua
        f["temp_dc"] = m.temp_dc
        f["setpoint_ua"] = out.setpoint_ua
        f["cvl_mv"] = out.cvl_mv
        f["dvl_mv"] = out.dvl_mv
        f["ccl_ua"] = out.ccl_ua
        f["dcl_ua"] = out.dcl_ua
        f["plated_uas"] = led.uas("plated")
        f["inventory_uas"] = led.uas("inventory")
        f["soc_pm"] = out.soc_pm
        est = c.est
        f["soc_bound_pm"] = est.soc_bound_pm()
        f["li_uah"] = est.uah(est.li_eu)
        f["li_bound_uah"] = est.uah(est.bound_eu + est.eu_per_uah - 1)
        f["catholyte_x_pm"] = est.x_pm()
        f["loss_ppm"] = est.loss_ppm
        f["formation_pm"] = out.formation_pm
        f["ce_ppm"] = led.ce_ppm
        f["event_seq"] = c.events.seq
        mask = c.fault_mask()
        if mask != self._faults_mask:
            # Rebuilt only when the set of faults changes (rare).
            faults = f["faults"]
            faults.clear()
            for i in range(len(FAULTS)):
                if mask & (1 << i):
                    faults.append(FAULTS[i])
            self._faults_mask = mask
        return f


MAX_DETAIL = 200   # characters; the MQTT event schema allows 256
MAX_PENDING = 64   # events kept until pop(); the oldest dropped beyond this (counted)
# The most events one tick may emit (Controller.tick): every fault tripped and
# every one cleared, a second trip raised by the state step, a closed cycle,
# formation done and the state changes around them. And the most one command
# may emit (Controller.command): reset_fault clears every fault, changes the
# state and records itself. A runner that takes commands between ticks (the
# MQTT bridge) runs one only while room_for_command() says the queue holds its
# events and the next tick's: commands wait, events are not dropped.
TICK_EVENTS_MAX = 3 * len(FAULTS) + 4
COMMAND_EVENTS_MAX = len(FAULTS) + 2


def make_event(device_id, seq, t_ms, event, detail=""):
    """An event frame with the EVENT_KEYS (Events.emit adds the kind's own)."""
    if len(detail) > MAX_DETAIL:
        detail = detail[:MAX_DETAIL]
    return {"kind": "event", "device": device_id, "seq": seq, "t_ms": t_ms, "event": event,
            "detail": detail}


class Events:
    """The controller's events: numbered (seq persists in the record, so none
    is ever reused), queued until pop(), handed out in one of two lists that
    alternate (no list is made per pop)."""

    def __init__(self, device_id):
        self._device_id = device_id
        self.seq = 0
        self.dropped = 0
        self._pending = []
        self._out = []

    def emit(self, t_ms, event, detail, *values):
        """Queue an event of kind `event`; `values` are its EVENT_FIELDS'."""
        self.seq += 1
        ev = make_event(self._device_id, self.seq, t_ms, event, detail)
        keys = EVENT_FIELDS[event]
        for i in range(len(keys)):
            ev[keys[i]] = values[i]
        if len(self._pending) >= MAX_PENDING:
            self._pending.pop(0)
            self.dropped += 1
        self._pending.append(ev)
        return ev

    def room_for_command(self):
        """True if the pending events, one more command's and one tick's
        fit in the queue: nothing would be dropped before the next pop()."""
        return len(self._pending) + COMMAND_EVENTS_MAX + TICK_EVENTS_MAX <= MAX_PENDING

    def pop(self):
        """Events since the last pop, oldest first, in a list the next pop
        empties: consume (or copy) it before then."""
        out = self._out
        if out:
            out.clear()
        if self._pending:
            pending = self._pending
            self._pending = out
            self._out = pending
            return pending
        return out
