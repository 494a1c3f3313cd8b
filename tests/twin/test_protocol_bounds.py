"""Protocols as streams, and their bounds (twin/protocol/__init__.py, steps.py), and
protocol files read one way (twin/textfile.py): what a typo or a hostile file gets.

Run: .venv/bin/python -m pytest tests/twin/test_protocol_bounds.py -q
"""
import os
import tracemalloc

import pytest

from twin.protocol import (
    MAX_SIMULATED_S,
    MAX_STEPS,
    Protocol,
    ProtocolError,
    charge,
    repeat,
    rest,
)
from twin.textfile import MAX_BYTES, InputFileError, read_text

CYCLE = "Repeat %d times:\n    Discharge at 100 uA for 15 minutes\n    Charge at 100 uA for 15 minutes\n"


def test_a_long_protocol_costs_its_text_not_its_length():
    text = "Charge at 100 uA for 2 hours\n" + CYCLE % 49_999
    tracemalloc.start()
    protocol = Protocol.parse(text)
    steps = protocol.steps()
    n, last, some = len(steps), steps[-1], steps[50_000]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 99_999 and len(protocol) == 99_999
    assert peak < 200_000                    # the expansion alone would be ~100,000 Step objects
    assert last.kind == "charge" and last.repeat_path == (49_998,)
    assert some.kind == "charge" and some.repeat_path == (24_999,)


def test_steps_index_slice_iterate_and_compare_like_the_expanded_list():
    protocol = Protocol.parse("Rest for 1 s\nRepeat 3 times:\n    Repeat 2 times:\n        Rest for 2 s\n"
                              "    Charge at 1 uA for 3 s\nRest for 4 s\n")
    expanded = list(iter(protocol))
    steps = protocol.steps()
    assert [steps[i] for i in range(len(steps))] == expanded == list(steps)
    assert [s.repeat_path for s in steps] == [s.repeat_path for s in expanded]
    assert steps[-1] == rest(4) and steps[-2] == charge(1e-6, 3) and steps[-2].repeat_path == (2,)
    assert steps[1:4] == expanded[1:4] and steps[::-3] == expanded[::-3]
    assert steps == expanded and steps == tuple(expanded) and steps != expanded[:-1]
    with pytest.raises(IndexError):
        steps[len(steps)]
    with pytest.raises(TypeError):
        steps["1"]


def test_a_billion_repeats_are_refused_naming_the_repeat_line():
    with pytest.raises(ProtocolError) as caught:
        Protocol.parse("Rest for 1 s\n" + CYCLE % 1_000_000_000)
    assert caught.value.line_no == 2
    assert "expands to 2000000001 steps" in caught.value.brief
    assert "at most %d steps" % MAX_STEPS in caught.value.brief
    with pytest.raises(ProtocolError, match="expands to"):      # nested counts multiply
        Protocol([repeat(1000, repeat(1000, rest(1)))])


def test_a_step_longer_than_ten_years_is_refused():
    for text in ("Charge at 10 uA for 1e300 hours", "Rest for 87661 h", "Hold at 2.5 V for 1e9 hours"):
        with pytest.raises(ProtocolError, match="above the bound on simulated time") as caught:
            Protocol.parse(text)
        assert caught.value.line_no == 1
    Protocol.parse("Rest for 87660 h")
    with pytest.raises(ProtocolError, match="bound on simulated time"):
        rest(MAX_SIMULATED_S * 1.001)


def test_fixed_steps_that_add_up_past_ten_years_are_refused_but_until_steps_are_not():
    with pytest.raises(ProtocolError, match=r"take 1\.2e\+05 h together") as caught:
        Protocol.parse("Repeat 5 times:\n    Rest for 24000 h\n")
    assert caught.value.line_no == 1
    # each until-step may stop at once: only their cap bounds them, at run time
    protocol = Protocol.parse("Repeat 1000 times:\n    Charge at 1 uA until 2.6 V\n")
    assert protocol.fixed_duration_s == 0.0 and len(protocol) == 1000


def test_a_bom_is_read_and_other_encodings_are_refused_naming_the_file(tmp_path):
    bom = tmp_path / "bom.txt"
    bom.write_bytes(b"\xef\xbb\xbfCharge at 10 uA for 1 hour\n")
    assert Protocol.from_file(bom).steps()[0] == charge(10e-6, 3600)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Rest for 1 s\nCharge at 10 \u00b5A for 1 hour\n".encode("latin-1"))
    with pytest.raises(InputFileError) as caught:
        Protocol.from_file(latin)
    assert caught.value.value == str(latin)
    assert "byte 0xb5 at line 2" in caught.value.why and "UTF-8" in caught.value.why


@pytest.mark.parametrize("make, says", [
    (lambda d: d, "not a regular file"),
    (lambda d: d / "missing.txt", "no such file"),
    (lambda d: _write(d / "big.txt", b"Rest for 1 s\n" * (MAX_BYTES // 13 + 1)), "larger than"),
    (lambda d: _write(d / "bin.txt", bytes(range(256))), "is not UTF-8"),
])
def test_files_that_are_not_protocol_text_are_refused(tmp_path, make, says):
    with pytest.raises(InputFileError, match=says):
        read_text(make(tmp_path), "protocol file")


def test_a_device_or_a_pipe_is_refused_without_reading_it(tmp_path):
    with pytest.raises(InputFileError, match="not a regular file"):
        read_text("/dev/zero", "protocol file")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="not a regular file"):
        read_text(fifo, "protocol file")        # opening it would block forever


def _write(path, data):
    path.write_bytes(data)
    return path
