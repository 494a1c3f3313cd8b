"""Controller frames (docs/frames.md) -> MQTT payload dicts.

Pure functions: no I/O, so they are cheap to test and to call at high rates.
Names keep the firmware's unit suffixes (_mv, _ua, _uas = uA*ms, _dc = 0.1 degC,
_pm = per mille, _ppm); every payload carries a ``schema`` version string.
Payload shapes are pinned by mqtt_bridge/schemas/<kind>.json. The frame's field
names are the firmware's (bmsfw.telemetry, bmsfw.commands), imported, not copied.
"""

import json
import operator

from bmsfw.commands import LIMIT_KEYS
from bmsfw.telemetry import TELEMETRY_KEYS

from .errors import FrameError

_ONLY_INT = {int}
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

SCHEMA_STATE = "bms-state/1"
SCHEMA_LIMITS = "bms-limits/1"
SCHEMA_TELEMETRY = "bms-telemetry/1"
SCHEMA_EVENT = "bms-event/1"
SCHEMA_REPLY = "bms-reply/1"

# The figures of the retained state payload (state.json), in its order.
STATE_INT_FIELDS = ("formation_pm", "inventory_uas", "target_uas", "plated_uas", "soc_pm", "ce_ppm", "event_seq")
# Every telemetry frame field is an int but these (docs/frames.md): the frame's
# kind and device (the bridge routes on one and publishes its own device id),
# the state names and the faults list.
TELEMETRY_FRAME_NON_INTS = ("kind", "device", "state", "substate", "faults")
TELEMETRY_FRAME_INTS = tuple(key for key in TELEMETRY_KEYS if key not in TELEMETRY_FRAME_NON_INTS)
# The bridge's own fields, in every JSON payload but Home Assistant's configs:
# the payload's kind and version, the device and the numbering of its events
# (numbering.py). A frame's own "run" would be overwritten: it is refused.
ENVELOPE_FIELDS = ("schema", "device", "run")
_EVENT_FRAME_SKIPPED = ("kind", "device", "schema")


def dumps(payload: dict) -> bytes:
    """Compact UTF-8 JSON, the bytes every topic but ``status`` carries."""
    return _encode(payload).encode("utf-8")


def check_telemetry_frame(frame: dict) -> None:
    """Every field of a telemetry frame has its type, or FrameError (and nothing is published).

    Checked on every frame, due or not, so a bad frame is refused as a whole
    rather than half-published (state stored, telemetry refused).
    """
    try:
        fine = set(map(type, _TELEMETRY_INTS(frame))) == _ONLY_INT
    except KeyError:
        fine = False
    if not fine:
        for key in TELEMETRY_FRAME_INTS:
            get_int(frame, key)  # raises with the precise reason (missing / not an int)
    get_str(frame, "state")
    get_str(frame, "substate")
    get_faults(frame)


def get_int(frame: dict, key: str) -> int:
    try:
        value = frame[key]
    except KeyError:
        raise FrameError(key, None, "missing") from None
    if type(value) is not int:  # bool is not a measurement; floats would lose the integer ledger
        raise FrameError(key, value, "must be an int")
    return value


def get_str(frame: dict, key: str) -> str:
    try:
        value = frame[key]
    except KeyError:
        raise FrameError(key, None, "missing") from None
    if not isinstance(value, str):
        raise FrameError(key, value, "must be a str")
    return value


def get_faults(frame: dict) -> list:
    faults = frame.get("faults", [])
    if not isinstance(faults, (list, tuple)) or not all(isinstance(f, str) for f in faults):
        raise FrameError("faults", faults, "must be a list of str")
    return list(faults)


def state_payload(frame: dict, device_id: str, run: str = "", events_lost: int = 0) -> dict:
    payload = {"schema": SCHEMA_STATE, "device": device_id, "run": run, "t_ms": get_int(frame, "t_ms"),
               "state": get_str(frame, "state"), "substate": get_str(frame, "substate"),
               "faults": get_faults(frame)}
    for key in STATE_INT_FIELDS:
        payload[key] = get_int(frame, key)
    payload["events_lost"] = events_lost
    return payload


def state_figures(frame: dict) -> tuple:
    """The state payload's figures: a periodic refresh is due only if one of them moved."""
    return tuple(frame.get(k) for k in STATE_INT_FIELDS)


def state_key(frame: dict) -> tuple:
    """What makes a state change worth a retained update at once.

    Progress (formation and SOC per mille, inventory) is not in it: it moves every few
    ticks during formation and is refreshed at the state period instead.
    """
    return (frame.get("state"), frame.get("substate"), tuple(frame.get("faults", ())), frame.get("event_seq"))


limits_key = operator.itemgetter(*LIMIT_KEYS)   # on a checked frame: a tuple of ints
_TELEMETRY_INTS = operator.itemgetter(*TELEMETRY_FRAME_INTS)


def limits_payload(frame: dict, device_id: str, run: str = "") -> dict:
    payload = {"schema": SCHEMA_LIMITS, "device": device_id, "run": run, "t_ms": get_int(frame, "t_ms")}
    for key in LIMIT_KEYS:
        payload[key] = get_int(frame, key)
    return payload


def telemetry_payload(frame: dict, device_id: str, dropped: int = 0, run: str = "") -> dict:
    """Telemetry payload from a frame that passed check_telemetry_frame."""
    return {"schema": SCHEMA_TELEMETRY, "device": device_id, "run": run, "t_ms": frame["t_ms"],
            "state": frame["state"], "substate": frame["substate"], "cell_mv": frame["cell_mv"],
            "current_ua": frame["current_ua"], "temp_dc": frame["temp_dc"], "setpoint_ua": frame["setpoint_ua"],
            "inventory_uas": frame["inventory_uas"], "soc_pm": frame["soc_pm"], "dropped": dropped}


def event_payload(frame: dict, device_id: str, run: str = "") -> dict:
    """The event frame as-is (its extra unit-suffixed figures included), plus schema and run.

    ``run`` may be filled in later (numbering.py), in place: its key keeps its place.
    """
    seq = get_int(frame, "seq")
    if seq < 1:
        raise FrameError("seq", seq, "event sequence numbers start at 1")
    get_int(frame, "t_ms")
    get_str(frame, "event")
    payload: dict = {"schema": SCHEMA_EVENT, "device": device_id, "run": run}
    for key, value in frame.items():
        if key in _EVENT_FRAME_SKIPPED:
            continue
        if key == "run":
            raise FrameError(key, value, "the bridge numbers runs itself; an event frame has no run")
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            raise FrameError(key, value, "event fields are int or str")
        payload[key] = value
    return payload


def reply_payload(device_id: str, command: str, ok: bool, code: str, message: str = "",
                  request_id: object = None, run: str = "") -> dict:
    payload = {"schema": SCHEMA_REPLY, "device": device_id, "run": run, "command": command,
               "ok": bool(ok), "code": code, "message": message}
    if request_id is not None:
        payload["request_id"] = request_id
    return payload
