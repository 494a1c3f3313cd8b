# bmsfw.record: round trip, the bytes of a known record (the layout on every
# board's flash), every field owned by one part of the controller, and refusal
# of a bad CRC, version or length.
# Run: .venv/bin/python -m pytest tests/firmware/test_record.py -q
from binascii import unhexlify

from fakes import FakeHal, raises, small_cell, small_config

from bmsfw import record
from bmsfw.controller import Controller
from bmsfw.record import Record, RecordError

# _full().encode() as VERSION 1 wrote it before the field table existed
# (hand-written struct "<BBBBBBH" "qqqq" "II" "IIII" "iiii", then CRC-32).
FULL_V1_HEX = ("01020202020141000054ea2a00000000fbffffffffffffff0000000000010000"
               "030000000000000040e20100f1fb090000286bee9b01000064000000703a0f00"
               "c4090000ffffffff32000000ffffffffacd8b95c")


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


def _names():
    return [field[0] for field in record.FIELDS]


def test_round_trip_keeps_every_field():
    r = _full()
    data = r.encode()
    assert isinstance(data, bytes) and len(data) == record.SIZE
    back = Record.decode(data)
    assert len(_names()) == 27
    for name in ("state", "substate", "resume_state", "resume_substate", "flags", "fault_mask",
                 "plated_uas", "inventory_uas", "cycle_in_uas", "cycle_out_uas", "plated_uah",
                 "stripped_uah", "event_seq", "writes", "cycles", "ce_ppm", "user_cvl_mv",
                 "user_dvl_mv", "user_ccl_ua", "user_dcl_ua", "li_eu", "bound_eu", "cath_eu",
                 "loss_ppm", "loss_unc_ppm", "knees", "qin_eu"):
        assert getattr(back, name) == getattr(r, name), name


def test_the_bytes_of_a_known_record_are_those_of_version_2():
    # version 2 = version 1's bytes, then the estimator's seven 32-bit fields
    assert record.VERSION == 2 and record.SIZE == 84 + 28
    v1_body = unhexlify(FULL_V1_HEX)[1:-4]
    assert _full().encode()[1:80] == v1_body
    data = _full().encode()
    assert Record.decode(data).encode() == data
    # the defaults: everything 0, the four user limits -1 (none), the estimator's 0
    fresh = Record().encode()
    assert fresh[:-4] == unhexlify("02" + "00" * 63 + "ff" * 16 + "00" * 28)
    for field in record.FIELDS:
        assert getattr(Record(), field[0]) == field[2], field


def test_every_field_is_written_by_the_controller_and_read_back():
    # A field added to the table that no part saves stays at the sentinel; one
    # that is saved but not restored comes back as its default.
    hal = FakeHal(cell=small_cell(), record=_consistent_record())
    ctrl = Controller(hal, small_config(), "test-0001")
    rec = Record()
    sentinel = object()
    for name in _names():
        setattr(rec, name, sentinel)
    ctrl.store.fill(rec)
    for name in _names():
        assert getattr(rec, name) is not sentinel, name
    # state and substate are the present ones (BOOT until detection): the rest
    # is what the loaded record said.
    want = Record.decode(_consistent_record())
    for name in _names():
        if name not in ("state", "substate"):
            assert getattr(rec, name) == getattr(want, name), name
    assert rec.state == 0 and rec.substate == 0


def _consistent_record():
    """A record with a distinct, non-default, valid value in every field."""
    r = _full()
    r.state = 3                       # READY ...
    r.substate = 6                    # ... RESTING
    r.resume_state = 3
    r.resume_substate = 6
    r.flags = record.FLAG_PLATEAU_SEEN | record.FLAG_ALLOY_SEEN | record.FLAG_FORMED
    r.user_dvl_mv = 2100
    r.user_dcl_ua = 60
    return r.encode()


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


def test_the_parts_named_fields_are_record_fields_they_hold():
    ctrl = Controller(FakeHal(), small_config(), "test-0001")
    owned = []
    for name in ctrl.outputs.RECORD_FIELDS:
        assert name in _names() and hasattr(ctrl.outputs, name), name
        owned.append(name)
    # the ledger converts its charge pairs: save_to writes exactly its RECORD_FIELDS
    led = ctrl.ledger
    led.add(1234, 1000)
    rec = Record()
    led.save_to(rec)
    written = [name for name in _names() if getattr(rec, name) != getattr(Record(), name)]
    assert set(written) <= set(led.RECORD_FIELDS) and "inventory_uas" in written
    assert rec.inventory_uas == led.uas("inventory") == 1234000
    for name in led.RECORD_FIELDS:
        assert name in _names(), name
        owned.append(name)
    assert len(set(owned)) == len(owned)
