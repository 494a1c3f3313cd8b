"""The twin's end of the HIL link protocol (docs/hil.md, bmsfw/link_codec.py):
TICK, COMMAND and END frames out, the firmware's frames in, in order, with
counters of everything dropped on the way (garbage, bad headers and CRCs,
truncated frames, replays, skipped sequence numbers)."""
from __future__ import annotations

import json
import struct
import time

from bmsfw import link_codec as lc

_TICKS_MASK = (1 << 30) - 1     # the firmware compares ticks modulo 2**30 (bmsfw.hal)
READ_MAX = 4096                 # bytes taken from the stream at once; the parser holds this + a frame
FRAME_GAP_S = 0.01              # the twin's end: a frame quiet this long after its last byte is truncated
# Taken whatever their seq, and never moving it: a record is numbered itself
# (record_seq); these three carry the firmware's last seq without using a number.
IDEMPOTENT = (lc.T_SAVE_RECORD, lc.T_NAK, lc.T_END)
TWIN_COUNTERS = ("rx_bytes", "frames", "frame_bytes", "garbage_bytes", "bad_header", "bad_crc", "truncated", "bad_payload",
                 "replayed", "skipped", "retries", "naks", "record_asks", "answers_incomplete", "events_lost",
                 "reconnects")


class TwinLinkEnd:
    """The twin's end of the protocol: frames out, frames in, counters."""

    def __init__(self, stream, frame_gap_s: float = FRAME_GAP_S):
        self.stream = stream
        self.frame_gap_s = frame_gap_s
        self.parser = lc.Parser(READ_MAX)
        self.tx = bytearray(lc.MAX_FRAME)
        self.seq = 0
        self.rx_seq: int | None = None
        self.counters = dict.fromkeys(TWIN_COUNTERS, 0)
        self.last_byte_s = time.perf_counter()
        self.damaged = 0        # bad CRCs and truncated frames so far: evidence of a lost answer
        self.missing: set = set()   # seqs skipped (frames lost) since the server last cleared it
        self.fill: set = set()      # seqs taken even though behind: an answer's lost frames sent again

    def send(self, ftype: int, payload_len: int, seq: int | None = None) -> int:
        """The payload is in self.tx[HEADER_SIZE:]; returns the seq used."""
        if seq is None:
            seq = self.seq
            self.seq = (self.seq + 1) & 0xFFFF
        n = lc.finish_frame(self.tx, 0, ftype, seq, payload_len)
        self.stream.write(memoryview(self.tx)[:n])
        return seq

    def send_tick(self, t_ms: int, counts, boot=None, retry_seq: int | None = None, want_record=False) -> int:
        """boot: None or (seq of the HELLO answered, adc_bits, vref_mv, record_seq, record bytes or None)."""
        flags = ((lc.TICK_BOOT if boot is not None else 0) | (lc.TICK_RETRY if retry_seq is not None else 0)
                 | (lc.TICK_WANT_RECORD if want_record else 0))
        n = lc.TICK_SIZE
        struct.pack_into(lc.TICK_FMT, self.tx, lc.HEADER_SIZE, t_ms & _TICKS_MASK, counts[0], counts[1],
                         counts[2], flags)
        if boot is not None:
            hello_seq, bits, vref_mv, record_seq, record = boot
            rec = b"" if record is None else bytes(record)
            struct.pack_into(lc.BOOT_FMT, self.tx, lc.HEADER_SIZE + n, hello_seq, bits, vref_mv, record_seq,
                             lc.NO_RECORD if record is None else len(rec))
            n += lc.BOOT_SIZE
            lc.put_bytes(self.tx, lc.HEADER_SIZE + n, rec)
            n += len(rec)
        return self.send(lc.T_TICK, n, retry_seq)

    def send_command(self, cmd_id: int, name, args) -> bool:
        """False (nothing sent) if the command does not fit a frame."""
        data = json.dumps({"id": cmd_id, "name": name, "args": args}).encode()
        if len(data) > lc.MAX_PAYLOAD:
            return False
        lc.put_bytes(self.tx, lc.HEADER_SIZE, data)
        self.send(lc.T_COMMAND, len(data))
        return True

    def send_request(self, current_ua: int) -> int:
        """REQUEST: the duty request the firmware takes before the next TICK."""
        struct.pack_into(lc.REQUEST_FMT, self.tx, lc.HEADER_SIZE, current_ua)
        return self.send(lc.T_REQUEST, lc.REQUEST_SIZE)

    def send_end(self, seq: int | None = None) -> int:
        """END: the session is over (payload: the seq of the last firmware frame taken)."""
        struct.pack_into(lc.NAK_FMT, self.tx, lc.HEADER_SIZE, (self.rx_seq or 0) & 0xFFFF)
        return self.send(lc.T_END, 2, seq)

    def frames(self, timeout_s: float):
        """The good, in-order frames as (type, seq, payload bytes) that arrive
        within timeout_s (returns early after the first read)."""
        p = self.parser
        data = self.stream.read(p.read_max, timeout_s)
        now = time.perf_counter()
        if data:
            self.last_byte_s = now
            p.feed(data)
        elif p.pending() and now - self.last_byte_s > self.frame_gap_s:
            p.expire()
        out = []
        while p.next():
            ftype, seq = p.ftype, p.seq
            if ftype in IDEMPOTENT:
                out.append((ftype, seq, bytes(p.buf[p.pos:p.pos + p.n])))
                continue
            if ftype == lc.T_HELLO:
                self.rx_seq = seq       # a (re)booted firmware starts its seq afresh
            elif self.rx_seq is not None:
                d = lc.seq_delta(seq, self.rx_seq)
                if d <= 0 and seq in self.fill:
                    self.fill.discard(seq)      # a lost frame of the answer, sent again: in, seq unmoved
                    out.append((ftype, seq, bytes(p.buf[p.pos:p.pos + p.n])))
                    continue
                if d <= 0:
                    self.counters["replayed"] += 1
                    continue
                if d > 1:
                    self.counters["skipped"] += d - 1
                    if d < 64:
                        self.missing.update((self.rx_seq + i) & 0xFFFF for i in range(1, d))
                self.rx_seq = seq
            else:
                self.rx_seq = seq
            if ftype not in lc.TO_TWIN:     # TICK/COMMAND: our own direction, echoed back
                self.counters["bad_payload"] += 1
                continue
            out.append((ftype, seq, bytes(p.buf[p.pos:p.pos + p.n])))
        c = self.counters
        (c["rx_bytes"], c["frames"], c["frame_bytes"], c["garbage_bytes"], c["bad_header"], c["bad_crc"],
         c["truncated"]) = p.counters()
        c["reconnects"] = getattr(self.stream, "reconnects", 0)
        self.damaged = p.bad_crc + p.truncated
        return out


class RetryTimer:
    """When to send a TICK again that got no answer: at once on evidence (a NAK,
    a damaged frame), else after `rto` -- the smoothed round trip plus four times
    its variation (as TCP), held between retry_min_s and retry_max_s, doubled
    after each timer retry (a slow firmware is not flooded). The timer is only the
    backstop; a retry it sends too early costs a repeated answer, which the twin
    drops as replayed."""

    def __init__(self, retry_min_s: float, retry_max_s: float):
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.srtt: float | None = None
        self.rttvar = 0.0

    def rto(self) -> float:
        base = self.retry_max_s if self.srtt is None else self.srtt + 4 * self.rttvar
        return min(self.retry_max_s, max(self.retry_min_s, base))

    def measured(self, rtt_s: float) -> None:
        """A round trip answered at the first try (a retried one proves nothing)."""
        if self.srtt is None:
            self.srtt, self.rttvar = rtt_s, rtt_s / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt_s)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt_s
