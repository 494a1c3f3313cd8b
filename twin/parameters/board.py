"""The board's analog front end (ADC, shunt, thermistor, current source) as data.

    from twin.parameters import load_board
    board = load_board("bench_ua")          # twin/parameters/boards/bench_ua.toml, or a path
    board.values["shunt_ohm"], board.units["shunt_ohm"], board.sources["shunt_ohm"]

Same file style and strictness as the cell parameter sets: every entry is a table with
value, unit and source; the unit must be the one BOARD_UNITS names; unknown, missing or
non-finite entries are refused with a ParameterError naming the field. The front end is
described in docs/hal.md ("bench-ua").
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Mapping

from twin.parameters._entries import (
    ANY,
    NON_NEGATIVE,
    POSITIVE,
    PARAMETER_DIR,
    EntryTable,
    ParameterError,
    check_range,
    cited_keys,
    load_toml,
    read_entry,
)

BOARD_DIR = PARAMETER_DIR / "boards"

# field -> (unit, allowed range, whole number?)
_ADC_BITS_RANGE = (1.0, True, 32.0, True)
_GAIN_ERROR_RANGE = (-0.5, False, 0.5, False)
_BOARD = (
    ("adc_bits", "bit", _ADC_BITS_RANGE, True),
    ("adc_vref_mV", "mV", POSITIVE, False),
    ("adc_gain_error", "1", _GAIN_ERROR_RANGE, False),     # relative: counts x (1 + error)
    ("adc_offset_counts", "count", ANY, False),
    ("adc_noise_counts", "count", NON_NEGATIVE, False),    # rms
    ("vcell_gain", "1", POSITIVE, False),
    ("shunt_ohm", "ohm", POSITIVE, False),
    ("shunt_amp_gain", "1", POSITIVE, False),
    ("ishunt_offset_mV", "mV", NON_NEGATIVE, False),
    ("ntc_r25_ohm", "ohm", POSITIVE, False),
    ("ntc_beta_K", "K", POSITIVE, False),
    ("ntc_pullup_ohm", "ohm", POSITIVE, False),
    ("source_resolution_uA", "uA", POSITIVE, False),
    ("source_range_uA", "uA", POSITIVE, False),
    ("source_slew_uA_per_ms", "uA/ms", POSITIVE, False),
    ("source_compliance_V", "V", POSITIVE, False),
)
BOARD_FIELDS = tuple(name for name, _, _, _ in _BOARD)
BOARD_UNITS = types.MappingProxyType({name: unit for name, unit, _, _ in _BOARD})


class Board(EntryTable):
    """A validated board description: name, path, values, units, sources, citations."""

    UNITS = BOARD_UNITS

    def __init__(self, name, path, values, sources):
        super().__init__(name, values, sources)
        self.path = path
        keys = set()
        for source in self._sources.values():
            keys |= cited_keys(source)
        self.citations = tuple(sorted(keys))


def available_boards() -> list:
    return sorted(path.stem for path in BOARD_DIR.glob("*.toml"))


def load_board(name_or_path) -> Board:
    """Load and check a board file by name (twin/parameters/boards/<name>.toml) or path."""
    if isinstance(name_or_path, Path) or str(name_or_path).endswith(".toml") or "/" in str(name_or_path):
        path = Path(name_or_path)
    else:
        path = BOARD_DIR / ("%s.toml" % name_or_path)
        if not path.is_file():
            raise ParameterError("unknown board %r; valid boards: %s"
                                 % (name_or_path, ", ".join(available_boards())))
    data = load_toml(path)
    unknown = sorted(set(data) - set(BOARD_UNITS))
    if unknown:
        raise ParameterError("unknown field(s) %s; valid fields: %s"
                             % (", ".join(unknown), ", ".join(BOARD_UNITS)), unknown[0], path)
    missing = [field for field in BOARD_UNITS if field not in data]
    if missing:
        raise ParameterError("missing field(s) %s" % ", ".join(missing), missing[0], path)
    values = {}
    sources = {}
    for field, unit, rule, whole in _BOARD:
        value, sources[field] = read_entry(field, data[field], unit, path, integer=whole)
        values[field] = check_range(field, value, rule, path)
    if values["ishunt_offset_mV"] > values["adc_vref_mV"]:
        raise ParameterError("offset %r mV lies above the ADC reference %r mV"
                             % (values["ishunt_offset_mV"], values["adc_vref_mV"]), "ishunt_offset_mV", path)
    return Board(path.stem, path, values, sources)


def board_values(board) -> dict:
    """The values of a board given as a name or path (loaded and checked), a Board,
    or a mapping of its values (checked for missing fields)."""
    if isinstance(board, Board):
        return board.values
    if isinstance(board, Mapping):
        missing = [field for field in BOARD_FIELDS if field not in board]
        if missing:
            raise ParameterError("missing field(s) %s" % ", ".join(missing), missing[0], "board mapping")
        return dict(board)
    return load_board(board).values
