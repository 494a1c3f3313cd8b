"""Reading one `value / unit / source` entry of a parameter TOML file, strictly.

Shared by the cell parameter sets (twin.parameters) and the board files
(twin.parameters.board). Every numeric entry of those files is a table

    [catholyte_volume_uL]
    value = 30.0
    unit = "uL"
    source = "assumed: ... (seed EXAMPLES)"

and is refused -- with a ParameterError naming the file and the field -- when its unit is
not the one the loader expects, its value is not a finite number, or its source neither
cites a key of citations.bib nor says how the number was made ("assumed", "derived",
"fit").
"""

from __future__ import annotations

import functools
import math
import re
from pathlib import Path

from twin.textfile import InputFileError, load_toml as load_user_toml

PARAMETER_DIR = Path(__file__).resolve().parent
CITATIONS_BIB = PARAMETER_DIR / "citations.bib"

# A source that cites nothing must say how the number was obtained.
_SOURCE_KINDS = ("assumed", "derived", "fit")
_BIB_KEY_RE = re.compile(r"@\w+\s*\{\s*([^,\s]+)\s*,")


class ParameterError(ValueError):
    """A parameter file or override that cannot be used.

    field: the entry at fault (None when the whole file is), origin: the file or the
    call it came from.
    """

    def __init__(self, message, field=None, origin=None):
        self.field = field
        self.origin = None if origin is None else str(origin)
        where = "" if origin is None else "%s: " % origin
        what = "" if field is None else "%s: " % field
        super().__init__(where + what + message)


class EntryTable:
    """A read-only table of named numbers, each with a unit and a source (a board, a
    cycler channel): values, units and sources are handed out as copies, so a caller's
    edits never change it. Subclasses name their units in UNITS."""

    UNITS: dict = {}

    def __init__(self, name, values, sources):
        self.name = name
        self._values = dict(values)
        self._sources = dict(sources)

    @property
    def values(self) -> dict:
        return dict(self._values)

    @property
    def units(self) -> dict:
        return dict(self.UNITS)

    @property
    def sources(self) -> dict:
        return dict(self._sources)

    def __getitem__(self, field):
        return self._values[field]

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self.name)


@functools.lru_cache(maxsize=None)
def citation_keys(bib_path: Path = CITATIONS_BIB) -> frozenset:
    """The entry keys of citations.bib."""
    return frozenset(_BIB_KEY_RE.findall(Path(bib_path).read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=4096)
def cited_keys(source: str) -> frozenset:
    """Keys of citations.bib named (as whole words) in a source text. Cached: every
    ParameterSet (each with_overrides) asks again for the same few dozen sources,
    and a design study makes thousands of them."""
    return frozenset(key for key in citation_keys()
                     if re.search(r"(?<![\w.])%s(?![\w])" % re.escape(key), source))


def load_toml(path: Path) -> dict:
    try:
        return load_user_toml(path, "parameter file")
    except InputFileError as error:
        raise ParameterError(error.why, origin=path) from None


def check_source(field: str, source, origin) -> str:
    if not isinstance(source, str) or not source.strip():
        raise ParameterError("source must be a non-empty string, found %r" % (source,), field, origin)
    if not cited_keys(source) and not source.strip().lower().startswith(_SOURCE_KINDS):
        raise ParameterError(
            "source %r cites no key of citations.bib and does not start with one of %s"
            % (source, ", ".join(_SOURCE_KINDS)), field, origin)
    return source


def check_number(field: str, value, origin, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError("value must be a number, found %r" % (value,), field, origin)
    if integer:
        if isinstance(value, float):
            if not value.is_integer():
                raise ParameterError("value must be a whole number, found %r" % (value,), field, origin)
            value = int(value)
        return value
    if not math.isfinite(value):
        raise ParameterError("value must be finite, found %r" % (value,), field, origin)
    return float(value)


def read_entry(field: str, entry, expected_unit: str, origin, integer: bool = False):
    """-> (value, source) of a {value, unit, source} table."""
    if not isinstance(entry, dict):
        raise ParameterError("must be a table with value, unit and source, found %r" % (entry,), field, origin)
    keys = set(entry)
    if keys != {"value", "unit", "source"}:
        missing = sorted({"value", "unit", "source"} - keys)
        extra = sorted(keys - {"value", "unit", "source"})
        detail = []
        if missing:
            detail.append("missing %s" % ", ".join(missing))
        if extra:
            detail.append("unknown %s" % ", ".join(extra))
        raise ParameterError("entry needs exactly value, unit, source (%s)" % "; ".join(detail), field, origin)
    unit = entry["unit"]
    if unit != expected_unit:
        raise ParameterError("unit %r found, %r expected" % (unit, expected_unit), field, origin)
    value = check_number(field, entry["value"], origin, integer)
    return value, check_source(field, entry["source"], origin)


# Range rules: (low, low_inclusive, high, high_inclusive); None = unbounded.
POSITIVE = (0.0, False, None, False)
NON_NEGATIVE = (0.0, True, None, False)
FRACTION = (0.0, True, 1.0, True)
FRACTION_BELOW_ONE = (0.0, True, 1.0, False)
AT_LEAST_ONE = (1.0, True, None, False)
ANY = (None, False, None, False)


def describe_range(rule) -> str:
    low, low_in, high, high_in = rule
    parts = []
    if low is not None:
        parts.append("%s %g" % (">=" if low_in else ">", low))
    if high is not None:
        parts.append("%s %g" % ("<=" if high_in else "<", high))
    return " and ".join(parts) or "any finite number"


def check_range(field: str, value, rule, origin):
    low, low_in, high, high_in = rule
    too_low = low is not None and (value < low if low_in else value <= low)
    too_high = high is not None and (value > high if high_in else value >= high)
    if too_low or too_high:
        raise ParameterError("value %r out of range: must be %s" % (value, describe_range(rule)), field, origin)
    return value
