# The persistent record: what must survive a power cut.
#
# A fixed-size little-endian struct: a version byte, the FIELDS below in
# order, then a CRC-32 over everything before it. The HAL stores it atomically
# (old or new, never a mix); the CRC still guards against a flash that lies.
#
# FIELDS is the one list of what is persisted: the struct layout, encode(),
# decode() and Record()'s defaults all derive from it. Each part of the
# controller writes and reads its own fields (save_to(record) /
# restore_from(record) on the ledger, formation, protections and outputs; the
# controller keeps the state and the counters of events and writes).
# Changing the table changes the bytes on every board's flash: bump VERSION.
import struct

from .compat import crc32
from .errors import FieldError

VERSION = 1

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
