"""The units a study's inputs are written in, and what each means.

Cell parameters are written in the unit twin.parameters.FIELD_UNITS gives (as in
a parameter file), firmware config values in the unit their name carries (the
table below reads it off the name), ambient in degC. A protocol placeholder
takes any unit the protocol language knows, or a current per cm2 of the
variant's own area (so a density stays a density when the area spreads).
"""
from __future__ import annotations

from decimal import Decimal

AMBIENT_UNIT = "degC"

# unit -> (what it replaces in a protocol line, SI unit written there, scale to it, per cm2)
PROTOCOL_UNITS = {
    "nA": ("current", "A", "1e-9", False),
    "uA": ("current", "A", "1e-6", False),
    "mA": ("current", "A", "1e-3", False),
    "A": ("current", "A", "1", False),
    "nA/cm2": ("current", "A", "1e-9", True),
    "uA/cm2": ("current", "A", "1e-6", True),
    "mA/cm2": ("current", "A", "1e-3", True),
    "A/cm2": ("current", "A", "1", True),
    "mV": ("voltage", "V", "1e-3", False),
    "V": ("voltage", "V", "1", False),
    "s": ("duration", "s", "1", False),
    "min": ("duration", "s", "60", False),
    "h": ("duration", "s", "3600", False),
}

# bmsfw.config.Config names end in their unit; longer suffixes first, since
# "_uv_per_ua" also ends in "_ua".
_CONFIG_SUFFIXES = (
    ("_uv_per_ua", "uV/uA"),
    ("_ua_cm2", "uA/cm2"),
    ("_uah", "uAh"),
    ("_uas", "uA*ms"),
    ("_ua", "uA"),
    ("_mv", "mV"),
    ("_ms", "ms"),
    ("_mm2", "mm2"),
    ("_ohm", "ohm"),
    ("_ppm", "ppm"),
    ("_pm", "permille"),
    ("_dc", "0.1 degC"),
    ("_k", "K"),
)


def config_unit(field: str):
    """The unit a firmware config field's name carries, or None."""
    for suffix, unit in _CONFIG_SUFFIXES:
        if field.endswith(suffix):
            return unit
    return None


def protocol_quantity(value: float, unit: str, area_cm2: float) -> str:
    """The text a placeholder becomes: the value in SI, exact to the last digit
    the way the protocol parser reads it ("0.0001 A")."""
    _, si_unit, scale, per_cm2 = PROTOCOL_UNITS[unit]
    si = Decimal(repr(float(value))) * Decimal(scale)
    if per_cm2:
        si *= Decimal(repr(float(area_cm2)))
    return "%r %s" % (float(si), si_unit)
