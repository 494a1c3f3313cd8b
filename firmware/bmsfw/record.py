# The persistent record: what must survive a power cut.
#
# A fixed-size little-endian struct: a version byte, the FIELDS below in
# order, then a CRC-32 over everything before it. The HAL stores it atomically
# (old or new, never a mix); the CRC still guards against a flash that lies.
#
# FIELDS is the one list of what is persisted: the struct layout, encode(),
# decode() and Record()'s defaults all derive from it. Each part of the
# controller owns its fields (Store): the ledger and outputs list theirs
# (RECORD_FIELDS, attributes of the same names); formation (the flags),
# protections (the fault mask) and the controller (the states, the event
# count) convert theirs in save_to(record) / restore_from(record).
# Changing the table changes the bytes on every board's flash: bump VERSION.
import struct

from .compat import crc32
from .errors import FieldError
from .states import FAULTS, STATES, SUBSTATES

VERSION = 2

FIELDS = (
    # name, struct code, default
    ("state", "B", 0),              # index into states.STATES
    ("substate", "B", 0),           # index into states.SUBSTATES
    ("resume_state", "B", 0),       # the operating state to resume after FAULT/SAFE
    ("resume_substate", "B", 0),
    ("flags", "B", 0),              # FLAG_* below
    ("fault_mask", "H", 0),         # latched faults, bit i = states.FAULTS[i]
    ("plated_uas", "q", 0),         # int64 µA·ms, so a product-scale cell fits
    ("inventory_uas", "q", 0),
    ("cycle_in_uas", "q", 0),
    ("cycle_out_uas", "q", 0),
    ("plated_uah", "I", 0),         # lifetime charge in, whole µAh
    ("stripped_uah", "I", 0),       # lifetime charge out, whole µAh
    ("event_seq", "I", 0),
    ("writes", "I", 0),
    ("cycles", "I", 0),
    ("ce_ppm", "I", 0),
    ("user_cvl_mv", "i", -1),       # user-tightened limits, -1: none
    ("user_dvl_mv", "i", -1),
    ("user_ccl_ua", "i", -1),
    ("user_dcl_ua", "i", -1),
    # bmsfw.estimator (nAh, ppm)
    ("li_eu", "i", 0),
    ("bound_eu", "i", 0),
    ("cath_eu", "i", 0),
    ("loss_ppm", "i", 0),
    ("loss_unc_ppm", "i", 0),
    ("knees", "I", 0),
    ("qin_eu", "i", 0),
)


def _layout():
    """The little-endian struct format of each code, each field's offset, and
    the body size (version byte and fields)."""
    fmts = {}
    offsets = []
    off = 1                                     # after the version byte
    for field in FIELDS:
        code = field[1]
        if code not in fmts:
            fmts[code] = "<" + code             # one string per code, not per field
        offsets.append(off)
        off += struct.calcsize(fmts[code])
    return fmts, tuple(offsets), off


_FMT, _OFFSETS, _BODY_SIZE = _layout()
del _layout                                     # run once: its code need not stay in RAM
SIZE = _BODY_SIZE + 4                           # + CRC-32

# flags
FLAG_PLATEAU_SEEN = 1   # formation saw the Li-S plateau (lithium covers the copper)
FLAG_ALLOY_SEEN = 2     # formation saw the wetting-layer alloy plateau
FLAG_FORMED = 4         # formation verified


class RecordError(FieldError):
    prefix = "record "


class Record:
    """One attribute per FIELDS name; encode() -> bytes, Record.decode(bytes) -> Record."""

    def __init__(self):
        for field in FIELDS:
            setattr(self, field[0], field[2])
        self._buf = bytearray(SIZE)
        self._body = memoryview(self._buf)[:_BODY_SIZE]   # made once: a save allocates only its bytes

    def encode(self):
        buf = self._buf
        buf[0] = VERSION
        for i in range(len(FIELDS)):
            field = FIELDS[i]
            struct.pack_into(_FMT[field[1]], buf, _OFFSETS[i], getattr(self, field[0]))
        struct.pack_into("<I", buf, _BODY_SIZE, crc32(self._body) & 0xFFFFFFFF)
        return bytes(buf)

    @classmethod
    def decode(cls, data):
        if not isinstance(data, (bytes, bytearray)):
            raise RecordError("data", type(data).__name__, "must be bytes")
        if len(data) != SIZE:
            raise RecordError("length", len(data), "must be %d bytes" % SIZE)
        if data[0] != VERSION:
            raise RecordError("version", data[0], "unsupported (want %d)" % VERSION)
        want = struct.unpack_from("<I", data, _BODY_SIZE)[0]
        got = crc32(bytes(data[:_BODY_SIZE])) & 0xFFFFFFFF
        if want != got:
            raise RecordError("crc32", want, "does not match the body (0x%08x)" % got)
        rec = cls()
        for i in range(len(FIELDS)):
            field = FIELDS[i]
            setattr(rec, field[0], struct.unpack_from(_FMT[field[1]], data, _OFFSETS[i])[0])
        return rec


class Store:
    """The record on the HAL (its flash): read once at construction, written
    whole. Each part holds its own fields: of the `named` parts the store
    copies the attributes listed in part.RECORD_FIELDS (named as the fields);
    the `converting` parts write and read theirs (save_to(rec),
    restore_from(rec)). The store keeps the count of writes (persisted too).
    A record that fails to decode is treated as absent: status INVALID, and
    `error` says why (the controller reports it in its first STATE event)."""

    def __init__(self, hal, named, converting):
        self._hal = hal
        self._named = named
        self._converting = converting
        self._rec = Record()
        self.status = "ABSENT"          # ABSENT, OK or INVALID
        self.error = ""
        self.writes = 0

    def load(self):
        data = self._hal.load_record()
        if data is None:
            return
        try:
            rec = check_indices(Record.decode(data))
        except RecordError as e:
            self.status = "INVALID"
            self.error = str(e)
            return
        self.status = "OK"
        self._rec = rec
        self.writes = rec.writes
        for part in self._named:
            _copy(rec, part, part.RECORD_FIELDS)
        for part in self._converting:
            part.restore_from(rec)

    def fill(self, rec):
        """Everything that must survive a power cut, into `rec`."""
        rec.writes = self.writes
        for part in self._named:
            _copy(part, rec, part.RECORD_FIELDS)
        for part in self._converting:
            part.save_to(rec)

    def save(self):
        self.writes += 1
        self.fill(self._rec)
        self._hal.save_record(self._rec.encode())


def _copy(src, dst, names):
    for name in names:
        setattr(dst, name, getattr(src, name))


def check_indices(rec):
    """`rec` if its state and fault figures name states.py's tuples (a record
    of another firmware with the same VERSION may not), else RecordError."""
    if rec.state >= len(STATES) or rec.resume_state >= len(STATES):
        raise RecordError("state", rec.state, "not a state index")
    if rec.substate >= len(SUBSTATES) or rec.resume_substate >= len(SUBSTATES):
        raise RecordError("substate", rec.substate, "not a substate index")
    if rec.fault_mask >> len(FAULTS):
        raise RecordError("fault_mask", rec.fault_mask, "unknown fault bits")
    return rec
