"""Cell parameter sets as data: one TOML file per set, values with unit and source.

    from twin.parameters import load_parameter_set
    params = load_parameter_set("d111")            # or a path to a .toml file
    params.values["layer_thickness_A"]             # 1500.0
    params.units["layer_thickness_A"], params.sources["layer_thickness_A"]
    params.design["target_inventory_uAh"]          # the firmware's formation target
    thin = params.with_overrides(layer_thickness_A=1000.0)

The field names are exactly those of cell_params_t in c_core/cell.h and FIELD_UNITS below
says which unit each must be written in; a file with another unit, an unknown or missing
field, or a non-finite value is refused with a ParameterError naming the field. A set may
say `based_on = "<other set>"` and list only what differs. Sources cite keys of
citations.bib or say "assumed, ...", "derived: ..." or "fit: ...".

The OCV table is one entry `[ocv]` with lists `x` (Li:S atom ratio, strictly rising) and
`V` (positive potential vs Li/Li+); values gets them as lists "ocv_x" and "ocv_V", and
cell_params_t's n_ocv_points is derived from their length (ParameterSet.n_ocv_points), so
values holds exactly what twin.core.make_params takes. Boards (the analog front end) load
with load_board().
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Union

from twin.parameters._entries import (
    AT_LEAST_ONE,
    FRACTION,
    FRACTION_BELOW_ONE,
    NON_NEGATIVE,
    PARAMETER_DIR,
    POSITIVE,
    ParameterError,
    check_number,
    check_range,
    check_source,
    cited_keys,
    citation_keys,
    load_toml,
    read_entry,
)
from twin.parameters.board import Board, available_boards, load_board

__all__ = [
    "CELL_PARAM_FIELDS",
    "FIELD_UNITS",
    "DESIGN_UNITS",
    "OCV_MAX_POINTS",
    "ParameterError",
    "ParameterSet",
    "available_parameter_sets",
    "load_parameter_set",
    "Board",
    "available_boards",
    "load_board",
    "citation_keys",
]

# CELL_OCV_MAX_POINTS in c_core/cell.h
OCV_MAX_POINTS = 24

# cell_params_t fields other than the OCV table, in struct order: (unit, allowed range).
# Units are written as in the files: "ohm*cm2" is ohm times cm2, "1" is dimensionless.
_FIELDS = (
    ("area_cm2", "cm2", POSITIVE),
    ("catholyte_volume_uL", "uL", POSITIVE),
    ("sulfur_mol_L", "mol/L", POSITIVE),
    ("lithium_mol_L", "mol/L", NON_NEGATIVE),
    ("supply_knee_x", "1", POSITIVE),
    ("supply_rise_V", "V", NON_NEGATIVE),
    ("li2s_saturation_x", "1", POSITIVE),
    ("precipitation_rate_per_s", "1/s", NON_NEGATIVE),
    ("cathode_j0_A_cm2", "A/cm2", POSITIVE),
    ("electrolyte_asr_ohm_cm2", "ohm*cm2", NON_NEGATIVE),
    ("electrolyte_Ea_eV", "eV", NON_NEGATIVE),
    ("rc_resistance_ohm_cm2", "ohm*cm2", NON_NEGATIVE),
    ("rc_time_constant_s", "s", POSITIVE),
    ("copper_potential_V", "V", POSITIVE),
    ("wetting_capacity_uAh_cm2", "uAh/cm2", NON_NEGATIVE),
    ("alloy_potential_V", "V", POSITIVE),
    ("alloy_slope_V", "V", NON_NEGATIVE),
    ("nucleation_overpotential_V", "V", NON_NEGATIVE),
    ("nucleation_charge_uAh_cm2", "uAh/cm2", POSITIVE),
    ("anode_j0_A_cm2", "A/cm2", POSITIVE),
    ("metal_coverage_uAh_cm2", "uAh/cm2", POSITIVE),
    ("layer_thickness_A", "angstrom", NON_NEGATIVE),
    ("layer_conductivity_S_cm", "S/cm", POSITIVE),
    ("layer_Ea_eV", "eV", NON_NEGATIVE),
    ("layer_transfer_asr_ohm_cm2", "ohm*cm2", NON_NEGATIVE),
    ("layer_transfer_Ea_eV", "eV", NON_NEGATIVE),
    ("critical_current_A_cm2", "A/cm2", POSITIVE),
    ("critical_Ea_eV", "eV", NON_NEGATIVE),
    ("patchy_concentration", "1", AT_LEAST_ONE),
    ("damage_rate_per_s", "1/s", NON_NEGATIVE),
    ("crack_exposed_fraction", "1", FRACTION),
    ("dendrite_charge_uAh_cm2", "uAh/cm2", POSITIVE),
    ("dendrite_short_ohm", "ohm", POSITIVE),
    ("plating_loss_fraction", "1", FRACTION_BELOW_ONE),
    ("corrosion_current_A_cm2", "A/cm2", NON_NEGATIVE),
    ("corrosion_dead_fraction", "1", FRACTION),
    ("heat_capacity_J_K", "J/K", POSITIVE),
    ("heat_transfer_W_K", "W/K", POSITIVE),
    ("reference_temperature_K", "K", POSITIVE),
    ("max_substep_s", "s", POSITIVE),
)

# Expected unit of every scalar cell_params_t field.
FIELD_UNITS = types.MappingProxyType({name: unit for name, unit, _ in _FIELDS})
_FIELD_RANGES = {name: rule for name, _, rule in _FIELDS}

# The whole of cell_params_t in struct order (the OCV table sits after lithium_mol_L).
CELL_PARAM_FIELDS = tuple(
    [name for name, _, _ in _FIELDS[:4]]
    + ["n_ocv_points", "ocv_x", "ocv_V"]
    + [name for name, _, _ in _FIELDS[4:]])

# The [design] table: the firmware configuration for this cell, built by the runner.
_DESIGN = (
    ("target_inventory_uAh", "uAh", POSITIVE),
    ("nucleation_current_density_uA_cm2", "uA/cm2", POSITIVE),
    ("nucleation_charge_uAh_cm2", "uAh/cm2", POSITIVE),
    ("formation_current_density_uA_cm2", "uA/cm2", POSITIVE),
    ("discharge_cutoff_V", "V", POSITIVE),
    ("charge_cutoff_V", "V", POSITIVE),
    ("lithium_reserve_uAh", "uAh", NON_NEGATIVE),
)
DESIGN_UNITS = types.MappingProxyType({name: unit for name, unit, _ in _DESIGN})
_DESIGN_RANGES = {name: rule for name, _, rule in _DESIGN}

_OCV_KEY = "ocv"
_OCV_UNIT = "V"
_TOP_LEVEL_KEYS = frozenset(FIELD_UNITS) | {_OCV_KEY, "design", "based_on", "board"}


class ParameterSet:
    """A validated cell parameter set. Read-only; with_overrides() makes a new one.

    values: field -> float for every scalar cell_params_t field, plus "ocv_x" and "ocv_V"
        (lists); n_ocv_points is the property of that name.
    units, sources: same keys as values.
    design, design_units, design_sources: the [design] table.
    citations: sorted keys of citations.bib named by any source.
    based_on: the chain of sets this one is built on, nearest first.
    overrides: fields changed by with_overrides(), in the order given.
    board: the name of the board the cell runs on unless told otherwise
        (twin/parameters/boards/<board>.toml; top-level `board = "..."`, inherited).
    """

    def __init__(self, name, path, values, units, sources, design, design_units, design_sources,
                 based_on=(), overrides=(), board="bench_ua"):
        self.name = name
        self.board = board
        self.path = path
        # Kept private and handed out as copies: a caller editing what it got (or
        # json-dumping it) never changes the set. with_overrides() makes a new one.
        self._values = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in values.items()}
        self._units = dict(units)
        self._sources = dict(sources)
        self._design = dict(design)
        self._design_units = dict(design_units)
        self._design_sources = dict(design_sources)
        self.based_on = tuple(based_on)
        self.overrides = tuple(overrides)
        keys = set()
        for source in list(self._sources.values()) + list(self._design_sources.values()):
            keys |= cited_keys(source)
        self.citations = tuple(sorted(keys))

    @property
    def values(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._values.items()}

    @property
    def units(self) -> dict:
        return dict(self._units)

    @property
    def sources(self) -> dict:
        return dict(self._sources)

    @property
    def design(self) -> dict:
        return dict(self._design)

    @property
    def design_units(self) -> dict:
        return dict(self._design_units)

    @property
    def design_sources(self) -> dict:
        return dict(self._design_sources)

    @property
    def n_ocv_points(self) -> int:
        """cell_params_t.n_ocv_points: derived from the OCV table."""
        return len(self._values["ocv_x"])

    def __getitem__(self, field):
        value = self._values[field]
        return list(value) if isinstance(value, tuple) else value

    def __repr__(self):
        extra = " + overrides %s" % ", ".join(self.overrides) if self.overrides else ""
        return "ParameterSet(%r%s)" % (self.name, extra)

    def with_overrides(self, **fields) -> "ParameterSet":
        """A new set with some physics fields replaced (SI-ish units of FIELD_UNITS).

        "ocv_x" and "ocv_V" may be given (together, or one matching the other's length);
        "n_ocv_points" follows from them. The result passes the same checks as a file.
        """
        origin = "with_overrides(%s)" % ", ".join(fields)
        values = dict(self._values)
        sources = dict(self._sources)
        for field, value in fields.items():
            if field == "n_ocv_points":
                raise ParameterError("is derived from ocv_x/ocv_V and cannot be overridden", field, origin)
            if field in ("ocv_x", "ocv_V"):
                values[field] = value
            elif field in FIELD_UNITS:
                values[field] = check_number(field, value, origin)
            else:
                raise ParameterError("unknown field; valid fields: %s" % ", ".join(CELL_PARAM_FIELDS),
                                     field, origin)
            sources[field] = "override (with_overrides)"
        if "ocv_x" in fields or "ocv_V" in fields:
            values["ocv_x"], values["ocv_V"] = _check_ocv(values["ocv_x"], values["ocv_V"], origin)
        _check_physics(values, origin)
        return ParameterSet(self.name, self.path, values, self._units, sources, self._design,
                            self._design_units, self._design_sources, self.based_on,
                            self.overrides + tuple(f for f in fields if f not in self.overrides), self.board)


def _check_ocv(x, voltages, origin):
    for field, column in (("ocv_x", x), ("ocv_V", voltages)):
        if isinstance(column, (str, bytes)) or not hasattr(column, "__len__"):
            raise ParameterError("must be a list of numbers, found %r" % (column,), field, origin)
    if len(x) != len(voltages):
        raise ParameterError("x has %d points but V has %d" % (len(x), len(voltages)), _OCV_KEY, origin)
    if not 2 <= len(x) <= OCV_MAX_POINTS:
        raise ParameterError("needs 2 to %d points (CELL_OCV_MAX_POINTS), found %d"
                             % (OCV_MAX_POINTS, len(x)), _OCV_KEY, origin)
    x = tuple(check_number("ocv_x", value, origin) for value in x)
    voltages = tuple(check_number("ocv_V", value, origin) for value in voltages)
    if x[0] < 0:
        raise ParameterError("x must start at >= 0 (a Li:S ratio), found %r" % x[0], "ocv_x", origin)
    for index in range(1, len(x)):
        if not x[index] > x[index - 1]:
            raise ParameterError("x must rise strictly: x[%d] = %r follows %r"
                                 % (index, x[index], x[index - 1]), "ocv_x", origin)
    for index, volts in enumerate(voltages):
        if volts <= 0:
            raise ParameterError("V[%d] = %r must be > 0" % (index, volts), "ocv_V", origin)
    return x, voltages


def _check_physics(values, origin):
    """Range of each field, and the few cross-field facts the C core relies on."""
    for field, rule in _FIELD_RANGES.items():
        check_range(field, values[field], rule, origin)
    x = values["ocv_x"]
    # The catholyte as shipped must lie on the OCV table, or the first OCV is a guess.
    x_shipped = values["lithium_mol_L"] / values["sulfur_mol_L"]
    if not x[0] <= x_shipped <= x[-1]:
        raise ParameterError("shipped Li:S = lithium_mol_L / sulfur_mol_L = %r lies outside the OCV table "
                             "(x from %r to %r)" % (x_shipped, x[0], x[-1]), "lithium_mol_L", origin)
    if not x[0] < values["li2s_saturation_x"] <= x[-1]:
        raise ParameterError("%r lies outside the OCV table (x from %r to %r)"
                             % (values["li2s_saturation_x"], x[0], x[-1]), "li2s_saturation_x", origin)


def _check_design(design, origin):
    for field, rule in _DESIGN_RANGES.items():
        check_range("design." + field, design[field], rule, origin)
    if not design["discharge_cutoff_V"] < design["charge_cutoff_V"]:
        raise ParameterError("discharge_cutoff_V %r must be below charge_cutoff_V %r"
                             % (design["discharge_cutoff_V"], design["charge_cutoff_V"]),
                             "design.discharge_cutoff_V", origin)


def available_parameter_sets() -> list:
    """Names of the sets shipped in twin/parameters/."""
    return sorted(path.stem for path in PARAMETER_DIR.glob("*.toml"))


def _resolve(name_or_path, near: Union[Path, None] = None) -> Path:
    if isinstance(name_or_path, Path) or str(name_or_path).endswith(".toml") or "/" in str(name_or_path):
        path = Path(name_or_path)
        if path.exists() and not path.is_file():
            raise ParameterError("not a regular file (a directory, device or pipe); a TOML file expected",
                                 origin=path)
        if not path.is_file():
            raise ParameterError("no such parameter file", origin=path)
        return path.resolve()
    if not isinstance(name_or_path, str) or not name_or_path:
        raise ParameterError("a parameter set is named by a non-empty str or a path, not %r" % (name_or_path,))
    for directory in ([near] if near is not None else []) + [PARAMETER_DIR]:
        candidate = directory / (name_or_path + ".toml")
        if candidate.is_file():
            return candidate.resolve()
    raise ParameterError("unknown parameter set %r; valid sets: %s"
                         % (name_or_path, ", ".join(available_parameter_sets())))


def load_parameter_set(name_or_path) -> ParameterSet:
    """Load, merge (based_on) and check a parameter set by name or path."""
    return _load(_resolve(name_or_path), ())


def _load(path: Path, chain: tuple) -> ParameterSet:
    if path in chain:
        names = " -> ".join(p.stem for p in chain + (path,))
        raise ParameterError("based_on forms a loop: %s" % names, "based_on", path)
    data = load_toml(path)
    unknown = sorted(set(data) - _TOP_LEVEL_KEYS)
    if unknown:
        raise ParameterError("unknown field(s) %s; valid fields: %s"
                             % (", ".join(unknown), ", ".join(sorted(_TOP_LEVEL_KEYS))), unknown[0], path)

    parent = None
    if "based_on" in data:
        base = data["based_on"]
        if not isinstance(base, str) or not base or "/" in base:
            raise ParameterError("must name another parameter set, found %r" % (base,), "based_on", path)
        try:
            parent_path = _resolve(base, near=path.parent)
        except ParameterError as error:
            raise ParameterError(str(error), "based_on", path) from None
        parent = _load(parent_path, chain + (path,))

    values = parent.values if parent else {}
    units = parent.units if parent else {}
    sources = parent.sources if parent else {}
    for field, unit in FIELD_UNITS.items():
        if field in data:
            values[field], sources[field] = read_entry(field, data[field], unit, path)
            units[field] = unit
    if _OCV_KEY in data:
        _read_ocv(data[_OCV_KEY], path, values, units, sources)
    missing = [f for f in FIELD_UNITS if f not in values] + ([] if "ocv_x" in values else [_OCV_KEY])
    if missing:
        raise ParameterError("missing field(s) %s" % ", ".join(missing), missing[0], path)

    design = parent.design if parent else {}
    design_units = parent.design_units if parent else {}
    design_sources = parent.design_sources if parent else {}
    table = data.get("design", {})
    if not isinstance(table, dict):
        raise ParameterError("must be a table of entries", "design", path)
    unknown = sorted(set(table) - set(DESIGN_UNITS))
    if unknown:
        raise ParameterError("unknown design field(s) %s; valid: %s"
                             % (", ".join(unknown), ", ".join(DESIGN_UNITS)), "design." + unknown[0], path)
    for field, entry in table.items():
        design[field], design_sources[field] = read_entry("design." + field, entry, DESIGN_UNITS[field], path)
        design_units[field] = DESIGN_UNITS[field]
    missing = [f for f in DESIGN_UNITS if f not in design]
    if missing:
        raise ParameterError("missing design field(s) %s" % ", ".join(missing), "design." + missing[0], path)

    _check_physics(values, path)
    _check_design(design, path)
    based_on = ((parent.name,) + parent.based_on) if parent else ()
    return ParameterSet(path.stem, path, values, units, sources, design, design_units, design_sources, based_on,
                        board=_default_board(data, parent, path))


def _default_board(data: dict, parent, path: Path) -> str:
    """The set's `board` (a board file's name), else its base's, else the reference
    board bench_ua (the firmware's defaults)."""
    if "board" not in data:
        return parent.board if parent is not None else "bench_ua"
    name = data["board"]
    if not isinstance(name, str) or name not in available_boards():
        raise ParameterError("must name a board (one of %s), found %r" % (", ".join(available_boards()), name),
                             "board", path)
    return name


def _read_ocv(entry, path, values, units, sources):
    if not isinstance(entry, dict) or set(entry) != {"x", "V", "unit", "source"}:
        found = sorted(entry) if isinstance(entry, dict) else entry
        raise ParameterError("must be a table with exactly x, V, unit, source; found %r" % (found,), _OCV_KEY, path)
    if entry["unit"] != _OCV_UNIT:
        raise ParameterError("unit %r found, %r expected" % (entry["unit"], _OCV_UNIT), _OCV_KEY, path)
    source = check_source(_OCV_KEY, entry["source"], path)
    x, voltages = _check_ocv(entry["x"], entry["V"], path)
    values.update(ocv_x=x, ocv_V=voltages)
    units.update(ocv_x="1", ocv_V="V")
    sources.update(ocv_x=source, ocv_V=source)
