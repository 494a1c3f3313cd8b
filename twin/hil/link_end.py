"""The twin's end of the HIL link protocol (docs/hil.md, bmsfw/link_codec.py):
TICK and COMMAND frames out, the firmware's frames in, in order, with counters of
everything dropped on the way (garbage, bad headers and CRCs, truncated frames,
replays, skipped sequence numbers)."""
from __future__ import annotations

import json
import struct
import time

from bmsfw import link_codec as lc

_TICKS_MASK = (1 << 30) - 1     # the firmware compares ticks modulo 2**30 (bmsfw.hal)
FRAME_GAP_S = lc.FRAME_GAP_MS / 1000.0
TWIN_COUNTERS = ("frames", "garbage_bytes", "bad_header", "bad_crc", "truncated", "bad_payload",
                 "replayed", "skipped", "retries", "events_lost")


class TwinLinkEnd:
    """The twin's end of the protocol: frames out, frames in, counters."""

    def __init__(self, stream):
        self.stream = stream
        self.parser = lc.Parser()
        self.tx = bytearray(lc.MAX_FRAME)
        self.seq = 0
        self.rx_seq: int | None = None
        self.counters = dict.fromkeys(TWIN_COUNTERS, 0)
        self.last_byte_s = time.perf_counter()

    def send(self, ftype: int, payload_len: int, seq: int | None = None) -> int:
        """The payload is in self.tx[HEADER_SIZE:]; returns the seq used."""
        if seq is None:
            seq = self.seq
            self.seq = (self.seq + 1) & 0xFFFF
        n = lc.finish_frame(self.tx, 0, ftype, seq, payload_len)
        self.stream.write(memoryview(self.tx)[:n])
        return seq

    def send_tick(self, t_ms: int, counts, boot=None, retry_seq: int | None = None) -> int:
        """boot: None or (seq of the HELLO answered, adc_bits, vref_mv, record bytes or None)."""
        flags = (lc.TICK_BOOT if boot is not None else 0) | (lc.TICK_RETRY if retry_seq is not None else 0)
        n = lc.TICK_SIZE
        struct.pack_into(lc.TICK_FMT, self.tx, lc.HEADER_SIZE, t_ms & _TICKS_MASK, counts[0], counts[1],
                         counts[2], flags)
        if boot is not None:
            hello_seq, bits, vref_mv, record = boot
            rec = b"" if record is None else bytes(record)
            struct.pack_into(lc.BOOT_FMT, self.tx, lc.HEADER_SIZE + n, hello_seq, bits, vref_mv,
                             lc.NO_RECORD if record is None else len(rec))
            n += lc.BOOT_SIZE
            lc.put_bytes(self.tx, lc.HEADER_SIZE + n, rec)
            n += len(rec)
        return self.send(lc.T_TICK, n, retry_seq)

    def send_command(self, cmd_id: int, name, args) -> None:
        data = json.dumps({"id": cmd_id, "name": name, "args": args}).encode()
        lc.put_bytes(self.tx, lc.HEADER_SIZE, data)
        self.send(lc.T_COMMAND, len(data))

    def frames(self, timeout_s: float):
        """Yield (type, seq, payload bytes) of the good, in-order frames that
        arrive within timeout_s (returns early after the first batch)."""
        p = self.parser
        data = self.stream.read(4096, timeout_s)
        now = time.perf_counter()
        if data:
            self.last_byte_s = now
            p.feed(data)
        elif p.pending() and now - self.last_byte_s > FRAME_GAP_S:
            p.expire()
        out = []
        while p.next():
            ftype, seq = p.ftype, p.seq
            if ftype == lc.T_HELLO:
                self.rx_seq = seq       # a (re)booted firmware starts its seq afresh
            elif self.rx_seq is not None:
                d = lc.seq_delta(seq, self.rx_seq)
                if d <= 0:
                    self.counters["replayed"] += 1
                    continue
                if d > 1:
                    self.counters["skipped"] += d - 1
                self.rx_seq = seq
            else:
                self.rx_seq = seq
            out.append((ftype, seq, bytes(p.buf[p.pos:p.pos + p.n])))
        self.counters["frames"] = p.frames
        self.counters["garbage_bytes"] = p.garbage_bytes
        self.counters["bad_header"] = p.bad_header
        self.counters["bad_crc"] = p.bad_crc
        self.counters["truncated"] = p.truncated
        return out
