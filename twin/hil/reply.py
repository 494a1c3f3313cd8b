"""The firmware's REPLY frame to a TICK, decoded into the telemetry frame it carries."""
from __future__ import annotations

import struct

from bmsfw import link_codec as lc
from bmsfw.states import FAULTS, STATES, SUBSTATES
from bmsfw.telemetry import TELEMETRY_KEYS


def decode_reply(payload: bytes, device_id: str):
    """(ack, flags, setpoint_ua, relay_closed, heartbeat, telemetry frame, fw counters)
    or None if the payload is not a REPLY of this protocol version."""
    if len(payload) != lc.REPLY_SIZE:
        return None
    v = struct.unpack_from(lc.REPLY_FMT, payload, 0)
    ack, flags, setpoint_ua, relay, heartbeat = v[0:5]
    tel = v[5:24]
    state_i, sub_i, mask = tel[1], tel[2], tel[17]
    if state_i >= len(STATES) or sub_i >= len(SUBSTATES) or mask >> len(FAULTS) or relay > 1:
        return None
    frame = dict.fromkeys(TELEMETRY_KEYS, 0)
    frame.update(kind="telemetry", device=device_id, t_ms=tel[0], state=STATES[state_i],
                 substate=SUBSTATES[sub_i], cell_mv=tel[3], current_ua=tel[4], temp_dc=tel[5],
                 setpoint_ua=tel[6], cvl_mv=tel[7], dvl_mv=tel[8], ccl_ua=tel[9], dcl_ua=tel[10],
                 plated_uas=tel[11], inventory_uas=tel[12], target_uas=tel[13], soc_pm=tel[14],
                 formation_pm=tel[15], ce_ppm=tel[16],
                 faults=[FAULTS[i] for i in range(len(FAULTS)) if mask >> i & 1], event_seq=tel[18])
    counters = dict(zip(lc.LINK_COUNTERS, v[24:]))
    return ack, flags, setpoint_ua, bool(relay), heartbeat, frame, counters
