"""Fuzz both ends of the HIL link in-process: >= 10,000 random, mutated,
replayed, skipped and well-framed-but-malformed frames thrown at the firmware's
LinkHal and at the twin's HilServer. Nothing raises, every good frame is taken
in order, every bad one is counted where docs/hil.md says.

Run: .venv/bin/python -m pytest tests/hil/test_link_fuzz.py -q
"""
import json
import random
import struct

import pytest

from bmsfw import link_codec as lc
from bmsfw.link_hal import COMMAND, NOTHING, REQUEST, TICK, LinkHal
from twin.hil import HilServer
from twin.parameters import load_board, load_parameter_set


def frame(ftype, seq, payload):
    buf = bytearray(lc.MAX_FRAME)
    lc.put_bytes(buf, lc.HEADER_SIZE, payload)
    return bytes(buf[:lc.finish_frame(buf, 0, ftype, seq, len(payload))])


def mutate(rng, f):
    while True:
        b = bytearray(f)
        k = rng.randrange(3)
        if k == 0:
            b[rng.randrange(len(b))] ^= rng.randrange(1, 256)
        elif k == 1:
            b = b[:rng.randrange(1, len(b))]
        else:
            del b[rng.randrange(2, len(b))]
        if f not in b:
            return bytes(b)


class ChunkStream:
    """readinto() hands out queued chunks, one per call; write() is kept."""

    def __init__(self):
        self.chunks = []
        self.written = bytearray()
        self.eof = False

    def readinto(self, buf):
        if not self.chunks:
            return 0
        data = self.chunks.pop(0)
        buf[:len(data)] = data
        return len(data)

    def write(self, data):
        self.written += bytes(data)
        return len(data)


class FakeClock:
    """The board's ms clock: 1 ms per reading, so timeouts pass at once."""

    def __init__(self):
        self.ms = 0

    def __call__(self):
        self.ms += 1
        return self.ms


def tick_payload(t_ms, flags=0, record=None, hello_seq=0):
    p = struct.pack(lc.TICK_FMT, t_ms, 1000, 32768, 30000, flags)
    if flags & lc.TICK_BOOT:
        n = lc.NO_RECORD if record is None else len(record)
        p += struct.pack(lc.BOOT_FMT, hello_seq, 16, 4096, 0, n) + (record or b"")
    return p


def test_fuzz_the_firmware_end():
    rng = random.Random(5)
    stream = ChunkStream()
    link = LinkHal(stream, clock=FakeClock())
    link.hello(True, "fuzz")
    stream.chunks.append(frame(lc.T_TICK, 100, tick_payload(0, lc.TICK_BOOT, b"REC")))
    assert link.poll(10) == TICK and link.synced and link.load_record() == b"REC"
    seq, t_ms = 100, 0
    want_replayed = want_skipped = 0
    accepted = []
    expected = []
    n_items = 0
    old = []
    n_bad = 0
    while n_items < 15000:
        n_items += 1
        r = rng.random()
        n_bad += r >= 0.3
        if r < 0.3:                                     # the next TICK, maybe after a gap
            gap = 1 if rng.random() < 0.9 else rng.randrange(2, 5)
            seq = (seq + gap) & 0xFFFF
            want_skipped += gap - 1
            t_ms += 1000
            f = frame(lc.T_TICK, seq, tick_payload(t_ms))
            old.append(f)
            expected.append(t_ms)
            data = f
        elif r < 0.4 and old:                           # a replay of an old TICK
            data = rng.choice(old[-50:])
            want_replayed += 1
        elif r < 0.75:                                  # a mutated TICK
            data = mutate(rng, frame(lc.T_TICK, (seq + 1) & 0xFFFF, tick_payload(t_ms + 1000)))
        elif r < 0.85:                                  # random bytes
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        else:                                           # well framed, badly formed
            k = rng.randrange(4)
            if k == 0:
                data = frame(lc.T_TICK, (seq + 1) & 0xFFFF, b"\x01\x02")      # short TICK
            elif k == 1:
                data = frame(lc.T_TICK, (seq + 1) & 0xFFFF,                    # record longer than the frame
                             tick_payload(5, lc.TICK_BOOT, b"")[:-2] + b"\xff\x00")
            elif k == 2:
                data = frame(lc.T_REPLY, rng.randrange(65536), bytes(lc.REPLY_SIZE))  # the other direction
            else:
                data = frame(lc.T_EVENT, rng.randrange(65536), b"{not json")
        i = 0
        while i < len(data):
            n = rng.randrange(1, 100)
            stream.chunks.append(data[i:i + n])
            i += n
        while True:
            got = link.poll(5)
            if got == TICK:
                accepted.append(link.ticks_ms())
                assert link.adc_read(0) == 1000 and link.adc_read(1) == 32768
            elif got == NOTHING and not stream.chunks:
                break
    assert n_bad >= 10000
    assert accepted == expected
    # A frame cut by one byte and completed by the next item's first byte is a
    # good frame again (chance 1/256 per such cut; see test_link_codec): it may
    # add a replay or two, never a wrong tick.
    assert want_replayed <= link.replayed <= want_replayed + 5
    assert link.skipped == want_skipped
    p = link.parser
    assert p.bad_crc + p.bad_header + p.truncated > 2000
    assert p.garbage_bytes > 0


def test_the_firmware_end_answers_a_retry_with_the_same_bytes_and_takes_commands():
    stream = ChunkStream()
    link = LinkHal(stream, clock=FakeClock())
    link.hello(True, "fw")
    link.hello(True, "fw")                          # the twin will answer both
    stream.chunks.append(frame(lc.T_TICK, 6, tick_payload(0, lc.TICK_BOOT, b"OLD", hello_seq=0)))
    assert link.poll(10) == NOTHING and not link.synced and link.replayed == 1
    stream.chunks.append(frame(lc.T_TICK, 7, tick_payload(0, lc.TICK_BOOT, hello_seq=1)))
    assert link.poll(10) == TICK and link.synced
    assert link.load_record() is None
    link.replayed = 0
    stream.written.clear()
    frame_dict = {"t_ms": 0, "state": "BOOT", "substate": "", "cell_mv": 100, "current_ua": 0,
                  "temp_dc": 250, "setpoint_ua": 0, "cvl_mv": 2600, "dvl_mv": 2000, "ccl_ua": 0,
                  "dcl_ua": 0, "plated_uas": 0, "inventory_uas": 0, "target_uas": 1, "soc_pm": 0,
                  "soc_bound_pm": 0, "li_uah": 0, "li_bound_uah": 0, "catholyte_x_pm": 0, "loss_ppm": 0,
                  "formation_pm": 0, "ce_ppm": 0, "faults": ["LINK_LOST"], "event_seq": 3}
    link.begin_answer()
    link.save_record(b"R" * 64)
    link.add_event({"kind": "event", "seq": 3})
    link.send_answer(frame_dict, True)
    first = bytes(stream.written)
    stream.written.clear()
    stream.chunks.append(frame(lc.T_TICK, 7, tick_payload(0, lc.TICK_RETRY)))
    assert link.poll(10) == NOTHING
    assert bytes(stream.written) == first and link.retries_answered == 1
    stream.written.clear()
    stream.chunks.append(frame(lc.T_TICK, 7, tick_payload(0)))        # same seq, no RETRY: a replay
    assert link.poll(10) == NOTHING and link.replayed == 1 and not stream.written
    cmd = json.dumps({"id": 4, "name": "stop", "args": {}}).encode()
    stream.chunks.append(frame(lc.T_COMMAND, 8, cmd))
    assert link.poll(10) == COMMAND and (link.cmd_id, link.cmd_name, link.cmd_args) == (4, "stop", {})
    stream.chunks.append(frame(lc.T_COMMAND, 9, b"[1, 2"))
    before = link.bad_payload
    assert link.poll(10) == NOTHING and link.bad_payload == before + 1
    # the answer decodes as sent
    p = lc.Parser()
    p.feed(first)
    types = []
    while p.next():
        types.append(p.ftype)
        if p.ftype == lc.T_REPLY:
            v = lc.unpack_reply(bytes(p.buf[p.pos:p.pos + p.n]))
            assert v["ack"] == 7 and v["flags"] == lc.REPLY_TICKED and v["fault_mask"] == 1 << 9
    assert types == [lc.T_SAVE_RECORD, lc.T_EVENT, lc.T_REPLY]


class TwinFeed:
    """The twin's stream: read() hands out queued chunks."""

    def __init__(self):
        self.chunks = []
        self.written = bytearray()
        self.eof = False

    def read(self, max_bytes, timeout_s):
        return self.chunks.pop(0) if self.chunks else b""

    def write(self, data):
        self.written += bytes(data)


def reply_payload(ack, state=1, relay=1, setpoint=50):
    v = dict.fromkeys([field[0] for field in lc.REPLY_FIELDS], 0)
    v.update(ack=ack, flags=lc.REPLY_TICKED, hal_setpoint_ua=setpoint, relay=relay, heartbeat=1,
             t_ms=1000, state=state, cell_mv=2300, current_ua=50, temp_dc=250, setpoint_ua=setpoint,
             cvl_mv=2600, dvl_mv=2000, ccl_ua=100, plated_uas=5, inventory_uas=5, target_uas=10)
    return struct.pack(lc.REPLY_FMT, *v.values())


def test_fuzz_the_twin_end():
    rng = random.Random(11)
    feed = TwinFeed()
    server = HilServer(load_parameter_set("d111"), feed, mode="lockstep", seed=1)
    server.device_id = "fuzz"
    hello = struct.pack(lc.HELLO_FMT, lc.HELLO_WANT_RECORD, 4) + b"fuzz"
    feed.chunks.append(frame(lc.T_HELLO, 0, hello))
    server._pump(0)
    seq = 0
    good_replies = good_events = replays = 0
    n_bad = 0
    for i in range(15000):
        r = rng.random()
        n_bad += r >= 0.3
        if r < 0.25:
            seq = (seq + 1) & 0xFFFF
            data = frame(lc.T_REPLY, seq, reply_payload(0))
            good_replies += 1
        elif r < 0.3:
            seq = (seq + 1) & 0xFFFF
            good_events += 1
            data = frame(lc.T_EVENT, seq, json.dumps({"kind": "event", "seq": good_events, "event": "X"}).encode())
        elif r < 0.35:
            data = frame(lc.T_REPLY, seq, reply_payload(0))                  # replayed seq
            replays += 1
        elif r < 0.7:
            data = mutate(rng, frame(lc.T_REPLY, (seq + 1) & 0xFFFF, reply_payload(0)))
        elif r < 0.8:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        else:                                                               # framed but malformed
            seq = (seq + 1) & 0xFFFF
            data = frame(*rng.choice([
                (lc.T_REPLY, seq, reply_payload(0)[:-1]),                   # short
                (lc.T_REPLY, seq, reply_payload(0, state=200)),             # no such state
                (lc.T_REPLY, seq, reply_payload(0, relay=7)),
                (lc.T_EVENT, seq, b"\xff\xfe"),
                (lc.T_EVENT, seq, b'{"seq": "x"}'),
                (lc.T_COMMAND_RESULT, seq, b"{}"),
                (lc.T_HELLO, seq, b""),
                (lc.T_TICK, seq, b"\x00" * 11),                             # our own direction
            ]))
        feed.chunks.append(data)
        server._pump(0)
        if rng.random() < 0.3:
            server.link.parser.expire()
    for _ in range(10):
        server.link.parser.expire()
        server._pump(0)
    assert n_bad >= 10000
    c = server.link.counters
    # As at the firmware's end, a frame cut by one byte and completed by the next
    # item's first byte may be a good frame again (chance 1/256 per such cut).
    assert good_replies <= server.replies <= good_replies + 2
    assert len(server.recorder.events) == good_events
    assert replays <= c["replayed"] <= replays + 2
    assert c["bad_payload"] > 1000
    assert c["bad_crc"] + c["bad_header"] + c["truncated"] > 2000
    assert c["events_lost"] == 0
    assert server.board.setpoint_ua == 50 and server.board.relay_closed


@pytest.mark.parametrize("board, range_ua", [
    ("bench_ua", 2048),
    (dict(load_board("bench_ua").values, source_range_uA=700.0, source_resolution_uA=1400 / 65536), 700),
])
def test_the_twin_end_holds_a_replys_setpoint_to_its_boards_source_range(board, range_ua):
    feed = TwinFeed()
    server = HilServer(load_parameter_set("d111"), feed, mode="lockstep", seed=1, board=board)
    hello = struct.pack(lc.HELLO_FMT, lc.HELLO_WANT_RECORD, 4) + b"wide"
    feed.chunks.append(frame(lc.T_HELLO, 0, hello))
    server._pump(0)
    for seq, setpoint in enumerate((5000, -5000, 650, -650), start=1):
        feed.chunks.append(frame(lc.T_REPLY, seq, reply_payload(0, setpoint=setpoint)))
        server._pump(0)
        assert server.replies == seq
        expected = max(-range_ua, min(range_ua, setpoint))
        assert server.board.setpoint_ua == pytest.approx(expected, abs=0.05), setpoint


class Flood(ChunkStream):
    """Garbage without end, never a TICK."""

    def readinto(self, buf):
        for i in range(len(buf)):
            buf[i] = 0x5A
        return len(buf)


def test_a_flood_of_garbage_does_not_hide_a_dead_link():
    stream = Flood()
    link = LinkHal(stream, clock=FakeClock())
    assert link.poll(50) == NOTHING            # returns on time despite the flood
    assert link.parser.garbage_bytes > 0
    assert link.ms_since_tick() >= 50


def test_a_hostile_command_or_a_result_too_big_for_a_frame_is_dropped_and_counted_never_raised():
    # {"id": "A"*470, "name": "x"}: 493 bytes, inside the 512 limit; its result
    # would be 520 bytes. A non-int id is bad_payload; a result that does not fit
    # a frame is dropped and counted (tx_dropped), never a LinkError out of serve().
    stream = ChunkStream()
    link = LinkHal(stream, clock=FakeClock())
    link.hello(True, "fuzz")
    stream.chunks.append(frame(lc.T_TICK, 1, tick_payload(0, lc.TICK_BOOT, hello_seq=link._hello_seq)))
    assert link.poll(10) == TICK
    cmd = json.dumps({"id": "A" * 470, "name": "x"}).encode()
    assert len(cmd) == 493
    stream.chunks.append(frame(lc.T_COMMAND, 2, cmd))
    assert link.poll(10) == NOTHING and link.bad_payload == 1
    before = bytes(stream.written)
    link.send_command_result(7, False, "X" * 600)
    assert link.tx_dropped == 1 and bytes(stream.written) == before
    link.begin_answer()
    assert link.add_event({"event": "X", "detail": "y" * 600}) is False and link.tx_dropped == 2


def test_a_backlog_at_either_end_is_taken_in_full():
    # The case: 100 HELLOs (2,300 bytes) waiting when the twin reads 4,096 at
    # once; 55 of them used to be dropped as garbage. And the firmware reading a
    # backlog of TICK-sized frames 256 bytes at a time, more than its 2,048-byte answer.
    from twin.hil.link_end import TwinLinkEnd

    hellos = b"".join(frame(lc.T_HELLO, i, struct.pack(lc.HELLO_FMT, 0, 8) + b"dev-%04d" % i) for i in range(100))
    assert len(hellos) > 2048
    feed = TwinFeed()
    feed.chunks.append(hellos + bytes(4096 - len(hellos)))       # one full read: the backlog, then zeros
    end = TwinLinkEnd(feed)
    got = end.frames(0)
    assert [seq for ftype, seq, _ in got] == list(range(100))
    assert end.counters["garbage_bytes"] == 4096 - len(hellos) and end.counters["frames"] == 100
    stream = ChunkStream()
    link = LinkHal(stream, clock=FakeClock())
    link.hello(True, "backlog")
    boot = frame(lc.T_TICK, 0, tick_payload(0, lc.TICK_BOOT, hello_seq=link._hello_seq))
    ticks = b"".join(frame(lc.T_TICK, i, tick_payload(1000 * i)) for i in range(1, 200))
    data = boot + ticks
    assert len(data) > 2 * lc.MAX_FRAME + 2048
    stream.chunks.extend(data[i:i + 256] for i in range(0, len(data), 256))
    seen = []
    while stream.chunks or link.parser.pending():
        if link.poll(5) == TICK:
            seen.append(link.ticks_ms())
        elif not stream.chunks:
            break
    assert seen == [1000 * i for i in range(200)]
    assert link.parser.garbage_bytes == 0 and link.parser.frames == 200


def _synced_link():
    stream = ChunkStream()
    link = LinkHal(stream, clock=FakeClock())
    link.hello(True, "fuzz")
    stream.chunks.append(frame(lc.T_TICK, 1, tick_payload(0, lc.TICK_BOOT, hello_seq=link._hello_seq)))
    assert link.poll(10) == TICK
    return stream, link


def test_a_request_is_read_exactly_and_a_hostile_one_is_counted_bad_payload_never_raised():
    stream, link = _synced_link()
    seq = 2
    for ua in (0, 100, -100, 2**29 - 1, -2**29, 5_000_000):         # what a board's small int holds
        stream.chunks.append(frame(lc.T_REQUEST, seq, struct.pack(lc.REQUEST_FMT, ua)))
        seq += 1
        assert link.poll(10) == REQUEST and link.request_ua == ua
    hostile = [b"", b"\x01", b"\x01\x02\x03", b"\x01\x02\x03\x04\x05", bytes(lc.MAX_PAYLOAD)]
    hostile += [struct.pack(lc.REQUEST_FMT, ua) for ua in (2**29, -2**29 - 1, 2**31 - 1, -2**31)]
    for i, payload in enumerate(hostile, 1):
        stream.chunks.append(frame(lc.T_REQUEST, seq, payload))
        seq += 1
        assert link.poll(10) == NOTHING and link.bad_payload == i and link.request_ua == 5_000_000
    # an old seq is a replay, not a request
    stream.chunks.append(frame(lc.T_REQUEST, 3, struct.pack(lc.REQUEST_FMT, 7)))
    assert link.poll(10) == NOTHING and link.replayed == 1 and link.request_ua == 5_000_000


class RequestOnly:
    """A controller as serve() meets it between ticks: it records the requests taken."""

    def __init__(self, source_max_ua):
        self.config = type("C", (), {"source_max_ua": source_max_ua})()
        self.taken = []

    def request_current_ua(self, current_ua):
        self.taken.append(current_ua)
        return True


def test_serve_takes_a_request_within_the_source_and_counts_one_beyond_it():
    from bmsfw.link_serve import serve

    stream, link = _synced_link()
    controller = RequestOnly(1000)
    for seq, ua in enumerate((100, 1001, -1000, -1001, 1000, 2**29 - 1, 0), 2):
        stream.chunks.append(frame(lc.T_REQUEST, seq, struct.pack(lc.REQUEST_FMT, ua)))
    stream.chunks.append(frame(lc.T_END, 9, b"\x00\x00"))
    assert serve(link, controller, "fuzz", link_timeout_ms=10**6) == 0 and link.ended
    assert controller.taken == [100, -1000, 1000, 0]
    assert link.bad_payload == 3


def _written_types(stream):
    p = lc.Parser(read_max=len(stream.written) or 1)
    p.feed(bytes(stream.written))
    types = []
    while p.next():
        types.append(p.ftype)
    return types


def test_serve_answers_an_end_sent_again_and_no_older_one():
    """The twin sends END again while no answer came: the firmware's answer may be
    the frame the line lost, so each repeat of the END taken gets one (an END of an
    older seq is a replay and gets none), until the stream closes or the linger ends."""
    from bmsfw.link_serve import serve

    stream, link = _synced_link()
    stream.chunks += [frame(lc.T_END, 2, b"\x00\x00"), frame(lc.T_END, 2, b"\x00\x00"),
                      frame(lc.T_END, 1, b"\x00\x00"), frame(lc.T_END, 2, b"\x00\x00")]
    stream.written.clear()
    assert serve(link, RequestOnly(1000), "fuzz", link_timeout_ms=10**6) == 0 and link.ended
    assert _written_types(stream).count(lc.T_END) == 3
    assert link.replayed == 1 and not stream.chunks


def test_serve_stops_lingering_when_the_twin_closes_the_stream():
    from bmsfw.link_serve import serve

    stream, link = _synced_link()
    stream.chunks.append(frame(lc.T_END, 2, b"\x00\x00"))
    stream.eof = True
    clock_before = link._clock_ms()
    assert serve(link, RequestOnly(1000), "fuzz", link_timeout_ms=10**6) == 0 and link.ended
    assert link._clock_ms() - clock_before < 50       # no 1.5 s of polling a closed stream
