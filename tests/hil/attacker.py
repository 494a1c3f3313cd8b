"""A hostile peer on the HIL link, as its own process (tests/hil/test_link_attack.py).

    python tests/hil/attacker.py firmware [--random-bytes N] [--flood-bytes N] [--seed N]
        plays the twin against a firmware: makes a pty, prints {"pty": path} as one
        JSON line, and the firmware is started on it; prints {"ready": ...} when done
        and waits for a line on stdin before it ends the session with END.
    python tests/hil/attacker.py twin --port PATH [--seed N]
        plays the firmware against `bms-twin hil --port pty` (PATH is the pty it printed).
    python tests/hil/attacker.py deaf --port PATH
        a firmware that sends HELLO after HELLO and never reads.

What it throws: random bytes; mutated and truncated frames; CRC-valid frames of every
message type with hostile contents (wrong sizes, lies in the boot block, JSON that is
not an object, a command id of 470 bytes, nesting deeper than a board's parser, old
and future sequence numbers); floods of replayed frames; and a stretch where it does
not read at all. Between the phases it checks the other end still answers a good
frame, and at the end it reads the other end's counters and reports, as JSON on
stdout: what it sent (bytes, CRC-valid frames, in-order TICKs) and what the other
end counted. Every wait has a deadline; on a missed one it exits 1 saying which.
"""
import argparse
import json
import os
import random
import select
import struct
import sys
import time
import tty

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "firmware"))

from bmsfw import link_codec as lc  # noqa: E402

WAIT_S = 20.0       # the longest the other end may take to answer one good frame


def frame(ftype, seq, payload):
    buf = bytearray(lc.OVERHEAD + len(payload))
    buf[lc.HEADER_SIZE:lc.HEADER_SIZE + len(payload)] = payload
    return bytes(buf[:lc.finish_frame(buf, 0, ftype, seq, len(payload))])


def fail(why):
    sys.stdout.write(json.dumps({"failed": why}) + "\n")
    sys.stdout.flush()
    sys.exit(1)


class Peer:
    """Our end of the pty: bytes out (counted), frames in (our own parser)."""

    def __init__(self, fd):
        self.fd = fd
        self.parser = lc.Parser(4096)
        self.sent = 0
        self.valid = 0          # CRC-valid frames sent (the other end must find each)

    def send(self, data, valid=0):
        view = memoryview(data)
        while len(view):
            select.select([], [self.fd], [], 1.0)
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                self.drain(0)       # the other end answers while we write: read, or both block
                continue
            view = view[n:]
            self.sent += n
        self.valid += valid

    def drain(self, timeout_s):
        out = []
        if select.select([self.fd], [], [], timeout_s)[0]:
            try:
                data = os.read(self.fd, 4096)
            except (BlockingIOError, OSError):
                data = b""
            self.parser.feed(data)
            while self.parser.next():
                p = self.parser
                out.append((p.ftype, p.seq, bytes(p.buf[p.pos:p.pos + p.n])))
        return out

    def wait_for(self, want, timeout_s=WAIT_S):
        """Frames until one satisfies want(ftype, seq, payload); fail after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for f in self.drain(0.05):
                if want(*f):
                    return f
        fail("no answer within %.0f s" % timeout_s)


# ------------------------------------------------------------------ vs the firmware
def tick(seq, t_ms, flags=0, counts=(1000, 32768, 30000), boot=None):
    p = struct.pack(lc.TICK_FMT, t_ms, counts[0], counts[1], counts[2], flags)
    if boot is not None:
        hello_seq, record = boot
        p += struct.pack(lc.BOOT_FMT, hello_seq, 16, 4096, 0, lc.NO_RECORD if record is None else len(record))
        p += record or b""
    return frame(lc.T_TICK, seq, p)


def hostile_to_firmware(rng, seq, t_ms):
    """CRC-valid frames of every type the firmware can meet, none in order (so none
    ticks it): (frame bytes) list."""
    old = (seq - 5) & 0xFFFF
    nxt = (seq + 1) & 0xFFFF
    deep = b"[" * 300 + b"]" * 300
    cmds = [b"", b"[1, 2", b"[]", b"null", b'"x"', deep, b'{"id": "' + b"A" * 470 + b'", "name": "x"}',
            b'{"id": 1.5, "name": "stop"}', b'{"id": -3, "name": "stop"}', b'{"id": 1, "name": 7}',
            b'{"id": 1, "name": "stop", "args": [1]}', b'{"id": 99999999999999999999, "name": "stop"}',
            bytes(rng.randrange(256) for _ in range(200)), b"{" * 256]
    out = []
    for payload in cmds:                           # COMMANDs: all in order, all unusable
        out.append(("cmd", frame(lc.T_COMMAND, nxt, payload[:lc.MAX_PAYLOAD])))
    for ftype in range(1, lc.MAX_TYPE + 1):        # every type, sizes 0, random, maximum; old seq
        for n in (0, 7, lc.MAX_PAYLOAD):
            out.append(("old", frame(ftype, old, bytes(rng.randrange(256) for _ in range(n)))))
    for ftype in lc.TO_TWIN:                        # the other direction, even in order
        out.append(("dir", frame(ftype, nxt, bytes(rng.randrange(256) for _ in range(rng.randrange(0, 60))))))
    out.append(("bad", frame(lc.T_TICK, nxt, b"\x01\x02")))                           # short TICK
    bogus = struct.pack(lc.TICK_FMT, 5, 0, 0, 0, lc.TICK_BOOT) + struct.pack(lc.BOOT_FMT, 0, 0, 0, 0, 400)
    out.append(("bad", frame(lc.T_TICK, nxt, bogus)))                                  # boot block lies
    out.append(("old", tick(old, t_ms, lc.TICK_RETRY | lc.TICK_WANT_RECORD)))        # retry of an old seq
    return out


def attack_firmware(args):
    rng = random.Random(args.seed)
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    sys.stdout.write(json.dumps({"pty": os.ttyname(slave)}) + "\n")
    sys.stdout.flush()
    peer = Peer(master)
    _, hseq, _ = peer.wait_for(lambda t, s, p: t == lc.T_HELLO, 60.0)
    # answer the latest HELLO only (a backlog of them re-syncs once)
    time.sleep(0.05)
    for t, s, _ in peer.drain(0.01):
        if t == lc.T_HELLO:
            hseq = s
    seq, t_ms = 100, 0
    peer.send(tick(seq, t_ms, lc.TICK_BOOT, boot=(hseq, None)), valid=1)
    ticks = 1
    reply = [None]

    def good_tick():
        nonlocal seq, t_ms, ticks
        seq = (seq + 1) & 0xFFFF
        t_ms += 1000
        peer.send(tick(seq, t_ms), valid=1)
        ticks += 1
        want = seq
        _, _, p = peer.wait_for(lambda t, s, pl: t == lc.T_REPLY and lc.unpack_reply(pl)["ack"] == want)
        reply[0] = lc.unpack_reply(p)

    good_tick()
    hb0 = reply[0]["heartbeat"]
    ticks0 = ticks
    # 1. random bytes, in chunks of random size, answered by one good TICK each MB
    left = args.random_bytes
    while left > 0:
        n = min(left, 1 << 16)
        peer.send(rng.randbytes(n))
        left -= n
        if left % (1 << 20) < (1 << 16):
            good_tick()
    good_tick()
    # 2. mutated and truncated TICKs (one byte changed, cut, dropped), then quiet so
    #    the cut ones are expired
    for i in range(args.mutated):
        f = bytearray(tick((seq + 1) & 0xFFFF, t_ms + 1000))
        k = rng.randrange(3)
        if k == 0:
            f[rng.randrange(len(f))] ^= 1 << rng.randrange(8)
        elif k == 1:
            f = f[:rng.randrange(1, len(f))]
        else:
            del f[rng.randrange(2, len(f))]
        peer.send(bytes(f))
        if i % 50 == 49:
            time.sleep(0.2)
            peer.drain(0)
    time.sleep(0.2)
    good_tick()
    # 3. CRC-valid hostile frames of every type (taken as frames, none ticks or raises)
    hostile = hostile_to_firmware(rng, seq, t_ms)
    for _, f in hostile:
        peer.send(f, valid=1)
        seq = (seq + 1) & 0xFFFF if _ in ("cmd", "dir") else seq
    time.sleep(0.2)
    good_tick()
    # 4. a flood of replayed TICKs and wrong-direction frames
    old = tick((seq - 1) & 0xFFFF, t_ms)
    flood = old * (args.flood_bytes // len(old))
    peer.send(flood, valid=len(flood) // len(old))
    good_tick()
    # 5. a peer that does not read: TICKs whose answers we leave in the pty
    n_deaf = 200            # 31 kB of answers: more than the pty holds (20 kB)
    for _ in range(n_deaf):
        seq = (seq + 1) & 0xFFFF
        t_ms += 1000
        peer.send(tick(seq, t_ms), valid=1)
        ticks += 1
    time.sleep(2.0)
    deadline = time.monotonic() + WAIT_S
    while peer.drain(0.05) and time.monotonic() < deadline:
        pass
    good_tick()
    time.sleep(0.2)             # quiet: nothing pending at the other end
    good_tick()
    r = reply[0]
    sys.stdout.write(json.dumps({"ready": True, "sent_bytes": peer.sent, "valid_frames": peer.valid,
                                 "ticks": ticks - ticks0, "heartbeats": (r["heartbeat"] - hb0) & 0xFFFF,
                                 "counters": {k: r[k] for k in lc.LINK_COUNTERS}, "setpoint_ua": r["hal_setpoint_ua"],
                                 "n_hostile": len(hostile), "flood_frames": len(flood) // len(old)}) + "\n")
    sys.stdout.flush()
    if not select.select([sys.stdin], [], [], 60.0)[0]:
        fail("no go from the test")
    sys.stdin.readline()
    end = frame(lc.T_END, (seq + 1) & 0xFFFF, b"\x00\x00")
    peer.send(end, valid=1)
    peer.wait_for(lambda t, s, p: t == lc.T_END)
    sys.stdout.write(json.dumps({"end_acked": True}) + "\n")
    return 0


# ------------------------------------------------------------------ vs the twin
def reply_payload(ack, state=0, relay=0, setpoint_ua=0, flags=lc.REPLY_TICKED, record_seq=0):
    values = []
    for name, code in lc.REPLY_FIELDS:
        values.append({"ack": ack, "flags": flags, "state": state, "relay": relay, "hal_setpoint_ua": setpoint_ua,
                       "record_seq": record_seq}.get(name, 0))
    return struct.pack(lc.REPLY_FMT, *values)


def attack_twin(args):
    """Answer each TICK with a good REPLY (setpoint 0, relay open), and throw the
    rest in between; the twin ends the session (END) when its duration is up."""
    rng = random.Random(args.seed)
    fd = os.open(args.port, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    os.set_blocking(fd, False)
    peer = Peer(fd)
    seq = 0
    hello = frame(lc.T_HELLO, seq, struct.pack(lc.HELLO_FMT, lc.HELLO_WANT_RECORD, 6) + b"attack")
    peer.send(hello, valid=1)
    n_ticks = n_hostile = 0
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        got = None
        for f in peer.drain(0.05):
            if f[0] in (lc.T_TICK, lc.T_END):
                got = f
        if got is None:
            continue
        if got[0] == lc.T_END:
            seq = (seq + 1) & 0xFFFF
            peer.send(frame(lc.T_END, seq, b"\x00\x00"), valid=1)
            sys.stdout.write(json.dumps({"sent_bytes": peer.sent, "valid_frames": peer.valid, "ticks": n_ticks,
                                         "hostile": n_hostile}) + "\n")
            return 0
        n_ticks += 1
        # hostile stuff, then the good answer
        k = n_ticks % 6
        if k == 0:
            peer.send(rng.randbytes(rng.randrange(1, 3000)))
        elif k == 1:                                   # CRC-valid frames of every type, unusable
            for ftype in range(1, lc.MAX_TYPE + 1):
                if ftype in (lc.T_HELLO,):
                    continue                           # a HELLO, even malformed, re-syncs: below
                if ftype not in (lc.T_SAVE_RECORD, lc.T_NAK, lc.T_END):
                    seq = (seq + 1) & 0xFFFF           # (these three use no number of their own)
                if ftype == lc.T_SAVE_RECORD:
                    payload = b"\x01"                 # shorter than its record_seq
                else:
                    payload = rng.choice([b"", b"\xff\xfe", b"{\"seq\": \"x\"}", b"[1]", bytes(lc.REPLY_SIZE - 1),
                                          reply_payload(0, state=200), reply_payload(0, relay=7), b"\x01"])
                peer.send(frame(ftype, seq, payload), valid=1)
                n_hostile += 1
        elif k == 2:                                   # mutated REPLYs
            for _ in range(5):
                f = bytearray(frame(lc.T_REPLY, (seq + 1) & 0xFFFF, reply_payload(got[1], setpoint_ua=2000, relay=1)))
                f[rng.randrange(len(f))] ^= 1 << rng.randrange(8)
                peer.send(bytes(f))
        elif k == 3:                                   # a flood of replayed frames
            old = frame(lc.T_REPLY, seq, reply_payload(got[1], setpoint_ua=2000, relay=1))
            peer.send(old * 2000, valid=2000)
        elif k == 4:                                   # future and old seqs of events
            peer.send(frame(lc.T_EVENT, (seq - 3) & 0xFFFF, b'{"seq": 1, "event": "X"}'), valid=1)
        seq = (seq + 1) & 0xFFFF
        peer.send(frame(lc.T_REPLY, seq, reply_payload(got[1])), valid=1)
    fail("the twin did not end the session within 120 s")


def deaf(args):
    """HELLO after HELLO, never reading: the twin's boot TICKs pile up in the pty."""
    fd = os.open(args.port, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    seq = 0
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        seq = (seq + 1) & 0xFFFF
        try:
            os.write(fd, frame(lc.T_HELLO, seq, struct.pack(lc.HELLO_FMT, lc.HELLO_WANT_RECORD, 4) + b"deaf"))
        except OSError:
            return 0            # the twin closed the pty: it gave up, as it should
        time.sleep(0.001)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=("firmware", "twin", "deaf"))
    ap.add_argument("--port")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--random-bytes", type=int, default=1 << 20)
    ap.add_argument("--mutated", type=int, default=2000)
    ap.add_argument("--flood-bytes", type=int, default=2 << 20)
    args = ap.parse_args()
    return {"firmware": attack_firmware, "twin": attack_twin, "deaf": deaf}[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
