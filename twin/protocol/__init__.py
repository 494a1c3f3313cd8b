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
from collections.abc import Sequence
from typing import Union

from twin.core import MODE_CURRENT, MODE_REST, MODE_VOLTAGE
from twin.protocol.bench import BenchStep
from twin.protocol.errors import EXAMPLES, ProtocolError
from twin.protocol.parser import parse_text
from twin.protocol.steps import (
    MAX_SIMULATED_S,
    MAX_STEPS,
    MAX_VOLTAGE_V,
    UNTIL_DURATION_CAP_S,
    Repeat,
    Step,
    charge,
    count_steps,
    describe_item,
    discharge,
    expand,
    fixed_duration_s,
    hold,
    leaf_steps,
    repeat,
    rest,
    step_at,
)
from twin.textfile import read_text

__all__ = [
    "MODE_CURRENT",
    "MODE_VOLTAGE",
    "MODE_REST",
    "UNTIL_DURATION_CAP_S",
    "MAX_SIMULATED_S",
    "MAX_STEPS",
    "MAX_VOLTAGE_V",
    "EXAMPLES",
    "ProtocolError",
    "Step",
    "BenchStep",
    "Repeat",
    "Protocol",
    "charge",
    "discharge",
    "rest",
    "hold",
    "repeat",
]


class Protocol:
    """A tree of Steps and Repeat blocks, played as a stream: steps() and iteration
    yield the segments in run order without expanding the tree, so a long protocol
    costs its text, not its length. At most MAX_STEPS steps, and the steps of fixed
    duration together at most MAX_SIMULATED_S."""

    def __init__(self, items: Sequence, text: Union[str, None] = None, name: Union[str, None] = None):
        items = tuple(items)
        if not items:
            raise ProtocolError("the protocol has no steps", "at least one Step")
        for item in items:
            if not isinstance(item, (Step, BenchStep, Repeat)):
                raise ProtocolError("protocol item %r is not a Step, BenchStep or Repeat" % (item,),
                                    "Step, BenchStep or Repeat objects")
        _check_bounds(items)
        self.items = items
        self.text = text
        self.name = name
        self._n_steps = count_steps(items)

    @classmethod
    def parse(cls, text: str, name: Union[str, None] = None) -> "Protocol":
        if not isinstance(text, str):
            raise ProtocolError("protocol text must be a str, got %s" % type(text).__name__, "text lines")
        return cls(parse_text(text), text=text, name=name)

    @classmethod
    def from_file(cls, path) -> "Protocol":
        """Parse a UTF-8 file (a byte-order mark is allowed); InputFileError for a
        file that is not text, ProtocolError for a line that is not a step."""
        path = Path(path)
        return cls.parse(read_text(path, "protocol file"), name=path.stem)

    def steps(self) -> "StepSequence":
        """The steps in run order, each carrying its repeat_path: a lazy sequence
        (len, indexing, slicing, iteration, == a list) over the tree."""
        return StepSequence(self)

    def distinct_steps(self):
        """Each Step (and BenchStep) of the text once, in text order (what a check of
        every step needs)."""
        return leaf_steps(self.items)

    def bench_steps(self) -> list:
        """The BenchSteps of the text, once each, in text order."""
        return [step for step in leaf_steps(self.items) if isinstance(step, BenchStep)]

    def check_open_loop(self) -> None:
        """ProtocolError, naming the first line, when a step needs a firmware (a run
        without one, `bms-twin simulate`, cannot play it)."""
        for step in self.bench_steps():
            if step.needs_firmware:
                raise ProtocolError("%r needs a firmware on the bench" % str(step),
                                    "cycler steps only in an open-loop run (bms-twin simulate): bench "
                                    "steps but 'Set ambient' run with the firmware, in bms-twin run",
                                    step.line_no, step.text, str(step))

    @property
    def fixed_duration_s(self) -> float:
        """Simulated time of the steps without a stop condition: the least the protocol takes."""
        return fixed_duration_s(self.items)

    def __len__(self) -> int:
        return self._n_steps

    def __iter__(self):
        return expand(self.items, ())

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


class StepSequence(Sequence):
    """Protocol.steps(): the expansion of a protocol's tree, computed on demand."""

    def __init__(self, protocol: Protocol):
        self._protocol = protocol

    def __len__(self) -> int:
        return len(self._protocol)

    def __iter__(self):
        return iter(self._protocol)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError("step indices are integers, not %s" % type(index).__name__)
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("protocol step index out of range")
        return step_at(self._protocol.items, index)

    def __eq__(self, other) -> bool:
        if isinstance(other, (StepSequence, list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self) -> str:
        return "StepSequence(%d steps of %r)" % (len(self), self._protocol)


def _check_bounds(items: tuple) -> None:
    """ProtocolError when the tree expands past MAX_STEPS steps or its steps of fixed
    duration together pass MAX_SIMULATED_S; it names the Repeat line that does it."""
    n_steps = count_steps(items)
    if n_steps > MAX_STEPS:
        culprit = _largest_repeat(items)
        raise ProtocolError("the protocol expands to %d steps" % n_steps,
                            "at most %d steps (a Repeat count that fits)" % MAX_STEPS,
                            culprit.line_no if culprit else None, culprit.text if culprit else None)
    fixed_s = fixed_duration_s(items)
    if fixed_s > MAX_SIMULATED_S:
        culprit = _largest_repeat(items)
        raise ProtocolError("its steps of fixed duration take %.4g h together" % (fixed_s / 3600),
                            "at most %g h (ten years) of simulated time" % (MAX_SIMULATED_S / 3600),
                            culprit.line_no if culprit else None, culprit.text if culprit else None)


def _largest_repeat(items: tuple):
    """The Repeat with the largest count (nested counts multiplied), or None."""
    best, best_count = None, 0

    def walk(level, factor):
        nonlocal best, best_count
        for item in level:
            if isinstance(item, Repeat):
                if factor * item.count > best_count:
                    best, best_count = item, factor * item.count
                walk(item.body, factor * item.count)

    walk(items, 1)
    return best
