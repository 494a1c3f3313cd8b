"""Units scaled to the cell, for what a person reads (plots, the CLI's lines): the
1 cm2 test cell in µA and µAh, the 1 Ah product cell in mA and mAh, a 100 Ah one in A
and Ah. The data files stay in their own fixed units (the column names say which).
"""
from __future__ import annotations

import math

# (name, factor from the base unit): the first whose scaled value reaches SHOWN_FROM
# is used, so a 1 Ah cell reads 1000 mAh (not 1 Ah), the test cell 200 µAh
_CURRENT = (("A", 1.0), ("mA", 1e3), ("µA", 1e6))      # from A
_CHARGE = (("Ah", 1e-6), ("mAh", 1e-3), ("µAh", 1.0))               # from µAh


SHOWN_FROM = 10.0


def _pick(magnitude: float, table) -> tuple:
    if not math.isfinite(magnitude) or magnitude <= 0:
        return table[-1]
    for name, factor in table:
        if magnitude * factor >= SHOWN_FROM:
            return name, factor
    return table[-1]


def current_unit(largest_A: float) -> tuple:
    """(unit name, factor from A) that shows the largest |current| at >= SHOWN_FROM."""
    return _pick(abs(largest_A), _CURRENT)


def charge_unit(largest_uAh: float) -> tuple:
    """(unit name, factor from µAh) that shows the largest |charge| at >= SHOWN_FROM."""
    return _pick(abs(largest_uAh), _CHARGE)


def charge_text(value_uAh: float, unit: tuple | None = None) -> str:
    name, factor = unit or charge_unit(value_uAh)
    return "%.4g %s" % (value_uAh * factor, name)


def current_text(value_A: float, unit: tuple | None = None) -> str:
    name, factor = unit or current_unit(value_A)
    return "%.4g %s" % (value_A * factor, name)
