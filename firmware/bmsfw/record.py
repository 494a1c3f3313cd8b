# The persistent record: what must survive a power cut.
#
# A fixed-size little-endian struct with a version byte and a CRC-32 over
# everything before it. The HAL stores it atomically (old or new, never a
# mix); the CRC still guards against a flash that lies. Charge counters are
# int64 so a product-scale cell fits; names index the tuples in states.py.
import struct

from .compat import crc32
from .errors import FieldError

VERSION = 1

# version, state, substate, resume state, resume substate, flags, fault mask,
# plated, inventory, cycle in, cycle out (int64 µA·ms), lifetime in/out (µAh),
# event seq, writes, cycles, ce_ppm, user cvl/dvl/ccl/dcl (-1: none), then CRC.
_BODY = "<BBBBBBH" + "qqqq" + "II" + "IIII" + "iiii"
_FMT = _BODY + "I"
SIZE = struct.calcsize(_FMT)
_BODY_SIZE = struct.calcsize(_BODY)

# flags
FLAG_PLATEAU_SEEN = 1   # formation saw the Li-S plateau (lithium covers the copper)
FLAG_ALLOY_SEEN = 2     # formation saw the wetting-layer alloy plateau
FLAG_FORMED = 4         # formation verified


class RecordError(FieldError):
    prefix = "record "


class Record:
    """Plain fields; encode() -> bytes, Record.decode(bytes) -> Record."""

    def __init__(self):
        self.state = 0
        self.substate = 0
        self.resume_state = 0
        self.resume_substate = 0
        self.flags = 0
        self.fault_mask = 0
        self.plated_uas = 0
        self.inventory_uas = 0
        self.cycle_in_uas = 0
        self.cycle_out_uas = 0
        self.plated_uah = 0
        self.stripped_uah = 0
        self.event_seq = 0
        self.writes = 0
        self.cycles = 0
        self.ce_ppm = 0
        self.user_cvl_mv = -1
        self.user_dvl_mv = -1
        self.user_ccl_ua = -1
        self.user_dcl_ua = -1
        self._buf = bytearray(SIZE)
        self._body = memoryview(self._buf)[:_BODY_SIZE]   # made once: a save allocates only its bytes

    def encode(self):
        buf = self._buf
        struct.pack_into(
            _BODY, buf, 0, VERSION, self.state, self.substate, self.resume_state,
            self.resume_substate, self.flags, self.fault_mask,
            self.plated_uas, self.inventory_uas, self.cycle_in_uas, self.cycle_out_uas,
            self.plated_uah, self.stripped_uah,
            self.event_seq, self.writes, self.cycles, self.ce_ppm,
            self.user_cvl_mv, self.user_dvl_mv, self.user_ccl_ua, self.user_dcl_ua)
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
        v = struct.unpack_from(_BODY, data, 0)
        rec = cls()
        (_, rec.state, rec.substate, rec.resume_state, rec.resume_substate, rec.flags,
         rec.fault_mask, rec.plated_uas, rec.inventory_uas, rec.cycle_in_uas,
         rec.cycle_out_uas, rec.plated_uah, rec.stripped_uah, rec.event_seq, rec.writes,
         rec.cycles, rec.ce_ppm, rec.user_cvl_mv, rec.user_dvl_mv, rec.user_ccl_ua,
         rec.user_dcl_ua) = v
        return rec
