"""The firmware's REPLY frame to a TICK, decoded into the telemetry frame it carries.

The layout is bmsfw.link_codec.REPLY_FIELDS (derived from the telemetry table);
this module only turns its indices and bit mask back into names."""
from __future__ import annotations

from bmsfw import link_codec as lc
from bmsfw.states import FAULTS, STATES, SUBSTATES
from bmsfw.telemetry import TELEMETRY_KEYS


def decode_reply(payload: bytes, device_id: str):
    """(ack, flags, setpoint_ua, relay_closed, heartbeat, telemetry frame, fw counters)
    or None if the payload is not a REPLY of this protocol version."""
    v = lc.unpack_reply(payload)
    if v is None:
        return None
    state_i, sub_i, mask, relay = v["state"], v["substate"], v["fault_mask"], v["relay"]
    if state_i >= len(STATES) or sub_i >= len(SUBSTATES) or mask >> len(FAULTS) or relay > 1:
        return None
    # The frame's keys in TELEMETRY_KEYS order; the wire carries every one but
    # kind and device, with state, substate and faults encoded.
    frame = {key: v.get(key, 0) for key in TELEMETRY_KEYS}
    frame.update(kind="telemetry", device=device_id, state=STATES[state_i], substate=SUBSTATES[sub_i],
                 faults=[FAULTS[i] for i in range(len(FAULTS)) if mask >> i & 1])
    counters = {name: v[name] for name in lc.LINK_COUNTERS}
    return v["ack"], v["flags"], v["hal_setpoint_ua"], bool(relay), v["heartbeat"], frame, counters
