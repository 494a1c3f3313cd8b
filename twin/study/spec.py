"""Reading a study file (TOML) into a checked Study; docs/studies.md is its manual.

    [study]                      name, kind ("open_loop" | "closed_loop"), cell (a
                                 parameter set or a .toml path beside the study), seed,
                                 draws, ambient_c, figures, description
    [protocol]                   text (or file), sample_s: the open-loop protocol, or
                                 the closed loop's duty after formation (none: formation only);
                                 {name} in the text is a placeholder filled per variant
    [firmware]                   formation_timeout_h; [firmware.config]: fixed
                                 bmsfw.config.Config values (closed loop)
    [vary.ambient_c]             one table per varied input, with its unit and one of
    [vary.cell.<field>]          values / linspace / logspace (a grid) or
    [vary.protocol.<name>]       uniform / normal / lognormal (a spread)
    [vary.config.<field>]
    [plots]                      crack_map, formation_time, histograms (default: chosen
                                 from what the study varies and collects)

Everything is checked before any variant runs: an unknown or missing key, a
wrong unit, a spread that leaves a parameter's range, a protocol line that does
not parse, a firmware value the controller refuses. The error is a StudyError
naming the key, the value and what was expected.
"""
from __future__ import annotations

import re
from pathlib import Path

from bmsfw.config import Config, ConfigError
from bmsfw.errors import FieldError
from twin.cell import Cell
from twin.parameters import FIELD_UNITS, load_parameter_set
from twin.protocol import Protocol, ProtocolError
from twin.study import units
from twin.study.figures import FIGURES, KINDS, CLOSED_LOOP, OPEN_LOOP, figures_of
from twin.study.plotspec import read_plots
from twin.study.variables import DISTRIBUTION_KINDS, GRID_KINDS, Variable, VariableSpecError

PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_SAMPLE_S = 10.0
DEFAULT_FORMATION_TIMEOUT_H = 48.0
_TOP_KEYS = ("study", "protocol", "firmware", "vary", "plots")
_STUDY_KEYS = ("name", "description", "kind", "cell", "seed", "draws", "ambient_c", "figures")
_PROTOCOL_KEYS = ("text", "file", "sample_s")
_FIRMWARE_KEYS = ("formation_timeout_h", "config")
_NAMESPACES = ("ambient_c", "cell", "protocol", "config")
_PLOT_KEYS = ("crack_map", "formation_time", "histograms")


class StudyError(FieldError):
    """A study file that cannot run: field is its key (e.g. vary.cell.area_cm2.unit)."""

    prefix = ""


class _Missing:
    def __repr__(self):
        return "(missing)"


MISSING = _Missing()


def _table(data, key, allowed, where):
    if not isinstance(data, dict):
        raise StudyError(where, data, "a table expected")
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise StudyError("%s.%s" % (where, unknown[0]) if where else unknown[0], data[unknown[0]],
                         "unknown key; expected one of %s" % ", ".join(allowed))
    return data


def _int(value, key, low=0):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise StudyError(key, value, "an int >= %d expected" % low)
    return value


def _float(value, key, positive=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise StudyError(key, value, "a number expected")
    if positive and value <= 0:
        raise StudyError(key, value, "a number > 0 expected")
    return float(value)


class Study:
    """A checked study. variables: in file order (the first grid varies slowest)."""

    def __init__(self, path: Path, data: dict):
        self.path = path
        _table(data, None, _TOP_KEYS, "")
        head = _table(data.get("study", MISSING), "study", _STUDY_KEYS, "study")
        self.name = head.get("name", path.stem)
        if not isinstance(self.name, str) or not self.name:
            raise StudyError("study.name", self.name, "a non-empty string expected")
        self.description = head.get("description", "")
        if not isinstance(self.description, str):
            raise StudyError("study.description", self.description, "a string expected")
        self.kind = head.get("kind", MISSING)
        if self.kind not in KINDS:
            raise StudyError("study.kind", self.kind, "one of %s expected" % ", ".join(KINDS))
        self.cell = head.get("cell", "d111")
        self.base = self._load_cell(self.cell)
        self.seed = _int(head.get("seed", 0), "study.seed")
        self.draws = _int(head.get("draws", 1), "study.draws", low=1)
        self.ambient_c = _float(head.get("ambient_c", 25.0), "study.ambient_c")
        self._check_ambient("study.ambient_c", self.ambient_c)
        self.figures = self._figures(head.get("figures", figures_of(self.kind)))
        self._read_protocol(data.get("protocol"))
        self._read_firmware(data.get("firmware"))
        self.variables = tuple(self._variables(data.get("vary", {})))
        self._check_protocol_placeholders()
        self._check_firmware_values()
        if self.kind == OPEN_LOOP and self.draws > 1 and not self.spreads:
            raise StudyError("study.draws", self.draws, "1 for an open-loop study without a spread: the model is "
                             "deterministic, so more draws repeat identical runs")
        self.plots = read_plots(self, data.get("plots"))

    # ---- parts ------------------------------------------------------------------

    def _load_cell(self, cell):
        if not isinstance(cell, str) or not cell:
            raise StudyError("study.cell", cell, "a parameter set name or a .toml path expected")
        where = (self.path.parent / cell) if cell.endswith(".toml") or "/" in cell else cell
        try:
            return load_parameter_set(where)
        except ValueError as error:
            raise StudyError("study.cell", cell, str(error)) from None

    def _check_ambient(self, key, value):
        try:
            Cell(self.base, ambient_c=value)
        except ValueError as error:
            raise StudyError(key, value, str(error)) from None

    def _figures(self, names):
        valid = figures_of(self.kind)
        if not isinstance(names, list):
            raise StudyError("study.figures", names, "a list of figure names expected")
        for name in names:
            if name not in valid:
                other = " (%s studies give it)" % " / ".join(FIGURES[name].kinds) if name in FIGURES else ""
                raise StudyError("study.figures", name, "not a figure of a %s study%s; expected one of %s"
                                 % (self.kind, other, ", ".join(valid)))
        if len(set(names)) != len(names):
            raise StudyError("study.figures", names, "each figure once")
        return tuple(names)

    def _read_protocol(self, table):
        self.protocol_text = None
        self.sample_s = DEFAULT_SAMPLE_S
        if table is None:
            if self.kind == OPEN_LOOP:
                raise StudyError("protocol", MISSING, "an open-loop study needs [protocol] with text or file")
            return
        _table(table, "protocol", _PROTOCOL_KEYS, "protocol")
        if ("text" in table) == ("file" in table):
            raise StudyError("protocol", sorted(table), "exactly one of text, file")
        if "sample_s" in table:
            if self.kind != OPEN_LOOP:
                raise StudyError("protocol.sample_s", table["sample_s"], "only in open-loop studies "
                                 "(a closed loop ticks every second)")
            self.sample_s = _float(table["sample_s"], "protocol.sample_s", positive=True)
        if "text" in table:
            if not isinstance(table["text"], str) or not table["text"].strip():
                raise StudyError("protocol.text", table["text"], "protocol lines expected")
            self.protocol_text = table["text"]
            return
        self.protocol_text = self._protocol_file(table["file"])

    def _protocol_file(self, name):
        from twin.cli import PROTOCOL_DIR
        from twin.textfile import InputFileError, read_text

        if not isinstance(name, str) or not name:
            raise StudyError("protocol.file", name, "a protocol file path or a shipped protocol name")
        for path in (self.path.parent / name, PROTOCOL_DIR / ("%s.txt" % name)):
            if path.exists():
                try:
                    return read_text(path, "protocol file")
                except InputFileError as error:
                    raise StudyError("protocol.file", name, error.why) from None
        shipped = ", ".join(sorted(p.stem for p in PROTOCOL_DIR.glob("*.txt")))
        raise StudyError("protocol.file", name, "no such file beside the study, and no shipped protocol of "
                         "that name (shipped: %s)" % shipped)

    def _read_firmware(self, table):
        self.config_fixed = {}
        self.formation_timeout_s = DEFAULT_FORMATION_TIMEOUT_H * 3600.0
        if table is None:
            return
        if self.kind != CLOSED_LOOP:
            raise StudyError("firmware", table, "only in closed-loop studies")
        _table(table, "firmware", _FIRMWARE_KEYS, "firmware")
        if "formation_timeout_h" in table:
            hours = _float(table["formation_timeout_h"], "firmware.formation_timeout_h", positive=True)
            self.formation_timeout_s = hours * 3600.0
        config = table.get("config", {})
        if not isinstance(config, dict):
            raise StudyError("firmware.config", config, "a table of bmsfw.config.Config fields expected")
        self.config_fixed = dict(config)
        try:
            self.nominal_config()
        except ConfigError as error:
            field = error.field if error.field in config else next(iter(config))
            raise StudyError("firmware.config.%s" % field, config[field], str(error)) from None

    def _variables(self, vary):
        if not isinstance(vary, dict):
            raise StudyError("vary", vary, "a table of varied inputs expected")
        for namespace, entries in vary.items():
            if namespace not in _NAMESPACES:
                raise StudyError("vary.%s" % namespace, entries, "unknown input; expected vary.ambient_c, "
                                 "vary.cell.<parameter>, vary.protocol.<placeholder> or vary.config.<field>")
            if namespace == "ambient_c":
                yield self._variable("ambient_c", entries, units.AMBIENT_UNIT, self.ambient_c)
                continue
            if not isinstance(entries, dict) or not entries:
                raise StudyError("vary.%s" % namespace, entries, "one table per varied %s input" % namespace)
            for name, table in entries.items():
                yield self._namespaced(namespace, name, table)

    def _namespaced(self, namespace, name, table):
        key = "%s.%s" % (namespace, name)
        if namespace == "cell":
            if name not in FIELD_UNITS:
                raise StudyError("vary." + key, MISSING, "not a cell parameter; expected one of %s"
                                 % ", ".join(FIELD_UNITS))
            return self._variable(key, table, FIELD_UNITS[name], self.base.values[name])
        if namespace == "config":
            return self._config_variable(key, name, table)
        unit = table.get("unit", MISSING) if isinstance(table, dict) else MISSING
        if unit not in units.PROTOCOL_UNITS:
            raise StudyError("vary.%s.unit" % key, unit, "a protocol placeholder's unit: one of %s"
                             % ", ".join(units.PROTOCOL_UNITS))
        return self._variable(key, table, unit, None)

    def _config_variable(self, key, name, table):
        if self.kind != CLOSED_LOOP:
            raise StudyError("vary." + key, table, "firmware config varies only in closed-loop studies")
        default = getattr(Config, name, None)
        if name.startswith("_") or isinstance(default, bool) or not isinstance(default, int):
            raise StudyError("vary." + key, MISSING, "not an integer bmsfw.config.Config field")
        unit = units.config_unit(name)
        if unit is None:
            raise StudyError("vary." + key, MISSING, "its name carries no unit the study knows")
        return self._variable(key, table, unit, float(getattr(self.nominal_config(), name)), integer=True)

    def nominal_config(self, **varied) -> Config:
        """The controller's Config for the *nominal* cell, with the study's fixed and
        this variant's values: firmware is built for the design, not for the cell
        of the lot it meets."""
        from twin.firmware_config import config_for

        return config_for(self.base, **dict(self.config_fixed, **varied))

    def _variable(self, key, table, unit, base, integer=False):
        where = "vary." + key
        if not isinstance(table, dict):
            raise StudyError(where, table, "a table with unit and one of %s"
                             % ", ".join(GRID_KINDS + DISTRIBUTION_KINDS))
        if table.get("unit", MISSING) != unit:
            raise StudyError(where + ".unit", table.get("unit", MISSING), "%r expected" % unit)
        kinds = [k for k in table if k != "unit"]
        if len(kinds) != 1 or kinds[0] not in GRID_KINDS + DISTRIBUTION_KINDS:
            raise StudyError(where, sorted(kinds), "exactly one of %s besides unit"
                             % ", ".join(GRID_KINDS + DISTRIBUTION_KINDS))
        try:
            variable = Variable(key, unit, kinds[0], table[kinds[0]], base=base, integer=integer)
        except VariableSpecError as error:
            raise StudyError("%s.%s" % (where, error.subkey), error.value, error.why) from None
        if key == "ambient_c":
            for value in variable.extremes():
                self._check_ambient(where, value)
        elif key.startswith("cell."):
            for value in variable.extremes():
                try:
                    self.base.with_overrides(**{key[5:]: value})
                except ValueError as error:
                    raise StudyError(where, value, "a variant would take this value, which the cell "
                                     "refuses: %s" % error) from None
        return variable

    @property
    def grids(self) -> tuple:
        return tuple(v for v in self.variables if v.is_grid)

    @property
    def spreads(self) -> tuple:
        return tuple(v for v in self.variables if not v.is_grid)

    @property
    def placeholders(self) -> dict:
        """protocol placeholder name -> its unit."""
        return {v.key[9:]: v.unit for v in self.variables if v.key.startswith("protocol.")}

    def _check_protocol_placeholders(self):
        named = set(PLACEHOLDER_RE.findall(self.protocol_text or ""))
        varied = set(self.placeholders)
        if named - varied:
            raise StudyError("protocol.text", "{%s}" % sorted(named - varied)[0],
                             "a placeholder needs a [vary.protocol.<name>] table")
        if varied - named:
            raise StudyError("vary.protocol.%s" % sorted(varied - named)[0], MISSING,
                             "a placeholder {name} in the protocol text")
        if self.protocol_text is None:
            return
        area = self.base.values["area_cm2"]
        for extreme in (0, 1):
            values = {"protocol." + v.key[9:]: v.extremes()[extreme] for v in self.variables
                      if v.key.startswith("protocol.")}
            try:
                Protocol.parse(render_protocol(self.protocol_text, self.placeholders, values, area))
            except ProtocolError as error:
                # quote the line as written, placeholders and all
                line = self.protocol_text.splitlines()[error.line_no - 1].strip() if error.line_no else ""
                where = "" if error.line_no is None else " (line %d)" % error.line_no
                raise StudyError("protocol.text" + where, line,
                                 "%s; expected %s" % (error.problem, error.expected)) from None

    def _check_firmware_values(self):
        for variable in self.variables:
            if not variable.key.startswith("config."):
                continue
            for value in variable.extremes():
                try:
                    self.nominal_config(**{variable.key[7:]: int(value)})
                except ConfigError as error:
                    raise StudyError("vary." + variable.key, int(value), str(error)) from None


def render_protocol(template: str, placeholders: dict, inputs: dict, area_cm2: float) -> str:
    """The protocol text of one variant: each {name} becomes its value in SI."""
    return PLACEHOLDER_RE.sub(
        lambda m: units.protocol_quantity(inputs["protocol." + m.group(1)], placeholders[m.group(1)],
                                          area_cm2), template)


def load_study(path) -> Study:
    from twin.textfile import InputFileError, load_toml

    path = Path(path)
    if not path.exists():
        raise StudyError("(file)", str(path), "no such study file")
    try:
        data = load_toml(path, "study file")
    except InputFileError as error:
        raise StudyError("(file)", str(path), error.why) from None
    return Study(path.resolve(), data)
