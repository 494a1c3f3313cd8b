"""The HIL REPLY payload is laid out once: bmsfw.link_codec.REPLY_FIELDS (the
link's header, the telemetry fields of bmsfw.telemetry.TELEMETRY_FIELDS, the
link counters). Each copy is checked against it here, so one side changing
alone fails: the wire format of protocol version 2, the firmware's explicit
allocation-free pack (LinkHal.send_answer), the twin's decode
(twin.hil.decode_reply, through lc.unpack_reply) and docs/hil.md's table.

Run: .venv/bin/python -m pytest tests/hil/test_reply_layout.py -q
"""
import re
import struct
from pathlib import Path

from bmsfw import link_codec as lc
from bmsfw.link_hal import LinkHal
from bmsfw.states import FAULTS, STATES, SUBSTATES
from bmsfw.telemetry import TELEMETRY_FIELDS, TELEMETRY_KEYS
from twin.hil import decode_reply

DOCS = Path(__file__).resolve().parents[2] / "docs"
HEADER = ("ack", "flags", "hal_setpoint_ua", "relay", "heartbeat", "record_seq")
_DOC_TYPES = {"B": "u8", "H": "u16", "I": "u32", "h": "i16", "i": "i32", "q": "i64"}


class Capture:
    def __init__(self):
        self.written = bytearray()

    def readinto(self, buf):
        return 0

    def write(self, data):
        self.written += bytes(data)
        return len(data)


def _frames(data):
    p = lc.Parser()
    p.feed(data)
    out = []
    while p.next():
        out.append((p.ftype, bytes(p.buf[p.pos:p.pos + p.n])))
    return out


def _distinct_frame():
    """A telemetry frame whose every numeric value differs from the others."""
    frame = {"kind": "telemetry", "device": "layout-1"}
    for i, key in enumerate(TELEMETRY_KEYS):
        if key not in frame:
            frame[key] = 1000 + 17 * i
    frame["state"] = STATES[3]
    frame["substate"] = SUBSTATES[6]
    frame["faults"] = [FAULTS[1], FAULTS[9]]
    frame["temp_dc"] = -123
    frame["current_ua"] = -4567
    frame["inventory_uas"] = 1 << 40
    return frame


def test_the_wire_format_is_that_of_protocol_version_2():
    # the estimator's five i32 after soc_pm
    assert lc.VERSION == 2
    assert lc.REPLY_FMT == "<HBiBHH" + "IBBiihiiiiiqqqi" + "iiiii" + "iiHI" + "I" * 13
    assert lc.REPLY_SIZE == 162
    names = [field[0] for field in lc.REPLY_FIELDS]
    assert len(set(names)) == len(names)
    assert tuple(names[:len(HEADER)]) == HEADER
    assert tuple(names[-len(lc.LINK_COUNTERS):]) == lc.LINK_COUNTERS


def test_the_telemetry_part_is_the_telemetry_table():
    wire = [("fault_mask" if name == "faults" else name, code)
            for name, code in TELEMETRY_FIELDS if code is not None]
    assert list(lc.REPLY_FIELDS[len(HEADER):len(HEADER) + len(wire)]) == wire
    # only kind and device stay off the wire
    assert [name for name, code in TELEMETRY_FIELDS if code is None] == ["kind", "device"]


def test_send_answer_packs_each_value_into_its_field():
    stream = Capture()
    link = LinkHal(stream, clock=lambda: 0)
    link._rx_seq = 0x1234
    link.setpoint_ua = -1500
    link.relay_closed = True
    link.heartbeat = 4321
    link.record_seq = 777
    link.lost_flag = True
    p = link.parser
    p.rx_bytes, p.frames, p.frame_bytes, p.garbage_bytes, p.bad_header, p.bad_crc, p.truncated = 8, 9, 10, 11, 12, 13, 14
    link.bad_payload, link.replayed, link.skipped, link.link_lost = 15, 16, 17, 18
    link.tx_dropped, link.naks = 19, lc.COUNT_MAX
    frame = _distinct_frame()
    link.begin_answer()
    link.send_answer(frame, True)
    (ftype, payload), = _frames(stream.written)
    assert ftype == lc.T_REPLY
    v = lc.unpack_reply(payload)
    assert set(v) == {field[0] for field in lc.REPLY_FIELDS}
    assert (v["ack"], v["flags"], v["hal_setpoint_ua"], v["relay"], v["heartbeat"], v["record_seq"]) == (
        0x1234, lc.REPLY_TICKED | lc.REPLY_LINK_LOST, -1500, 1, 4321, 777)
    for name, code in TELEMETRY_FIELDS:
        if name == "state":
            assert v[name] == 3
        elif name == "substate":
            assert v[name] == 6
        elif name == "faults":
            assert v["fault_mask"] == (1 << 1) | (1 << 9)
        elif code is not None:
            assert v[name] == frame[name], name
    assert [v[name] for name in lc.LINK_COUNTERS] == list(range(8, 20)) + [lc.COUNT_MAX]


def test_the_twin_rebuilds_the_frame_the_firmware_sent():
    stream = Capture()
    link = LinkHal(stream, clock=lambda: 0)
    link.setpoint_ua = 250
    frame = _distinct_frame()
    link.begin_answer()
    link.send_answer(frame, False)
    (_, payload), = _frames(stream.written)
    ack, flags, setpoint_ua, relay, heartbeat, back, counters = decode_reply(payload, "layout-1")
    assert (ack, flags, setpoint_ua, relay, heartbeat) == (0, 0, 250, False, 0)
    assert back == frame and list(back) == list(TELEMETRY_KEYS)
    assert counters == dict.fromkeys(lc.LINK_COUNTERS, 0)


def test_unpack_reply_refuses_a_payload_of_the_wrong_size():
    assert lc.unpack_reply(bytes(lc.REPLY_SIZE - 1)) is None
    assert lc.unpack_reply(bytes(lc.REPLY_SIZE + 1)) is None
    assert lc.unpack_reply(b"") is None
    v = lc.unpack_reply(struct.pack(lc.REPLY_FMT, *range(len(lc.REPLY_FIELDS))))
    assert list(v.values()) == list(range(len(lc.REPLY_FIELDS)))


def test_the_docs_table_is_reply_fields():
    text = (DOCS / "hil.md").read_text(encoding="utf-8")
    section = text.split("<!-- REPLY fields: name | type -->")[1].split("\n\n")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = [(re.findall(r"`([a-z_]+)`", row.split("|")[1])[0], row.split("|")[2].strip()) for row in rows]
    assert documented == [(name, _DOC_TYPES[code]) for name, code in lc.REPLY_FIELDS]
    assert "(%d bytes)" % lc.REPLY_SIZE in text and "%d bytes." % lc.REPLY_SIZE in text
