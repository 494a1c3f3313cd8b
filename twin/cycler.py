"""The cycler channel an open-loop protocol runs on: compliance, current range,
safety limits and a hold's current limit, as data with units and sources.

    from twin.cycler import Cycler, load_cycler
    cycler = Cycler.for_cell(params)                 # defaults derived from the cell's design
    cycler = load_cycler("my_channel.toml", params)  # a file; what it leaves out, from the cell
    cycler.check_protocol(protocol)                  # CyclerError: a step the channel cannot run
    fields = cycler.segment_fields(step)             # the step's channel limits in cell_segment_t

What each limit does (the C core enforces them, c_core/cell.h cell_segment_t):
- compliance: the channel cannot drive the terminal above compliance_max_V while it
  pushes current in, nor below compliance_min_V while it draws current out. A step
  that meets compliance ends there with stop reason "compliance"; the protocol goes on.
- current range: the largest |current| the channel sources or sinks. A step asking
  for more is refused before anything runs, as a cycler's schedule editor would.
- hold current limit: a hold drives at most this either way (constant current at the
  limit until the voltage reaches its target, then the voltage hold).
- safety: whatever the step, the terminal leaving safety_min_V..safety_max_V or the
  cell reaching safety_max_temperature_C ends the run (stop reason "safety_voltage" or
  "safety_temperature"); the runner reports it and stops.

A file is the parameter sets' style: every entry a table with value, unit and source
(twin.parameters._entries), the unit the one CYCLER_UNITS names; any entry may be left
out, and then comes from the cell (Cycler.for_cell), with a source that says how.
Shipped descriptions live in twin/parameters/cyclers/ and load by name.
"""
from __future__ import annotations

import types
from pathlib import Path

from bmsfw.errors import FieldError
from twin.cell import KELVIN
from twin.parameters._entries import (
    PARAMETER_DIR,
    POSITIVE,
    EntryTable,
    ParameterError,
    check_range,
    load_toml,
    read_entry,
)

CYCLER_DIR = PARAMETER_DIR / "cyclers"

# The model's temperature range (twin.cell: -120..220 C); a safety limit outside it
# could never be reached.
_MODEL_TEMPERATURE_C = (-120.0, False, 220.0, False)
_ANY_VOLTAGE = (-10.0, True, 10.0, True)

# field -> (unit, allowed range)
_FIELDS = (
    ("compliance_max_V", "V", _ANY_VOLTAGE),
    ("compliance_min_V", "V", _ANY_VOLTAGE),
    ("current_range_A", "A", POSITIVE),
    ("hold_current_limit_A", "A", POSITIVE),
    ("safety_max_V", "V", _ANY_VOLTAGE),
    ("safety_min_V", "V", _ANY_VOLTAGE),
    ("safety_max_temperature_C", "degC", _MODEL_TEMPERATURE_C),
)
CYCLER_FIELDS = tuple(name for name, _, _ in _FIELDS)
CYCLER_UNITS = types.MappingProxyType({name: unit for name, unit, _ in _FIELDS})

# The cell_segment_t fields a cycler fills (Step.segment_fields fills the others).
SEGMENT_FIELDS = ("compliance_max_V", "compliance_min_V", "use_compliance", "safety_max_V",
                  "safety_min_V", "use_safety_voltage", "safety_max_temperature_K",
                  "use_safety_temperature", "current_limit_A", "use_current_limit")

# How the defaults follow from a cell's design (the [design] table of its parameter set).
# A charge may overshoot the design cut-off by this much before the channel stops
# driving: 0.4 V over d111's 2.6 V is 3.0 V, above every plateau of the OCV table
# (2.5 V at S8) and the 2.6 V the firmware allows, short of the supply rise (~4 V)
# that charging an exhausted catholyte ends in.
CHARGE_COMPLIANCE_MARGIN_V = 0.4
# A discharge may fall this far below the design cut-off: 1.5 V for d111, below the
# Li2S2 knee of the OCV table (1.9 V at Li:S 1.15) yet far above the bare-copper
# potential a cell shows once its lithium is gone (~0.1 V), so an over-discharge stops
# on compliance instead of oxidising the current collector.
DISCHARGE_COMPLIANCE_MARGIN_V = 0.5
# Safety sits outside compliance: reached by a cell the channel does not drive (a
# short at rest) or a channel whose compliance is wider.
SAFETY_MARGIN_V = 0.5
# Below this the terminal is reversed or shorted; a shipped precursor shows ~+0.1 V.
SAFETY_MIN_V = -0.1
# Below the melting point of lithium (180.5 C, CRC Handbook) and of the polypropylene
# separator (~160 C), above the seed's 50-100 C formation window.
SAFETY_MAX_TEMPERATURE_C = 150.0
# The channel's range per cm2 of active area: far above any plating or stripping
# density of the cell (the glass cracks near 1 mA/cm2), within a lab channel's
# 100 mA for the 1 cm2 test cell.
CURRENT_RANGE_A_CM2 = 0.1


class CyclerError(FieldError):
    """A cycler entry, option or protocol step the channel cannot run."""

    prefix = "cycler "


class Cycler(EntryTable):
    """A validated channel description: name, values (CYCLER_FIELDS), units, sources."""

    UNITS = CYCLER_UNITS

    def __init__(self, name: str, values: dict, sources: dict, origin="cycler"):
        for field, _, rule in _FIELDS:
            try:
                check_range(field, values[field], rule, origin)
            except ParameterError as error:
                raise CyclerError(field, values[field], str(error)) from None
        for low, high in (("compliance_min_V", "compliance_max_V"), ("safety_min_V", "safety_max_V")):
            if not values[low] < values[high]:
                raise CyclerError(low, values[low], "%s: must lie below %s = %r"
                                  % (origin, high, values[high]))
        if values["hold_current_limit_A"] > values["current_range_A"]:
            raise CyclerError("hold_current_limit_A", values["hold_current_limit_A"],
                              "%s: must not exceed current_range_A = %r" % (origin, values["current_range_A"]))
        super().__init__(name, values, sources)

    @classmethod
    def for_cell(cls, params) -> "Cycler":
        """The default channel for a cell, derived from its design cut-offs, area and
        formation current density (see the module constants for why each margin)."""
        values, sources = _defaults(params)
        return cls("default", values, sources)

    def as_dict(self) -> dict:
        """For summary.json: every entry with its unit and source."""
        return {"name": self.name, "values": self.values, "units": self.units, "sources": self.sources}

    def segment_fields(self, step) -> dict:
        """The cell_segment_t channel fields for `step` (all of SEGMENT_FIELDS)."""
        v = self._values
        return {
            "compliance_max_V": v["compliance_max_V"], "compliance_min_V": v["compliance_min_V"],
            "use_compliance": 1,
            "safety_max_V": v["safety_max_V"], "safety_min_V": v["safety_min_V"], "use_safety_voltage": 1,
            "safety_max_temperature_K": v["safety_max_temperature_C"] + KELVIN, "use_safety_temperature": 1,
            "current_limit_A": v["hold_current_limit_A"], "use_current_limit": 1 if step.kind == "hold" else 0,
        }

    def check_step(self, step) -> None:
        """CyclerError if the channel cannot run `step` as written."""
        where = "line %d" % step.line_no if step.line_no is not None else "step"
        text = str(step)
        if abs(step.current_A) > self._values["current_range_A"]:
            raise CyclerError(where, text, "%g A is above the channel's current range of %g A"
                              % (abs(step.current_A), self._values["current_range_A"]))
        if step.stop_current_A is not None and step.stop_current_A >= self._values["hold_current_limit_A"]:
            raise CyclerError(where, text, "the hold's stop current %g A is not below the channel's hold "
                              "current limit of %g A: it would end at once"
                              % (step.stop_current_A, self._values["hold_current_limit_A"]))

    def check_protocol(self, protocol) -> None:
        """check_step on each cycler step of the protocol's tree (once each, not
        expanded); bench steps are not the channel's."""
        for step in protocol.distinct_steps():
            if hasattr(step, "current_A"):
                self.check_step(step)

    def check_ambient(self, ambient_c: float) -> None:
        limit = self._values["safety_max_temperature_C"]
        if ambient_c >= limit:
            raise CyclerError("--ambient-c", ambient_c, "at or above the channel's safety temperature "
                              "of %g °C: the run would stop at once" % limit)


def _defaults(params) -> tuple:
    design = params.design
    area = params.values["area_cm2"]
    charge_V, discharge_V = design["charge_cutoff_V"], design["discharge_cutoff_V"]
    formation_A = design["formation_current_density_uA_cm2"] * 1e-6 * area
    values = {
        "compliance_max_V": charge_V + CHARGE_COMPLIANCE_MARGIN_V,
        "compliance_min_V": discharge_V - DISCHARGE_COMPLIANCE_MARGIN_V,
        "current_range_A": CURRENT_RANGE_A_CM2 * area,
        "hold_current_limit_A": formation_A,
        "safety_max_V": charge_V + CHARGE_COMPLIANCE_MARGIN_V + SAFETY_MARGIN_V,
        "safety_min_V": SAFETY_MIN_V,
        "safety_max_temperature_C": SAFETY_MAX_TEMPERATURE_C,
    }
    cell = params.name
    sources = {
        "compliance_max_V": "derived: %s design.charge_cutoff_V %g V + %g V (twin.cycler)"
                            % (cell, charge_V, CHARGE_COMPLIANCE_MARGIN_V),
        "compliance_min_V": "derived: %s design.discharge_cutoff_V %g V - %g V (twin.cycler)"
                            % (cell, discharge_V, DISCHARGE_COMPLIANCE_MARGIN_V),
        "current_range_A": "derived: %g A/cm2 x %s area_cm2 %g (twin.cycler)" % (CURRENT_RANGE_A_CM2, cell, area),
        "hold_current_limit_A": "derived: %s design.formation_current_density_uA_cm2 %g x area_cm2 %g: "
                                "a hold plates no faster than the formation the glass is designed for"
                                % (cell, design["formation_current_density_uA_cm2"], area),
        "safety_max_V": "derived: compliance_max_V + %g V (twin.cycler)" % SAFETY_MARGIN_V,
        "safety_min_V": "assumed: below %g V the terminal is reversed or shorted (twin.cycler)" % SAFETY_MIN_V,
        "safety_max_temperature_C": "assumed: below lithium's melting point (180.5 C) and the polypropylene "
                                    "separator's (~160 C), above the seed's 50-100 C formation window",
    }
    return values, sources


def available_cyclers() -> list:
    return sorted(path.stem for path in CYCLER_DIR.glob("*.toml"))


def load_cycler(name_or_path, params) -> Cycler:
    """A channel file (a path, or the name of one in twin/parameters/cyclers/); the
    entries it leaves out come from Cycler.for_cell(params)."""
    text = str(name_or_path)
    if text.endswith(".toml") or "/" in text:
        path = Path(text)
    else:
        path = CYCLER_DIR / ("%s.toml" % text)
        if not path.is_file():
            raise CyclerError("--cycler", text, "no such file, nor a shipped cycler of that name "
                              "(shipped: %s)" % ", ".join(available_cyclers()))
    try:
        data = load_toml(path)
    except ParameterError as error:
        raise CyclerError("--cycler", text, str(error)) from None
    unknown = sorted(set(data) - set(CYCLER_UNITS))
    if unknown:
        raise CyclerError(unknown[0], data[unknown[0]], "%s: unknown entry; valid entries: %s"
                          % (path, ", ".join(CYCLER_FIELDS)))
    values, sources = _defaults(params)
    for field, entry in data.items():
        try:
            values[field], sources[field] = read_entry(field, entry, CYCLER_UNITS[field], path)
        except ParameterError as error:
            raise CyclerError(field, entry, str(error)) from None
    return Cycler(path.stem, values, sources, origin=path)
