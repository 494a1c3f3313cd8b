"""Cycler protocols: text in a Maccor-like language, or step objects built in Python.

    # formation of the seed's cell D111 (WO 99/43034, example 3)
    Charge at 10 uA for 10 minutes
    Charge at 100 uA for 2 hours
    Repeat 20 times:
        Discharge at 100 uA for 15 minutes
        Charge at 100 uA for 15 minutes
    Discharge at 100 uA until 2.0 V
    Rest for 1 hour
    Hold at 2.6 V until 5 uA
    Charge at 0.1 mA for 1 hour or until 2.6 V

Strings are sugar: `Protocol.parse` builds the same immutable `Step` objects as the
constructors `charge`, `discharge`, `rest`, `hold` (and `repeat` for blocks), in the
manner of PyBaMM's experiment steps. Units are converted at this edge, so a Step holds
SI only: current_A, voltage_V, duration_s.

The package: errors.py (ProtocolError and the example lines), quantities.py (units to
SI and back), steps.py (Step, Repeat and their constructors), parser.py (text to
steps); Protocol, the tree a runner plays, is here.

Current sign, as everywhere in bms-twin: + charges the cell (plates lithium),
- discharges it. The text never carries a sign -- the verb gives the direction -- and a
Discharge step stores a negative current_A. (PyBaMM uses + = discharge; we do not.)

Numbers are read as exact decimals and rounded once to float, so "0.1 mA" and
charge(100e-6, ...) give the same current_A bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

from twin.core import MODE_CURRENT, MODE_REST, MODE_VOLTAGE
from twin.protocol.errors import EXAMPLES, ProtocolError
from twin.protocol.parser import parse_text
from twin.protocol.steps import (
    MAX_VOLTAGE_V,
    UNTIL_DURATION_CAP_S,
    Repeat,
    Step,
    charge,
    describe_item,
    discharge,
    expand,
    hold,
    repeat,
    rest,
)

__all__ = [
    "MODE_CURRENT",
    "MODE_VOLTAGE",
    "MODE_REST",
    "UNTIL_DURATION_CAP_S",
    "MAX_VOLTAGE_V",
    "EXAMPLES",
    "ProtocolError",
    "Step",
    "Repeat",
    "Protocol",
    "charge",
    "discharge",
    "rest",
    "hold",
    "repeat",
]


class Protocol:
    """A tree of Steps and Repeat blocks; steps() expands it to the segments to run."""

    def __init__(self, items: Sequence, text: Union[str, None] = None, name: Union[str, None] = None):
        items = tuple(items)
        if not items:
            raise ProtocolError("the protocol has no steps", "at least one Step")
        for item in items:
            if not isinstance(item, (Step, Repeat)):
                raise ProtocolError("protocol item %r is not a Step or Repeat" % (item,), "Step or Repeat objects")
        self.items = items
        self.text = text
        self.name = name
        self._steps = tuple(expand(items, ()))

    @classmethod
    def parse(cls, text: str, name: Union[str, None] = None) -> "Protocol":
        if not isinstance(text, str):
            raise ProtocolError("protocol text must be a str, got %s" % type(text).__name__, "text lines")
        return cls(parse_text(text), text=text, name=name)

    @classmethod
    def from_file(cls, path) -> "Protocol":
        path = Path(path)
        return cls.parse(path.read_text(encoding="utf-8"), name=path.stem)

    def steps(self) -> list:
        """The flat list of steps in run order, each carrying its repeat_path."""
        return list(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def __iter__(self):
        return iter(self._steps)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Protocol):
            return NotImplemented
        return self.items == other.items

    def __hash__(self):
        return hash(self.items)

    def describe(self) -> str:
        """Canonical text; Protocol.parse(p.describe()) == p."""
        lines = []
        for item in self.items:
            lines.extend(describe_item(item, ""))
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return "Protocol(%s%d steps)" % ("%r, " % self.name if self.name else "", len(self))
