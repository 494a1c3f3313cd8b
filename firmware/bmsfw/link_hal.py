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
#   save_record(b)   a SAVE_RECORD frame to the twin
#   feed_watchdog()  local: the heartbeat counter in the REPLY, and the
#                    board's own watchdog if one was given
#
# The frames of one tick's answer (SAVE_RECORD, EVENTs, REPLY) are built in one
# preallocated buffer and written with one write(); the buffer is kept, so a
# TICK retransmitted by the twin (flag TICK_RETRY, same seq) is answered with
# the very same bytes without ticking the controller again.
import json
import struct

from . import link_codec as lc
from .compat import const, ticks_diff, ticks_ms
from .hal import ISHUNT, TCELL, VCELL, Hal
from .states import FAULTS, STATES, SUBSTATES

# what poll() found
NOTHING = const(0)
TICK = const(1)
COMMAND = const(2)

HELLO_MS = 500                  # HELLO repeat while waiting for the twin (boot, lost link)
_RX_CHUNK = const(256)
TX_BYTES = 2048                 # a tick's answer: a record, a few events, the REPLY


class LinkHal(Hal):
    def __init__(self, stream, watchdog=None, clock=None, tx_bytes=TX_BYTES):
        self.stream = stream
        self.watchdog = watchdog
        self._clock_ms = ticks_ms if clock is None else clock
        self.parser = lc.Parser()
        self._rx = bytearray(_RX_CHUNK)
        self._tx = bytearray(tx_bytes)
        self._txmv = memoryview(self._tx)
        self._txn = 0
        self._view = self._txmv[:0]
        self._view_n = 0
        self._cmdbuf = bytearray(lc.MAX_FRAME)
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
        self.replayed = 0
        self.skipped = 0
        self.link_lost = 0
        self.retries_answered = 0
        self.lost_flag = False
        # the last COMMAND received (poll() returned COMMAND)
        self.cmd_id = 0
        self.cmd_name = ""
        self.cmd_args = None

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
        off = self._txn
        end = lc.put_bytes(self._tx, off + lc.HEADER_SIZE, data)
        self._txn = lc.finish_frame(self._tx, off, lc.T_SAVE_RECORD, self._next_seq(),
                                    end - off - lc.HEADER_SIZE)

    def feed_watchdog(self):
        self.heartbeat = (self.heartbeat + 1) & 0xFFFF
        if self.watchdog is not None:
            self.watchdog.feed()

    # ------------------------------------------------------------------ sending
    def _next_seq(self):
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        return seq

    def begin_answer(self):
        """Start the next tick's answer (the previous one is forgotten)."""
        self._txn = 0

    def hello(self, want_record, device_id):
        """Ask the twin for a boot TICK (at boot, and while the link is lost)."""
        buf = self._cmdbuf
        did = device_id.encode()
        struct.pack_into(lc.HELLO_FMT, buf, lc.HEADER_SIZE,
                         lc.HELLO_WANT_RECORD if want_record else 0, len(did))
        end = lc.put_bytes(buf, lc.HEADER_SIZE + lc.HELLO_SIZE, did)
        self._hello_seq = self._next_seq()
        n = lc.finish_frame(buf, 0, lc.T_HELLO, self._hello_seq, end - lc.HEADER_SIZE)
        self.stream.write(memoryview(buf)[:n])

    def add_event(self, event):
        data = json.dumps(event).encode()
        off = self._txn
        if off + lc.OVERHEAD + len(data) + lc.OVERHEAD + lc.REPLY_SIZE > len(self._tx):
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
                         self.heartbeat,
                         frame["t_ms"], STATES.index(frame["state"]),
                         SUBSTATES.index(frame["substate"]), frame["cell_mv"], frame["current_ua"],
                         frame["temp_dc"], frame["setpoint_ua"], frame["cvl_mv"], frame["dvl_mv"],
                         frame["ccl_ua"], frame["dcl_ua"], frame["plated_uas"], frame["inventory_uas"],
                         frame["target_uas"], frame["soc_pm"], frame["soc_bound_pm"], frame["li_nah"],
                         frame["li_bound_nah"], frame["catholyte_x_pm"], frame["loss_ppm"],
                         frame["formation_pm"], frame["ce_ppm"],
                         mask, frame["event_seq"],
                         p.garbage_bytes & 0xFFFF, p.bad_header & 0xFFFF, p.bad_crc & 0xFFFF,
                         p.truncated & 0xFFFF, self.replayed & 0xFFFF, self.skipped & 0xFFFF,
                         self.link_lost & 0xFFFF)
        self._txn = lc.finish_frame(self._tx, off, lc.T_REPLY, self._next_seq(), lc.REPLY_SIZE)
        self.stream.write(self._tx_view())

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
        end = lc.put_bytes(buf, lc.HEADER_SIZE, data)
        n = lc.finish_frame(buf, 0, lc.T_COMMAND_RESULT, self._next_seq(), end - lc.HEADER_SIZE)
        self.stream.write(memoryview(buf)[:n])

    # ------------------------------------------------------------------ receiving
    def ms_since_tick(self):
        return ticks_diff(self._clock_ms(), self.last_tick_ms)

    def poll(self, timeout_ms):
        """Read until a new TICK or a COMMAND arrives, or `timeout_ms` of the
        board's own clock pass. Returns TICK, COMMAND or NOTHING."""
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
                continue
            if p.pending() and ticks_diff(now, self._last_byte_ms) > lc.FRAME_GAP_MS:
                p.expire()
                continue
            if getattr(self.stream, "eof", False):
                return NOTHING

    def _frame(self):
        p = self.parser
        buf = p.buf
        if p.ftype == lc.T_TICK:
            if p.n < lc.TICK_SIZE:
                p.bad_header += 1
                return NOTHING
            # TICK_FMT read byte by byte (unpack_from would allocate a tuple per tick);
            # t_ms stays below 2**30 (the twin wraps it), a small int on a board.
            q = p.pos
            t_ms = buf[q] | buf[q + 1] << 8 | buf[q + 2] << 16 | (buf[q + 3] & 0x3F) << 24
            vcell = buf[q + 4] | buf[q + 5] << 8
            ishunt = buf[q + 6] | buf[q + 7] << 8
            tcell = buf[q + 8] | buf[q + 9] << 8
            flags = buf[q + 10]
            if flags & lc.TICK_BOOT:
                return self._boot_tick(t_ms, vcell, ishunt, tcell)
            if not self.synced:
                self.replayed += 1          # not ours: a TICK from before our HELLO
                return NOTHING
            d = lc.seq_delta(p.seq, self._rx_seq)
            if d == 0 and flags & lc.TICK_RETRY:
                # The twin lost our answer: the same bytes again, no new tick.
                self.retries_answered += 1
                self.stream.write(self._tx_view())
                return NOTHING
            if d <= 0:
                self.replayed += 1
                return NOTHING
            if d > 1:
                self.skipped += d - 1
            self._accept_tick(p.seq, t_ms, vcell, ishunt, tcell)
            return TICK
        if p.ftype == lc.T_COMMAND:
            if not self.synced:
                self.replayed += 1          # not ours: from before our HELLO
                return NOTHING
            d = lc.seq_delta(p.seq, self._rx_seq)
            if d <= 0:
                self.replayed += 1
                return NOTHING
            if d > 1:
                self.skipped += d - 1
            self._rx_seq = p.seq
            # A COMMAND passed its CRC, so its JSON is the twin's; still, a
            # bad one is dropped and counted, never raised into the tick loop.
            try:
                cmd = json.loads(bytes(buf[p.pos:p.pos + p.n]))
            except ValueError:
                cmd = None
            if not isinstance(cmd, dict):
                p.bad_header += 1
                return NOTHING
            self.cmd_id = cmd.get("id", 0)
            self.cmd_name = cmd.get("name", "")
            self.cmd_args = cmd.get("args")
            return COMMAND
        # A frame of the other direction (our own echo on a looped line): unusable.
        p.bad_header += 1
        return NOTHING

    def _boot_tick(self, t_ms, vcell, ishunt, tcell):
        p = self.parser
        if p.n < lc.TICK_SIZE + lc.BOOT_SIZE:
            p.bad_header += 1
            return NOTHING
        hello_seq, bits, vref_mv, n_rec = struct.unpack_from(lc.BOOT_FMT, p.buf, p.pos + lc.TICK_SIZE)
        if hello_seq != self._hello_seq:
            # The answer to an older HELLO (the twin read a backlog of them):
            # only the answer to our latest one re-syncs the link.
            self.replayed += 1
            return NOTHING
        start = p.pos + lc.TICK_SIZE + lc.BOOT_SIZE
        if n_rec != lc.NO_RECORD:
            if start + n_rec > p.pos + p.n:
                p.bad_header += 1
                return NOTHING
            self.record = bytes(p.buf[start:start + n_rec])
        self.bits = bits
        self.vref_mv = vref_mv
        self.synced = True
        self.boot_ticks += 1
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
        return (p.garbage_bytes, p.bad_header, p.bad_crc, p.truncated, self.replayed,
                self.skipped, self.link_lost)


# ---------------------------------------------------------------------- the loop
# boot() and serve() run the controller over a LinkHal: the composition roots
# (bmsfw/link_main.py on a PC, main.py on a board with HAL_KIND = "link")
# call them. No try blocks in the tick loop (see twin/images/wasm.py on the
# WASI build's GC defect). The link timeout is the board's own wall clock: no
# valid TICK for link_timeout_ms -> Controller.report_link_lost() (current 0,
# relay open, LINK_LOST latched); the answer is still sent (the twin may hear
# it) and HELLOs ask the twin to re-sync.
def _answer(link, controller, ticked):
    for ev in controller.pop_events():
        link.add_event(ev)
    link.send_answer(controller.telemetry(), ticked)


def boot(link, config, device_id, hello_ms=HELLO_MS, boot_timeout_ms=None, clock=None):
    """HELLO until the twin's boot TICK, then build the controller on it (its
    record, its time) and send the boot answer. None if the twin never came."""
    if clock is None:
        clock = ticks_ms
    t0 = clock()
    while not link.synced:
        link.hello(True, device_id)
        link.poll(hello_ms)
        if link.synced:
            break
        if getattr(link.stream, "eof", False):
            return None
        if boot_timeout_ms is not None and ticks_diff(clock(), t0) >= boot_timeout_ms:
            return None
    from .controller import Controller

    controller = Controller(link, config, device_id=device_id)
    link.begin_answer()
    _answer(link, controller, False)
    return controller


def serve(link, controller, device_id, link_timeout_ms, hello_ms=HELLO_MS, max_ticks=None,
          exit_on_eof=True):
    """Tick `controller` once per TICK from the twin. Returns the number of
    ticks run when max_ticks is reached, or when the stream closed (EOF) after
    the link was declared lost (exit_on_eof)."""
    n_ticks = 0
    lost = False
    last_hello_ms = 0
    while max_ticks is None or n_ticks < max_ticks:
        wait = link_timeout_ms - link.ms_since_tick()
        if lost or wait > hello_ms:
            wait = hello_ms
        if wait < 1:
            wait = 1
        got = link.poll(wait)
        if got == TICK:
            lost = False
            link.begin_answer()
            controller.tick()
            n_ticks += 1
            _answer(link, controller, True)
        elif got == COMMAND:
            ok, code = controller.command(link.cmd_name, link.cmd_args)
            link.send_command_result(link.cmd_id, ok, code)
        elif not lost:
            if link.ms_since_tick() >= link_timeout_ms:
                lost = True
                link.link_lost += 1
                link.lost_flag = True
                link.begin_answer()
                controller.report_link_lost()
                _answer(link, controller, False)
                link.hello(False, device_id)
                last_hello_ms = link.ms_since_tick()
        else:
            if exit_on_eof and getattr(link.stream, "eof", False):
                return n_ticks
            since = link.ms_since_tick()
            if since - last_hello_ms >= hello_ms:
                link.hello(False, device_id)
                last_hello_ms = since
    return n_ticks
