"""Quantities of the protocol language: units, their scale to SI, and the way back.

Numbers are read as exact decimals and rounded once to float, so "0.1 mA" and
charge(100e-6, ...) give the same current_A bit for bit; a step's describe() writes
its SI values back in the largest unit that shows them at >= 1, digit for digit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Sequence

# unit -> (scale to SI as an exact decimal string)
CURRENT_UNITS = {"nA": "1e-9", "uA": "1e-6", "\u00b5A": "1e-6", "\u03bcA": "1e-6", "mA": "1e-3", "A": "1"}
VOLTAGE_UNITS = {"mV": "1e-3", "V": "1"}
TIME_UNITS = {}
for _names, _scale in (
    (("s", "sec", "secs", "second", "seconds"), "1"),
    (("min", "mins", "minute", "minutes"), "60"),
    (("h", "hr", "hrs", "hour", "hours"), "3600"),
):
    for _name in _names:
        TIME_UNITS[_name] = _scale

CURRENT_HINT = "a current such as '100 uA' (units nA, uA, \u00b5A, mA, A)"
VOLTAGE_HINT = "a voltage such as '2.0 V' (units V, mV)"
TIME_HINT = "a duration such as '15 minutes' (units s, min, h and their long forms)"

# The units describe() writes, largest first.
CURRENT_DISPLAY = (("A", "1"), ("mA", "1e-3"), ("uA", "1e-6"), ("nA", "1e-9"))
VOLTAGE_DISPLAY = (("V", "1"), ("mV", "1e-3"))


def _fmt_decimal(value: Decimal) -> str:
    return format(value.normalize(), "f")


def si_from(number_text: str, scale: str) -> float:
    # Exact decimal product, one rounding: "0.1" mA == 1e-4 A exactly as Python reads 1e-4.
    return float(Decimal(number_text) * Decimal(scale))


def pretty(value_si: float, units: Sequence[tuple]) -> str:
    """value in the first unit (name, scale) where it is >= 1, exact decimal digits."""
    exact = Decimal(repr(value_si))
    for name, scale in units:
        scaled = exact / Decimal(scale)
        if abs(scaled) >= 1:
            return "%s %s" % (_fmt_decimal(scaled), name)
    name, scale = units[-1]
    return "%s %s" % (_fmt_decimal(exact / Decimal(scale)), name)


def pretty_duration(duration_s: float) -> str:
    exact = Decimal(repr(duration_s))
    for name, scale in (("hour", 3600), ("minute", 60)):
        scaled = exact / scale
        if scaled >= 1 and scaled == scaled.to_integral_value():
            return "%s %s%s" % (_fmt_decimal(scaled), name, "" if scaled == 1 else "s")
    return "%s %s" % (_fmt_decimal(exact), "second" if exact == 1 else "seconds")
