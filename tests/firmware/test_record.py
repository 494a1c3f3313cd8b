# bmsfw.record: round trip, and refusal of a bad CRC, version or length.
# Run: .venv/bin/python -m pytest tests/firmware/test_record.py -q
from fakes import raises

from bmsfw import record
from bmsfw.record import Record, RecordError


def _full():
    r = Record()
    r.state = 2
    r.substate = 2
    r.resume_state = 2
    r.resume_substate = 2
    r.flags = record.FLAG_PLATEAU_SEEN
    r.fault_mask = 0x41
    r.plated_uas = 720000000
    r.inventory_uas = -5
    r.cycle_in_uas = 1 << 40          # int64 fields hold a product-scale cell
    r.cycle_out_uas = 3
    r.plated_uah = 123456
    r.stripped_uah = 654321
    r.event_seq = 4000000000
    r.writes = 411
    r.cycles = 100
    r.ce_ppm = 998000
    r.user_cvl_mv = 2500
    r.user_dvl_mv = -1
    r.user_ccl_ua = 50
    r.user_dcl_ua = -1
    return r


def test_round_trip_keeps_every_field():
    r = _full()
    data = r.encode()
    assert isinstance(data, bytes) and len(data) == record.SIZE
    back = Record.decode(data)
    for name in ("state", "substate", "resume_state", "resume_substate", "flags", "fault_mask",
                 "plated_uas", "inventory_uas", "cycle_in_uas", "cycle_out_uas", "plated_uah",
                 "stripped_uah", "event_seq", "writes", "cycles", "ce_ppm", "user_cvl_mv",
                 "user_dvl_mv", "user_ccl_ua", "user_dcl_ua"):
        assert getattr(back, name) == getattr(r, name), name


def test_encode_is_deterministic_and_version_first():
    data = _full().encode()
    assert data == _full().encode()
    assert data[0] == record.VERSION


def test_bad_crc_is_refused():
    data = bytearray(_full().encode())
    data[10] ^= 0x01                  # one bit flipped in plated_uas
    e = raises(RecordError, Record.decode, bytes(data))
    assert e.field == "crc32"


def test_bad_version_is_refused():
    data = bytearray(_full().encode())
    data[0] = record.VERSION + 1
    e = raises(RecordError, Record.decode, bytes(data))
    assert e.field == "version"


def test_truncated_and_padded_are_refused():
    data = _full().encode()
    assert raises(RecordError, Record.decode, data[:-1]).field == "length"
    assert raises(RecordError, Record.decode, data + b"\x00").field == "length"
    assert raises(RecordError, Record.decode, b"").field == "length"


def test_wrong_type_is_refused():
    assert raises(RecordError, Record.decode, "text").field == "data"
    assert raises(RecordError, Record.decode, None).field == "data"
