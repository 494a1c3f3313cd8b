# Telemetry and event frames (docs/frames.md): plain dicts of ints, strings
# and one list. The telemetry dict and its faults list are created once and
# refreshed in place every tick (no allocation in steady state); an event dict
# is created per event (events are rare: state changes, faults, cycles,
# commands).
from .states import FAULTS

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
    ("formation_pm", "i"),
    ("ce_ppm", "i"),
    ("faults", "H"),
    ("event_seq", "I"),
)
TELEMETRY_KEYS = tuple(field[0] for field in TELEMETRY_FIELDS)

EVENT_KEYS = ("kind", "device", "seq", "t_ms", "event", "detail")


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
        f["t_ms"] = c.t_ms
        f["state"] = c.state
        f["substate"] = c.substate
        f["cell_mv"] = c.cell_mv
        f["current_ua"] = c.current_ua
        f["temp_dc"] = c.temp_dc
        f["setpoint_ua"] = c.setpoint_ua
        f["cvl_mv"] = c.cvl_mv
        f["dvl_mv"] = c.dvl_mv
        f["ccl_ua"] = c.ccl_ua
        f["dcl_ua"] = c.dcl_ua
        f["plated_uas"] = c.ledger.plated_uas
        f["inventory_uas"] = c.ledger.inventory_uas
        f["soc_pm"] = c.soc_pm
        f["formation_pm"] = c.formation_pm
        f["ce_ppm"] = c.ledger.ce_ppm
        f["event_seq"] = c.event_seq
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


def make_event(device_id, seq, t_ms, event, detail=""):
    if len(detail) > MAX_DETAIL:
        detail = detail[:MAX_DETAIL]
    return {"kind": "event", "device": device_id, "seq": seq, "t_ms": t_ms, "event": event,
            "detail": detail}
