# The HIL link's framing (docs/hil.md): one frame layout for both directions,
# shared by the firmware (bmsfw.link_hal, on a board or under MicroPython) and
# the twin (twin/hil.py, CPython). The REPLY's layout derives from the
# telemetry frame's field table (bmsfw.telemetry.TELEMETRY_FIELDS).
#
#   offset size  field
#   0      2     start marker A5 5A
#   2      1     protocol version (VERSION)
#   3      1     message type (T_*)
#   4      2     payload length, bytes (<= MAX_PAYLOAD)
#   6      2     sequence number (per sender, +1 per frame, wraps at 2**16)
#   8      2     header CRC: CRC-16/CCITT-FALSE over bytes 2..7
#   10     n     payload
#   10+n   2     frame CRC: the same CRC continued from the header CRC over
#                the payload (so it covers bytes 2..10+n-1 except the header CRC)
#
# All fields little-endian. The header CRC lets the parser reject a false start
# marker in garbage at once, without waiting for a bogus length's worth of
# bytes. Buffers are allocated once (Parser.__init__, the caller's tx buffer);
# payloads are packed in place with struct.pack_into and read with
# struct.unpack_from.
import struct

from .compat import const
from .errors import FieldError
from .telemetry import TELEMETRY_FIELDS

VERSION = const(2)
SOF0 = const(0xA5)
SOF1 = const(0x5A)
HEADER_SIZE = const(10)
TRAILER_SIZE = const(2)
OVERHEAD = const(12)
MAX_PAYLOAD = const(512)
MAX_FRAME = const(524)          # OVERHEAD + MAX_PAYLOAD
FRAME_GAP_MS = const(20)        # a frame quiet this long after its last byte is truncated (firmware)
COUNT_MAX = const(0x3FFFFFFF)   # counters saturate here: a small int on a 32-bit board, u32 on the wire

# The message types, defined once: (name, sender) in type order from 1 (docs/hil.md,
# "Messages"). The T_* constants below are these positions (MicroPython's const()
# wants a literal; tests/hil/test_link_codec.py checks they agree); TYPE_NAMES,
# MAX_TYPE and each end's list of what it may receive derive from the table. A new
# message is one row here, one T_* line and its handler at the receiving end.
FW = "firmware"
TWIN = "twin"
MESSAGES = (
    ("HELLO", FW),              # boot or link re-sync; asks for the record
    ("TICK", TWIN),             # simulated time, ADC counts [, boot block]
    ("REPLY", FW),              # setpoint, relay, heartbeat, telemetry, record_seq, link counters
    ("EVENT", FW),              # one event frame as JSON
    ("SAVE_RECORD", FW),        # record_seq, then the persistent record to store
    ("COMMAND", TWIN),          # {"id", "name", "args"} as JSON
    ("COMMAND_RESULT", FW),     # {"id", "ok", "code"} as JSON
    ("NAK", FW),                # a frame from the twin came damaged: send again now
    ("END", TWIN),              # the session is over (twin), acknowledged by the same (firmware)
    ("REQUEST", TWIN),          # the duty request current_ua (the cycler's), before the TICK it is for
)
T_HELLO = const(1)
T_TICK = const(2)
T_REPLY = const(3)
T_EVENT = const(4)
T_SAVE_RECORD = const(5)
T_COMMAND = const(6)
T_COMMAND_RESULT = const(7)
T_NAK = const(8)
T_END = const(9)
T_REQUEST = const(10)
MAX_TYPE = len(MESSAGES)
TYPE_NAMES = ("",) + tuple(row[0] for row in MESSAGES)
# what each end takes: the other end's messages, and END both ways (the firmware acks it)
TO_FIRMWARE = tuple(i + 1 for i in range(MAX_TYPE) if MESSAGES[i][1] == TWIN)
TO_TWIN = tuple(i + 1 for i in range(MAX_TYPE) if MESSAGES[i][1] == FW) + (T_END,)

# HELLO flags
HELLO_WANT_RECORD = const(1)    # the firmware just booted: send the record in the answering TICK

# TICK flags
TICK_BOOT = const(1)            # a boot block follows (answer to a HELLO): seq re-sync
TICK_RETRY = const(2)           # retransmission of the previous TICK (same seq)
TICK_WANT_RECORD = const(4)     # the twin lacks the firmware's latest record: send it after the answer

# Payload layouts (struct formats, little-endian)
TICK_FMT = "<IHHHB"             # t_ms, VCELL, ISHUNT, TCELL counts, flags
TICK_SIZE = struct.calcsize(TICK_FMT)
BOOT_FMT = "<HBHHH"             # seq of the HELLO answered, adc_bits, adc_vref_mv, record_seq, record length
BOOT_SIZE = struct.calcsize(BOOT_FMT)
NO_RECORD = const(0xFFFF)
HELLO_FMT = "<BB"               # flags, length of the device id that follows (utf-8)
HELLO_SIZE = struct.calcsize(HELLO_FMT)
MAX_DEVICE_ID = const(64)       # bytes of device id a HELLO carries
RECORD_SEQ_SIZE = const(2)      # SAVE_RECORD: record_seq u16, then the record
NAK_FMT = "<H"                  # NAK: the seq of the last frame taken from the twin
REQUEST_FMT = "<i"              # REQUEST: current_ua (+ charge, - discharge, 0 rest)
REQUEST_SIZE = const(4)
REPLY_TICKED = const(1)         # the controller ticked on this TICK (telemetry is a tick's frame)
REPLY_LINK_LOST = const(2)      # the firmware declared the link lost since the last REPLY
# The firmware's link counters, in the REPLY as u32 (saturating at COUNT_MAX).
# rx_bytes = rx_frame_bytes (of the rx_frames good frames) + garbage_bytes +
# bad_header + bad_crc + truncated + bytes pending: every byte read is accounted for.
LINK_COUNTERS = ("rx_bytes", "rx_frames", "rx_frame_bytes", "garbage_bytes", "bad_header", "bad_crc", "truncated",
                 "bad_payload", "replayed", "skipped", "link_lost", "tx_dropped", "naks")


def sat(n):
    """A counter's value held at COUNT_MAX."""
    return n if n < COUNT_MAX else COUNT_MAX


def _reply_fields():
    # The link's own header: the seq of the TICK answered, REPLY_* flags, the
    # outputs the controller gave its HAL (the twin applies these), the
    # watchdog feeds, the number of the latest record saved. Then the telemetry
    # frame as bmsfw.telemetry types it (its faults list as the mask
    # `fault_mask`), then the link counters, u32.
    fields = [("ack", "H"), ("flags", "B"), ("hal_setpoint_ua", "i"), ("relay", "B"),
              ("heartbeat", "H"), ("record_seq", "H")]
    for name, code in TELEMETRY_FIELDS:
        if code is not None:
            fields.append(("fault_mask" if name == "faults" else name, code))
    for name in LINK_COUNTERS:
        fields.append((name, "I"))
    return tuple(fields)


# REPLY: (name, struct code) in wire order (docs/hil.md has the table).
REPLY_FIELDS = _reply_fields()
REPLY_FMT = "<" + "".join([field[1] for field in REPLY_FIELDS])
REPLY_SIZE = struct.calcsize(REPLY_FMT)
_REPLY_NAMES = tuple(field[0] for field in REPLY_FIELDS)


def unpack_reply(payload):
    """A REPLY payload as {name: int} (REPLY_FIELDS), or None if it is not
    REPLY_SIZE bytes. The values are not checked (indices, flags)."""
    if len(payload) != REPLY_SIZE:
        return None
    return dict(zip(_REPLY_NAMES, struct.unpack_from(REPLY_FMT, payload, 0)))

_HDR_FMT = "<BBBBHH"            # SOF0, SOF1, version, type, length, seq


class LinkError(FieldError):
    """A frame that cannot be built: `field` names what is wrong."""

    prefix = "link "


# --- CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout) --
# check value: crc16(b"123456789") == 0x29B1. A 256-entry table (512 bytes as
# an array of H) makes it one lookup per byte, cheap enough for a board at 100
# ticks/s; CPython's binascii.crc_hqx computes the same CRC in C, so the twin
# uses that when it exists (MicroPython's binascii has no crc_hqx).
def _make_table():
    import array

    table = array.array("H", bytes(512))
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table[i] = crc & 0xFFFF
    return table


_TABLE = _make_table()


def crc16_py(buf, start, end, crc=0xFFFF):
    """CRC-16/CCITT-FALSE of buf[start:end], continued from `crc` (pure Python)."""
    table = _TABLE
    for i in range(start, end):
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ buf[i]]
    return crc


def _pick_crc16():
    import binascii

    hqx = getattr(binascii, "crc_hqx", None)
    if hqx is None:
        return crc16_py

    def crc16_c(buf, start, end, crc=0xFFFF):
        return hqx(memoryview(buf)[start:end], crc)

    return crc16_c


crc16 = _pick_crc16()


# --- building a frame -----------------------------------------------------------
def finish_frame(buf, off, ftype, seq, n_payload):
    """The payload is already at buf[off + HEADER_SIZE:]: write the header and
    the CRCs around it. Returns the offset just past the frame."""
    if n_payload < 0 or n_payload > MAX_PAYLOAD:
        raise LinkError("length", n_payload, "payload must be 0..%d bytes" % MAX_PAYLOAD)
    end = off + HEADER_SIZE + n_payload
    if end + TRAILER_SIZE > len(buf):
        raise LinkError("length", n_payload, "does not fit the tx buffer")
    struct.pack_into(_HDR_FMT, buf, off, SOF0, SOF1, VERSION, ftype, n_payload, seq & 0xFFFF)
    hcrc = crc16(buf, off + 2, off + 8)
    struct.pack_into("<H", buf, off + 8, hcrc)
    struct.pack_into("<H", buf, end, crc16(buf, off + HEADER_SIZE, end, hcrc))
    return end + TRAILER_SIZE


def put_bytes(buf, off, data):
    """Copy `data` into buf at `off` (a payload body); returns the offset after it."""
    n = len(data)
    if off + n + TRAILER_SIZE > len(buf):
        raise LinkError("length", n, "does not fit the tx buffer")
    buf[off:off + n] = data
    return off + n


def seq_delta(new, last):
    """Signed distance from `last` to `new` modulo 2**16: 1 is the next frame,
    0 a repeat, negative an old (replayed) one, > 1 a skip."""
    return ((new - last + 0x8000) & 0xFFFF) - 0x8000


# --- parsing -------------------------------------------------------------------
class Parser:
    """Finds frames in a byte stream. feed() bytes as they come, then call
    next() until it returns False; after a True, ftype/seq/pos/n describe the
    frame and buf[pos:pos + n] is its payload (valid until the next call).

    The buffer holds `read_max` bytes (the most the owner reads at once) on
    top of a whole frame: once next() has returned False at most an unfinished
    frame is pending, so a read of up to read_max bytes always fits and no good
    frame in a backlog is ever dropped. (A caller that feeds more than that
    loses the oldest bytes, counted as garbage.)

    Every byte fed is counted once (rx_bytes): in a good frame (frame_bytes,
    rx_frames frames), garbage_bytes (between frames), one per bad_header (a
    start marker whose header fails its CRC, version, type or length),
    bad_crc (a whole frame whose CRC fails) and truncated (a frame cut short:
    expire() after the stream went quiet), or still pending(). On any failure
    the parser drops one byte and hunts for the next start marker, so a good
    frame hidden behind a false start is still found. Counters saturate at
    COUNT_MAX."""

    def __init__(self, read_max=MAX_FRAME, max_payload=MAX_PAYLOAD, max_type=MAX_TYPE):
        self.max_payload = max_payload
        self.max_type = max_type
        self.read_max = read_max
        self.buf = bytearray(read_max + max_payload + OVERHEAD)
        self.start = 0
        self.end = 0
        self.ftype = 0
        self.seq = 0
        self.pos = 0
        self.n = 0
        self.rx_bytes = 0
        self.frames = 0
        self.frame_bytes = 0
        self.garbage_bytes = 0
        self.bad_header = 0
        self.bad_crc = 0
        self.truncated = 0

    def _room(self, n):
        # Make room for n more bytes at the end; only a caller feeding more than
        # read_max with frames unparsed loses anything (oldest first, as garbage).
        if self.end + n > len(self.buf):
            self._compact()
            if self.end + n > len(self.buf):
                drop = self.end + n - len(self.buf)
                if drop > self.end - self.start:
                    drop = self.end - self.start
                self.garbage_bytes = sat(self.garbage_bytes + drop)
                self.start += drop
                self._compact()

    def feed(self, data):
        """Append bytes (up to read_max after next() returned False: nothing lost)."""
        n = len(data)
        self.rx_bytes = sat(self.rx_bytes + n)
        room = len(self.buf)
        if n > room:
            self.garbage_bytes = sat(self.garbage_bytes + n - room)
            data = data[n - room:]
            n = room
        self._room(n)
        self.buf[self.end:self.end + n] = data
        self.end += n

    def feed_from(self, src, n):
        """Append src[0:n] without slicing it (no allocation): the firmware's
        read chunk goes in this way."""
        self.rx_bytes = sat(self.rx_bytes + n)
        self._room(n)
        buf = self.buf
        e = self.end
        for i in range(n):
            buf[e + i] = src[i]
        self.end = e + n

    def pending(self):
        return self.end - self.start

    def _compact(self):
        s = self.start
        if s == 0:
            return
        buf = self.buf
        n = self.end - s
        for i in range(n):
            buf[i] = buf[s + i]
        self.start = 0
        self.end = n

    def next(self):
        buf = self.buf
        while True:
            s = self.start
            e = self.end
            # hunt for the start marker
            while s < e and buf[s] != SOF0:
                s += 1
            if s > self.start:
                self.garbage_bytes = sat(self.garbage_bytes + s - self.start)
                self.start = s
            if e - s < 2:
                if s == e:
                    self.start = self.end = 0
                return False
            if buf[s + 1] != SOF1:
                self.garbage_bytes = sat(self.garbage_bytes + 1)
                self.start = s + 1
                continue
            if e - s < HEADER_SIZE:
                return False
            # Fields read byte by byte: unpack_from would allocate a tuple per frame.
            ftype = buf[s + 3]
            n = buf[s + 4] | buf[s + 5] << 8
            hcrc = buf[s + 8] | buf[s + 9] << 8
            if (buf[s + 2] != VERSION or ftype < 1 or ftype > self.max_type or n > self.max_payload
                    or crc16(buf, s + 2, s + 8) != hcrc):
                self.bad_header = sat(self.bad_header + 1)
                self.start = s + 1
                continue
            total = HEADER_SIZE + n + TRAILER_SIZE
            if e - s < total:
                return False
            p = s + HEADER_SIZE
            if crc16(buf, p, p + n, hcrc) != buf[p + n] | buf[p + n + 1] << 8:
                self.bad_crc = sat(self.bad_crc + 1)
                self.start = s + 1
                continue
            self.start = s + total
            self.ftype = ftype
            self.seq = buf[s + 6] | buf[s + 7] << 8
            self.pos = p
            self.n = n
            self.frames = sat(self.frames + 1)
            self.frame_bytes = sat(self.frame_bytes + total)
            return True

    def expire(self):
        """The stream went quiet with bytes pending: the frame they start will
        never complete. Drop them (one truncated frame), keep hunting after
        its start marker. Returns True if anything was dropped."""
        if self.end == self.start:
            return False
        s = self.start
        if self.end - s >= 2 and self.buf[s] == SOF0 and self.buf[s + 1] == SOF1:
            self.truncated = sat(self.truncated + 1)
            self.start = s + 1
        else:
            self.garbage_bytes = sat(self.garbage_bytes + self.end - s)
            self.start = self.end
        return True

    def counters(self):
        return (self.rx_bytes, self.frames, self.frame_bytes, self.garbage_bytes, self.bad_header, self.bad_crc,
                self.truncated)
