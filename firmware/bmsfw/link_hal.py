# The HIL link HAL: the controller's hardware is the twin on a PC, reached
# over any byte stream (docs/hil.md).
#
# The stream is anything with readinto(buf) -> n (0 or None when nothing came
# within the stream's own short timeout) and write(buf): machine.UART on a
# board (created with a timeout of a few ms), a pty or stdin/stdout on a PC
# (bmsfw/link_main.py). Optional attribute `eof`: True once the stream can
# never deliver again (the other end closed).
#
# What each HAL call means here:
#   ticks_ms()       the simulated time of the last TICK
#   adc_read(ch)     that TICK's raw counts (the twin board's latched scan)
#   adc_bits/vref    from the boot TICK (the twin's board description)
#   set_current_ua / set_relay   remembered, sent in every REPLY
#   load_record()    the record the twin sent in the boot TICK (its "flash")
#   save_record(b)   a SAVE_RECORD frame to the twin, numbered (record_seq);
#                    the latest is kept and sent again when the twin asks
#   feed_watchdog()  local: the heartbeat counter in the REPLY, and the
#                    board's own watchdog if one was given
#
# The frames of one tick's answer (SAVE_RECORD, EVENTs, REPLY) are built in one
# preallocated buffer and written with one write(); the buffer is kept, so a
# TICK retransmitted by the twin (flag TICK_RETRY, same seq) is answered with
# the very same bytes without ticking the controller again.
# Its size (~450 lines) is that one job, the HAL over the link: each HAL call,
# each message it takes (TICK, COMMAND, REQUEST, END) and the answer's framing
# share one preallocated buffer and its counters; the serve loop is link_serve.py.
import json
import struct

from . import link_codec as lc
from .compat import const, ticks_add, ticks_diff, ticks_ms
from .hal import ISHUNT, TCELL, VCELL, Hal
from .states import FAULTS, STATES, SUBSTATES

# what poll() found
NOTHING = const(0)
TICK = const(1)
COMMAND = const(2)
END = const(3)
REQUEST = const(4)

HELLO_MS = 500                  # HELLO repeat while waiting for the twin (boot, lost link)
NAK_MIN_MS = 10                 # at most one NAK per this long: garbage cannot make us flood
_RX_CHUNK = const(256)
TX_BYTES = 2048                 # a tick's answer: a record, a few events, the REPLY


class LinkHal(Hal):
    def __init__(self, stream, watchdog=None, clock=None, tx_bytes=TX_BYTES, frame_gap_ms=lc.FRAME_GAP_MS):
        self.stream = stream
        self.watchdog = watchdog
        self._clock_ms = ticks_ms if clock is None else clock
        self.frame_gap_ms = frame_gap_ms
        self.parser = lc.Parser(_RX_CHUNK)
        self._rx = bytearray(_RX_CHUNK)
        self._tx = bytearray(tx_bytes)
        self._txmv = memoryview(self._tx)
        self._txn = 0
        self._view = self._txmv[:0]
        self._view_n = 0
        self._cmdbuf = bytearray(lc.MAX_FRAME)
        # the latest record's SAVE_RECORD payload (record_seq, bytes), kept for the
        # twin's TICK_WANT_RECORD; its frame is built around it when sent again
        self._recbuf = bytearray(lc.MAX_FRAME)
        self._rec_n = 0
        self.record_seq = 0             # number of the latest record saved (the twin's numbering at boot)
        self.want_record = False        # the last TICK asked for the latest record
        self._seq = 0                   # next sequence number we send
        self._rx_seq = 0                # last TICK seq accepted
        self._hello_seq = -1            # seq of our latest HELLO (a boot TICK must echo it)
        self.synced = False             # a boot TICK has been accepted (seq tracking on)
        # the last TICK
        self.t_ms = 0
        self.counts = [0, 0, 0]
        self.bits = 16
        self.vref_mv = 4096
        self.record = None
        self.boot_ticks = 0
        # outputs and liveness
        self.setpoint_ua = 0
        self.relay_closed = False
        self.heartbeat = 0
        self.last_tick_ms = self._clock_ms()
        self._last_byte_ms = self.last_tick_ms
        # link counters beyond the parser's (LINK_COUNTERS)
        self.bad_payload = 0            # CRC-valid frames we cannot use (malformed, wrong direction)
        self.replayed = 0
        self.skipped = 0
        self.link_lost = 0
        self.tx_dropped = 0             # frames that did not fit a transmit buffer (never raised)
        self.naks = 0
        self._nak_ms = ticks_add(self.last_tick_ms, -NAK_MIN_MS)    # ticks wrap: never plain arithmetic
        self._damaged = 0               # parser bad_crc + truncated when we last looked
        self.retries_answered = 0
        self.lost_flag = False
        self.ended = False              # the twin ended the session (END)
        # the last COMMAND received (poll() returned COMMAND)
        self.cmd_id = 0
        self.cmd_name = ""
        self.cmd_args = None
        self.request_ua = 0             # the last REQUEST received (poll() returned REQUEST)

    # ------------------------------------------------------------------ HAL
    def adc_read(self, channel):
        if channel != VCELL and channel != ISHUNT and channel != TCELL:
            raise lc.LinkError("channel", channel, "not VCELL, ISHUNT or TCELL")
        return self.counts[channel]

    def adc_bits(self):
        return self.bits

    def adc_vref_mv(self):
        return self.vref_mv

    def set_current_ua(self, current_ua):
        self.setpoint_ua = current_ua

    def set_relay(self, closed):
        self.relay_closed = bool(closed)

    def ticks_ms(self):
        return self.t_ms

    def load_record(self):
        return self.record

    def save_record(self, data):
        if not isinstance(data, (bytes, bytearray)):
            raise lc.LinkError("record", type(data).__name__, "must be bytes")
        n = len(data) + lc.RECORD_SEQ_SIZE
        if n > lc.MAX_PAYLOAD:
            self.tx_dropped = lc.sat(self.tx_dropped + 1)
            return
        self.record_seq = (self.record_seq + 1) & 0xFFFF
        rec = self._recbuf
        struct.pack_into("<H", rec, lc.HEADER_SIZE, self.record_seq)
        lc.put_bytes(rec, lc.HEADER_SIZE + lc.RECORD_SEQ_SIZE, data)
        self._rec_n = n
        off = self._txn
        if off + lc.OVERHEAD + n + lc.OVERHEAD + lc.REPLY_SIZE > len(self._tx):
            # no room this tick: the REPLY's record_seq tells the twin, which asks again
            self.tx_dropped = lc.sat(self.tx_dropped + 1)
            return
        struct.pack_into("<H", self._tx, off + lc.HEADER_SIZE, self.record_seq)
        lc.put_bytes(self._tx, off + lc.HEADER_SIZE + lc.RECORD_SEQ_SIZE, data)
        self._txn = lc.finish_frame(self._tx, off, lc.T_SAVE_RECORD, self._same_seq(), n)

    def send_latest_record(self):
        """The latest record again, as its own SAVE_RECORD frame (TICK_WANT_RECORD)."""
        self.want_record = False
        if self._rec_n:
            n = lc.finish_frame(self._recbuf, 0, lc.T_SAVE_RECORD, self._same_seq(), self._rec_n)
            self.stream.write(memoryview(self._recbuf)[:n])

    def feed_watchdog(self):
        self.heartbeat = (self.heartbeat + 1) & 0xFFFF
        if self.watchdog is not None:
            self.watchdog.feed()

    # ------------------------------------------------------------------ sending
    def _next_seq(self):
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        return seq

    def _same_seq(self):
        # SAVE_RECORD (numbered itself), NAK and END carry the seq of the last
        # frame sent and use no number of their own: the twin takes them whatever
        # their seq and they never move its seq, so a retransmitted answer after
        # them is not taken for a replay.
        return (self._seq - 1) & 0xFFFF

    def begin_answer(self):
        """Start the next tick's answer (the previous one is forgotten)."""
        self._txn = 0

    def hello(self, want_record, device_id):
        """Ask the twin for a boot TICK (at boot, and while the link is lost)."""
        buf = self._cmdbuf
        did = device_id.encode()[:lc.MAX_DEVICE_ID]
        struct.pack_into(lc.HELLO_FMT, buf, lc.HEADER_SIZE,
                         lc.HELLO_WANT_RECORD if want_record else 0, len(did))
        end = lc.put_bytes(buf, lc.HEADER_SIZE + lc.HELLO_SIZE, did)
        self._hello_seq = self._next_seq()
        n = lc.finish_frame(buf, 0, lc.T_HELLO, self._hello_seq, end - lc.HEADER_SIZE)
        self.stream.write(memoryview(buf)[:n])

    def add_event(self, event):
        data = json.dumps(event).encode()
        off = self._txn
        if len(data) > lc.MAX_PAYLOAD or off + lc.OVERHEAD + len(data) + lc.OVERHEAD + lc.REPLY_SIZE > len(self._tx):
            self.tx_dropped = lc.sat(self.tx_dropped + 1)
            return False        # no room left this tick: the twin sees the event_seq gap
        end = lc.put_bytes(self._tx, off + lc.HEADER_SIZE, data)
        self._txn = lc.finish_frame(self._tx, off, lc.T_EVENT, self._next_seq(),
                                    end - off - lc.HEADER_SIZE)
        return True

    def send_answer(self, frame, ticked):
        """Append the REPLY (outputs, heartbeat, telemetry `frame`, counters)
        and write the whole answer. The values are listed in the order of
        lc.REPLY_FIELDS (a loop over the table would allocate per tick);
        tests/hil/test_link_codec.py checks each lands in its field."""
        off = self._txn
        flags = (lc.REPLY_TICKED if ticked else 0) | (lc.REPLY_LINK_LOST if self.lost_flag else 0)
        self.lost_flag = False
        mask = 0
        for name in frame["faults"]:
            mask |= 1 << FAULTS.index(name)
        p = self.parser
        struct.pack_into(lc.REPLY_FMT, self._tx, off + lc.HEADER_SIZE,
                         self._rx_seq, flags, self.setpoint_ua, 1 if self.relay_closed else 0,
                         self.heartbeat, self.record_seq,
                         frame["t_ms"], STATES.index(frame["state"]),
                         SUBSTATES.index(frame["substate"]), frame["cell_mv"], frame["current_ua"],
                         frame["temp_dc"], frame["setpoint_ua"], frame["cvl_mv"], frame["dvl_mv"],
                         frame["ccl_ua"], frame["dcl_ua"], frame["plated_uas"], frame["inventory_uas"],
                         frame["target_uas"], frame["soc_pm"], frame["soc_bound_pm"], frame["li_uah"],
                         frame["li_bound_uah"], frame["catholyte_x_pm"], frame["loss_ppm"],
                         frame["formation_pm"], frame["ce_ppm"],
                         mask, frame["event_seq"],
                         p.rx_bytes, p.frames, p.frame_bytes, p.garbage_bytes, p.bad_header, p.bad_crc,
                         p.truncated,
                         self.bad_payload, self.replayed, self.skipped, self.link_lost, self.tx_dropped,
                         self.naks)
        self._txn = lc.finish_frame(self._tx, off, lc.T_REPLY, self._next_seq(), lc.REPLY_SIZE)
        self.stream.write(self._tx_view())
        if self.want_record:
            self.send_latest_record()

    def _tx_view(self):
        # In steady state every answer is one REPLY of the same length: reuse
        # its view instead of slicing a new one per tick.
        if self._txn != self._view_n:
            self._view = self._txmv[:self._txn]
            self._view_n = self._txn
        return self._view

    def send_command_result(self, cmd_id, ok, code):
        buf = self._cmdbuf
        data = json.dumps({"id": cmd_id, "ok": ok, "code": code}).encode()
        if len(data) > lc.MAX_PAYLOAD:
            self.tx_dropped = lc.sat(self.tx_dropped + 1)    # dropped and counted, never raised
            return
        end = lc.put_bytes(buf, lc.HEADER_SIZE, data)
        n = lc.finish_frame(buf, 0, lc.T_COMMAND_RESULT, self._next_seq(), end - lc.HEADER_SIZE)
        self.stream.write(memoryview(buf)[:n])

    def _send_small(self, ftype, value):
        # NAK and END: one u16 of payload, from the command buffer
        buf = self._cmdbuf
        struct.pack_into("<H", buf, lc.HEADER_SIZE, value)
        n = lc.finish_frame(buf, 0, ftype, self._same_seq(), 2)
        self.stream.write(memoryview(buf)[:n])

    def send_end(self):
        """Acknowledge the twin's END: the session is over."""
        self._send_small(lc.T_END, self._rx_seq)

    def _maybe_nak(self, now):
        # A frame from the twin came damaged (bad CRC, or cut short): ask for it
        # again at once instead of leaving the twin to its timer. At most one
        # NAK per NAK_MIN_MS, and only once synced (before, HELLO does the job).
        p = self.parser
        damaged = p.bad_crc + p.truncated
        if damaged != self._damaged:
            self._damaged = damaged
            if self.synced and ticks_diff(now, self._nak_ms) >= NAK_MIN_MS:
                self._nak_ms = now
                self.naks = lc.sat(self.naks + 1)
                self._send_small(lc.T_NAK, self._rx_seq)

    # ------------------------------------------------------------------ receiving
    def ms_since_tick(self):
        return ticks_diff(self._clock_ms(), self.last_tick_ms)

    def poll(self, timeout_ms):
        """Read until a new TICK, a COMMAND, a REQUEST or the END arrives, or
        `timeout_ms` of the board's own clock pass. Returns TICK, COMMAND,
        REQUEST, END or NOTHING."""
        start = self._clock_ms()
        p = self.parser
        while True:
            while p.next():
                got = self._frame()
                if got != NOTHING:
                    return got
            now = self._clock_ms()
            # Checked before every read: a flood of garbage must not keep the
            # caller from noticing that no TICK came (the link timeout).
            if ticks_diff(now, start) >= timeout_ms:
                return NOTHING
            n = self.stream.readinto(self._rx)
            if n:
                self._last_byte_ms = now
                p.feed_from(self._rx, n)
                self._maybe_nak(now)
                continue
            if p.pending() and ticks_diff(now, self._last_byte_ms) > self.frame_gap_ms:
                p.expire()
                self._maybe_nak(now)
                continue
            if getattr(self.stream, "eof", False):
                return NOTHING

    def _bad(self):
        self.bad_payload = lc.sat(self.bad_payload + 1)
        return NOTHING

    def _in_order(self):
        # A frame of the twin's that is not a TICK: taken if its seq is after the
        # last one taken (a gap counts skipped), dropped as replayed otherwise.
        if not self.synced:
            self.replayed = lc.sat(self.replayed + 1)   # not ours: from before our HELLO
            return False
        d = lc.seq_delta(self.parser.seq, self._rx_seq)
        if d <= 0:
            self.replayed = lc.sat(self.replayed + 1)
            return False
        if d > 1:
            self.skipped = lc.sat(self.skipped + d - 1)
        self._rx_seq = self.parser.seq
        return True

    def _frame(self):
        p = self.parser
        buf = p.buf
        if p.ftype == lc.T_TICK:
            if p.n < lc.TICK_SIZE:
                return self._bad()
            # TICK_FMT read byte by byte (unpack_from would allocate a tuple per tick);
            # t_ms stays below 2**30 (the twin wraps it), a small int on a board.
            q = p.pos
            t_ms = buf[q] | buf[q + 1] << 8 | buf[q + 2] << 16 | (buf[q + 3] & 0x3F) << 24
            vcell = buf[q + 4] | buf[q + 5] << 8
            ishunt = buf[q + 6] | buf[q + 7] << 8
            tcell = buf[q + 8] | buf[q + 9] << 8
            flags = buf[q + 10]
            d = lc.seq_delta(p.seq, self._rx_seq)
            if flags & lc.TICK_BOOT and not (self.synced and d == 0 and flags & lc.TICK_RETRY):
                return self._boot_tick(t_ms, vcell, ishunt, tcell)
            if not self.synced:
                self.replayed = lc.sat(self.replayed + 1)   # not ours: a TICK from before our HELLO
                return NOTHING
            if d == 0 and flags & lc.TICK_RETRY:
                # The twin lost (part of) our answer: the same bytes again, no new
                # tick; then the latest record if it lacks that.
                self.retries_answered += 1
                self.stream.write(self._tx_view())
                if flags & lc.TICK_WANT_RECORD:
                    self.send_latest_record()
                return NOTHING
            if d <= 0:
                self.replayed = lc.sat(self.replayed + 1)
                return NOTHING
            if d > 1:
                self.skipped = lc.sat(self.skipped + d - 1)
            self.want_record = bool(flags & lc.TICK_WANT_RECORD)
            self._accept_tick(p.seq, t_ms, vcell, ishunt, tcell)
            return TICK
        if p.ftype == lc.T_COMMAND:
            if not self._in_order():
                return NOTHING
            # A COMMAND passed its CRC, so its JSON is the twin's; still, a
            # bad one is dropped and counted, never raised into the tick loop.
            try:
                cmd = json.loads(bytes(buf[p.pos:p.pos + p.n]))
            except (ValueError, RuntimeError):      # RuntimeError: nested too deep for MicroPython
                cmd = None
            if not isinstance(cmd, dict):
                return self._bad()
            cmd_id = cmd.get("id", 0)
            name = cmd.get("name", "")
            args = cmd.get("args")
            if (not isinstance(cmd_id, int) or cmd_id < 0 or cmd_id > lc.COUNT_MAX or not isinstance(name, str)
                    or not (args is None or isinstance(args, dict))):
                return self._bad()
            self.cmd_id = cmd_id
            self.cmd_name = name
            self.cmd_args = args
            return COMMAND
        if p.ftype == lc.T_REQUEST:
            if not self._in_order():
                return NOTHING
            if p.n != lc.REQUEST_SIZE:
                return self._bad()
            # <i read byte by byte with small ints only (a board's small int is 31
            # bits): a value beyond +-2**29 uA (537 A) is no bench's request.
            q = p.pos
            low = buf[q] | buf[q + 1] << 8 | buf[q + 2] << 16
            hi = buf[q + 3]
            if hi < 0x20:
                self.request_ua = low | hi << 24
            elif hi >= 0xE0:
                self.request_ua = (low | (hi - 0xE0) << 24) - (1 << 29)
            else:
                return self._bad()
            return REQUEST
        if p.ftype == lc.T_END:
            if self.ended and self.synced and p.seq == self._rx_seq:
                return END      # the END taken, sent again: our answer to it was lost
            if not self._in_order():
                return NOTHING
            self.ended = True
            return END
        # A frame of the other direction (our own echo on a looped line): unusable.
        return self._bad()

    def _boot_tick(self, t_ms, vcell, ishunt, tcell):
        p = self.parser
        if p.n < lc.TICK_SIZE + lc.BOOT_SIZE:
            return self._bad()
        hello_seq, bits, vref_mv, record_seq, n_rec = struct.unpack_from(lc.BOOT_FMT, p.buf, p.pos + lc.TICK_SIZE)
        if hello_seq != self._hello_seq:
            # The answer to an older HELLO (the twin read a backlog of them):
            # only the answer to our latest one re-syncs the link.
            self.replayed = lc.sat(self.replayed + 1)
            return NOTHING
        start = p.pos + lc.TICK_SIZE + lc.BOOT_SIZE
        if n_rec != lc.NO_RECORD:
            if start + n_rec != p.pos + p.n:
                return self._bad()
            self.record = bytes(p.buf[start:start + n_rec])
        elif start != p.pos + p.n:
            return self._bad()
        if bits < 1 or bits > 24 or vref_mv < 1:
            return self._bad()          # a board description no ADC has: not the twin's
        self.bits = bits
        self.vref_mv = vref_mv
        self.record_seq = record_seq    # our saves continue the twin's numbering
        self.synced = True
        self.boot_ticks += 1
        self.want_record = False
        self._accept_tick(p.seq, t_ms, vcell, ishunt, tcell)
        return TICK

    def _accept_tick(self, seq, t_ms, vcell, ishunt, tcell):
        self._rx_seq = seq
        self.t_ms = t_ms
        c = self.counts
        c[0] = vcell
        c[1] = ishunt
        c[2] = tcell
        self.last_tick_ms = self._clock_ms()

    def counters(self):
        """The firmware's link counters, LINK_COUNTERS order."""
        p = self.parser
        return (p.rx_bytes, p.frames, p.frame_bytes, p.garbage_bytes, p.bad_header, p.bad_crc, p.truncated,
                self.bad_payload,
                self.replayed, self.skipped, self.link_lost, self.tx_dropped, self.naks)
