# Telemetry and event frames (docs/frames.md): plain dicts of ints, strings
# and one list. The telemetry dict and its faults list are created once and
# refreshed in place every tick (no allocation in steady state); an event dict
# is created per event (events are rare: state changes, faults, cycles,
# commands).
from .states import FAULTS

TELEMETRY_KEYS = ("kind", "device", "t_ms", "state", "substate", "cell_mv", "current_ua", "temp_dc",
                  "setpoint_ua", "cvl_mv", "dvl_mv", "ccl_ua", "dcl_ua", "plated_uas",
                  "inventory_uas", "target_uas", "soc_pm", "formation_pm", "ce_ppm", "faults",
                  "event_seq")

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
        """Copy the controller's figures into the frame (same dict object)."""
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
