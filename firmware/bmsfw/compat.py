# The one place where CPython and MicroPython differ for bmsfw.
#
# Everything else imports const, ticks_ms, ticks_diff, ticks_add and crc32 from
# here. On MicroPython the real ones are used; on CPython small equivalents
# stand in. An ImportError that is not the expected "this is CPython" case is
# re-raised (micropython-lib lora/__init__.py does the same): a board firmware
# missing `time.ticks_diff` must fail loudly, not fall back silently.
import sys

_IS_MICROPYTHON = sys.implementation.name == "micropython"

try:
    from micropython import const
except ImportError:
    if _IS_MICROPYTHON:
        raise

    def const(value):  # type: ignore[misc]
        return value


# MicroPython's ticks wrap at 2**30 (TICKS_PERIOD in extmod/modtime.c). The
# CPython fallback uses the same period, so a clock that wraps like a board's
# (or a simulated clock that simply counts up) compares the same on both.
_TICKS_MAX = const((1 << 30) - 1)
_TICKS_HALFPERIOD = const(1 << 29)

try:
    from time import ticks_add, ticks_diff, ticks_ms
except ImportError:
    if _IS_MICROPYTHON:
        raise
    import time as _time

    def ticks_ms():
        # Only for tools on the host; the controller reads time from its HAL.
        return int(_time.monotonic() * 1000) & _TICKS_MAX  # type: ignore[attr-defined]

    def ticks_diff(new, old):  # type: ignore[no-redef]
        """Signed ms from old to new, modulo the 2**30 tick period."""
        return ((new - old + _TICKS_HALFPERIOD) & _TICKS_MAX) - _TICKS_HALFPERIOD

    def ticks_add(ticks, delta_ms):  # type: ignore[misc]
        return (ticks + delta_ms) & _TICKS_MAX


try:
    from binascii import crc32
except ImportError:
    # Some MicroPython ports build binascii without crc32
    # (MICROPY_PY_BINASCII_CRC32); CPython always has it.
    if not _IS_MICROPYTHON:
        raise
    crc32 = None  # type: ignore[assignment]

if crc32 is None:

    def crc32(data, value=0):
        """IEEE 802.3 CRC-32 (same result as binascii.crc32), bitwise: the
        record is ~64 bytes and written a few hundred times per formation."""
        crc = value ^ 0xFFFFFFFF
        for byte in data:
            crc ^= byte
            for _ in range(8):
                if crc & 1:
                    crc = (crc >> 1) ^ 0xEDB88320
                else:
                    crc >>= 1
        return crc ^ 0xFFFFFFFF
