# bmsfw.compat: the tick arithmetic and CRC that both interpreters must agree on.
# Run: .venv/bin/python -m pytest tests/firmware/test_compat.py -q
from bmsfw import compat


def test_ticks_diff_across_the_wrap():
    # MicroPython ticks wrap at 2**30; 5 ms after the wrap is still +5 ms.
    before = (1 << 30) - 3
    after = compat.ticks_add(before, 5)
    assert after == 2
    assert compat.ticks_diff(after, before) == 5
    assert compat.ticks_diff(before, after) == -5


def test_ticks_diff_near_the_top_of_the_tick_range():
    # HALs hand out ticks in 0 .. 2**30 - 1 (MicroPython's range; the twin
    # wraps its clock the same way): differences there are plain.
    top = (1 << 30) - 1
    assert compat.ticks_diff(top, top - 1000) == 1000
    assert compat.ticks_diff(5000, 4000) == 1000
    assert compat.ticks_diff(4000, 5000) == -1000


def test_crc32_matches_the_ieee_value():
    assert compat.crc32(b"a") & 0xFFFFFFFF == 0xE8B7BE43
    assert compat.crc32(b"123456789") & 0xFFFFFFFF == 0xCBF43926


def test_const_returns_its_value():
    assert compat.const(7) == 7
