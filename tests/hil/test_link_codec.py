"""The HIL frame codec (firmware/bmsfw/link_codec.py): CRC, layout, parser
recovery, and a fuzz of >= 10,000 random and mutated frames in which every
byte that is not a good frame is counted exactly once.

Run: .venv/bin/python -m pytest tests/hil/test_link_codec.py -q
"""
import random
import re
import struct
from pathlib import Path

import pytest

from bmsfw import link_codec as lc


def frame(ftype, seq, payload):
    buf = bytearray(lc.MAX_FRAME)
    lc.put_bytes(buf, lc.HEADER_SIZE, payload)
    n = lc.finish_frame(buf, 0, ftype, seq, len(payload))
    return bytes(buf[:n])


def parse_all(parser):
    out = []
    while parser.next():
        out.append((parser.ftype, parser.seq, bytes(parser.buf[parser.pos:parser.pos + parser.n])))
    return out


def test_crc16_ccitt_false_check_value_pure_and_fast_agree():
    assert lc.crc16_py(b"123456789", 0, 9) == 0x29B1
    assert lc.crc16(b"123456789", 0, 9) == 0x29B1
    rng = random.Random(1)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80)))
        init = rng.randrange(0x10000)
        assert lc.crc16_py(data, 0, len(data), init) == lc.crc16(data, 0, len(data), init)


def test_frame_layout_is_as_documented():
    f = frame(lc.T_TICK, 0x1234, b"\x01\x02\x03")
    assert f[:2] == b"\xa5\x5a"
    assert f[2] == lc.VERSION and f[3] == lc.T_TICK
    assert struct.unpack_from("<HH", f, 4) == (3, 0x1234)
    hcrc = struct.unpack_from("<H", f, 8)[0]
    assert hcrc == lc.crc16_py(f, 2, 8)
    assert f[10:13] == b"\x01\x02\x03"
    assert struct.unpack_from("<H", f, 13)[0] == lc.crc16_py(f, 10, 13, hcrc)
    assert len(f) == lc.OVERHEAD + 3


def test_sizes_match_the_formats():
    assert lc.REPLY_SIZE == struct.calcsize(lc.REPLY_FMT)
    assert lc.TICK_SIZE == 11 and lc.BOOT_SIZE == 9
    assert lc.MAX_FRAME == lc.OVERHEAD + lc.MAX_PAYLOAD
    # 6 link fields, 24 telemetry fields (5 of the estimator), then one u32 per firmware link counter
    assert len(struct.unpack(lc.REPLY_FMT, bytes(lc.REPLY_SIZE))) == 6 + 24 + len(lc.LINK_COUNTERS)
    assert lc.REPLY_FMT.endswith("I" * len(lc.LINK_COUNTERS))


@pytest.mark.parametrize("n", [-1, lc.MAX_PAYLOAD + 1])
def test_a_payload_out_of_range_is_refused_and_nothing_written(n):
    buf = bytearray(2 * lc.MAX_FRAME)
    with pytest.raises(lc.LinkError) as err:
        lc.finish_frame(buf, 0, lc.T_TICK, 0, n)
    assert err.value.field == "length"
    assert buf == bytearray(2 * lc.MAX_FRAME)


def test_a_frame_that_does_not_fit_the_buffer_is_refused():
    with pytest.raises(lc.LinkError):
        lc.put_bytes(bytearray(20), 10, b"x" * 9)


def test_seq_delta_wraps():
    assert lc.seq_delta(1, 0) == 1
    assert lc.seq_delta(0, 0xFFFF) == 1
    assert lc.seq_delta(5, 5) == 0
    assert lc.seq_delta(4, 5) == -1
    assert lc.seq_delta(10, 0xFFF0) == 26


def test_frames_are_found_behind_garbage_and_false_starts():
    p = lc.Parser()
    good = frame(lc.T_REPLY, 9, b"abc")
    # garbage, a lone A5, a false start marker with a bad header, then the frame
    junk = b"\x00\x11garbage\xa5\x01" + b"\xa5\x5a\x01\x03\xff\xff\x00\x00\x00\x00"
    p.feed(junk + good)
    assert parse_all(p) == [(lc.T_REPLY, 9, b"abc")]
    assert p.bad_header == 1
    assert p.garbage_bytes + p.bad_header == len(junk)


def test_a_good_frame_hidden_inside_a_false_frame_is_still_found():
    p = lc.Parser()
    good = frame(lc.T_EVENT, 3, b"{}")
    bad = bytearray(frame(lc.T_EVENT, 2, b"x" * 40))
    bad[-1] ^= 0xFF                             # its CRC fails...
    # ...and the good frame sits inside its payload's span
    p.feed(bytes(bad[:14]) + good + bytes(bad[14 + len(good):]))
    assert (lc.T_EVENT, 3, b"{}") in parse_all(p)


def test_bad_crc_is_counted_and_the_next_frame_survives():
    p = lc.Parser()
    bad = bytearray(frame(lc.T_TICK, 1, b"\x00" * 11))
    bad[12] ^= 0x10
    p.feed(bytes(bad) + frame(lc.T_TICK, 2, b"\x01" * 11))
    assert [f[1] for f in parse_all(p)] == [2]
    assert p.bad_crc == 1


def test_a_truncated_frame_waits_then_expires():
    p = lc.Parser()
    f = frame(lc.T_TICK, 1, b"\x00" * 11)
    p.feed(f[:15])
    assert parse_all(p) == []
    assert p.pending() == 15
    assert p.expire() is True
    assert parse_all(p) == []
    assert p.truncated == 1
    assert p.garbage_bytes == 14
    assert p.pending() == 0 and p.expire() is False
    p.feed(f)
    assert [x[1] for x in parse_all(p)] == [1]


def test_unknown_type_version_and_oversize_length_are_bad_headers():
    for ftype, version, n in ((0, lc.VERSION, 0), (99, lc.VERSION, 0), (lc.T_TICK, 1, 0),
                              (lc.T_TICK, lc.VERSION, lc.MAX_PAYLOAD + 1)):
        hdr = bytearray(struct.pack("<BBBBHH", 0xA5, 0x5A, version, ftype, n, 0))
        hdr += struct.pack("<H", lc.crc16_py(hdr, 2, 8))
        p = lc.Parser()
        p.feed(bytes(hdr) + b"\x00\x00")
        assert parse_all(p) == []
        assert p.bad_header == 1


def test_feeding_more_than_the_buffer_drops_the_oldest_and_counts_them():
    p = lc.Parser()
    p.feed(b"\x00" * (len(p.buf) + 100))
    assert p.garbage_bytes == 100
    assert parse_all(p) == []
    assert p.garbage_bytes == len(p.buf) + 100 == p.rx_bytes


def test_the_message_table_is_defined_once_and_the_constants_agree():
    names = [row[0] for row in lc.MESSAGES]
    assert len(set(names)) == len(names) == lc.MAX_TYPE
    for i, name in enumerate(names):
        assert getattr(lc, "T_" + name) == i + 1 == lc.TYPE_NAMES.index(name)
    # each end takes the other's messages (and the firmware's END, its ack)
    assert set(lc.TO_FIRMWARE) == {lc.T_TICK, lc.T_COMMAND, lc.T_END, lc.T_REQUEST}
    assert set(lc.TO_TWIN) == {i + 1 for i, row in enumerate(lc.MESSAGES) if row[1] == lc.FW} | {lc.T_END}
    # docs/hil.md's table lists the same types, names and senders
    text = (Path(__file__).resolve().parents[2] / "docs" / "hil.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| (\w+) \| (fw|twin) ", text, re.M)
    assert [(int(t), n, "firmware" if d == "fw" else "twin") for t, n, d in rows] == [
        (i + 1, name, sender) for i, (name, sender) in enumerate(lc.MESSAGES)]


@pytest.mark.parametrize("n_frames", [1, 100, 250])
def test_a_backlog_of_frames_arriving_at_once_is_parsed_whole(n_frames):
    # More bytes than the firmware's largest answer (its 2,048-byte tx buffer)
    # at once, in reads of the owner's read_max: every frame found, none dropped.
    frames = [frame(lc.T_HELLO, i, bytes((0, 8)) + b"dev-%04d" % i) for i in range(n_frames)]
    data = b"".join(frames)
    if n_frames >= 100:
        assert len(data) > 2048
    for read_max in (256, 4096):
        p = lc.Parser(read_max)
        got = []
        for off in range(0, len(data), read_max):
            p.feed(data[off:off + read_max])
            got += [p.seq for _ in iter(p.next, False)]
        assert got == list(range(n_frames))
        assert p.garbage_bytes == 0 and p.frame_bytes == p.rx_bytes == len(data)


def test_counters_saturate_instead_of_wrapping():
    p = lc.Parser()
    p.garbage_bytes = lc.COUNT_MAX - 3
    p.feed(b"\x00" * 100)
    parse_all(p)
    assert p.garbage_bytes == lc.COUNT_MAX
    assert lc.sat(lc.COUNT_MAX + 5) == lc.COUNT_MAX and lc.sat(7) == 7


def _mutate(rng, f):
    """A bad copy of frame f: one byte changed, dropped or inserted, or a cut.
    CRC-16 catches every such error; a copy that still holds f whole (a byte
    inserted after it, equal to its last) is not a bad frame and is redrawn."""
    while True:
        b = _mutate_once(rng, f)
        if f not in b:
            return b


def _mutate_once(rng, f):
    kind = rng.randrange(4)
    b = bytearray(f)
    if kind == 0:                           # one byte changed
        i = rng.randrange(len(b))
        b[i] ^= rng.randrange(1, 256)
    elif kind == 1:                         # cut short
        b = b[:rng.randrange(1, len(b))]
    elif kind == 2:                         # one byte dropped from the middle
        del b[rng.randrange(2, len(b))]
    else:                                   # one byte inserted
        b.insert(rng.randrange(2, len(b)), rng.randrange(256))
    return bytes(b)


def test_fuzz_every_bad_byte_is_counted_and_every_good_frame_found():
    """12,000 items: good frames, mutated frames, random blobs, in random
    order and random chunking. Afterwards: every good frame was found, in
    order, nothing else was, and good bytes + counted bytes == bytes fed."""
    rng = random.Random(20261125)
    p = lc.Parser()
    fed = 0
    expected = []
    found = []
    seq = 0
    n_bad = 0
    for _ in range(12000):
        kind = rng.random()
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
        ftype = rng.randrange(1, lc.T_COMMAND_RESULT + 1)
        if kind < 0.35:
            data = frame(ftype, seq, payload)
            expected.append((ftype, seq, payload))
            seq = (seq + 1) & 0xFFFF
        elif kind < 0.8:
            data = _mutate(rng, frame(ftype, 0xBEEF, payload))
            n_bad += 1
        else:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
            if rng.random() < 0.3:
                data = b"\xa5\x5a" + data
        i = 0
        while i < len(data):
            step = rng.randrange(1, 200)
            p.feed(data[i:i + step])
            fed += len(data[i:i + step])
            i += step
            found.extend(parse_all(p))
        if rng.random() < 0.5:
            # the line goes quiet: what is pending is a cut frame
            while p.expire():
                found.extend(parse_all(p))
    while p.expire():
        found.extend(parse_all(p))
    # A cut frame completed by the bytes that happen to follow it is a good
    # frame on the wire (chance 1/256 per cut of one byte): rare, and counted
    # as a frame, not as bad bytes.
    rebuilt = [f for f in found if f[1] == 0xBEEF]
    assert len(rebuilt) < n_bad / 100
    assert [f for f in found if f[1] != 0xBEEF] == expected
    good_bytes = sum(lc.OVERHEAD + len(f[2]) for f in found)
    assert good_bytes + p.garbage_bytes + p.bad_header + p.bad_crc + p.truncated == fed
    assert p.frames == len(found)
    assert n_bad > 4000
    assert p.bad_crc + p.bad_header + p.truncated > 0
