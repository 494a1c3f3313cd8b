"""Protocol steps as objects: the immutable Step and Repeat, and the constructors
`charge`, `discharge`, `rest`, `hold` and `repeat` that check their inputs.

A Step holds SI only (current_A, voltage_V, duration_s); the parser
(twin/protocol/parser.py) builds the same objects from text. Current sign, as
everywhere in bms-twin: + charges the cell (plates lithium), - discharges it, so a
Discharge step stores a negative current_A. Segment modes are the C core's
(twin.core.MODE_*, from c_core/cell.h).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Iterable, Iterator, Union

from twin.core import MODE_CURRENT, MODE_REST, MODE_VOLTAGE
from twin.protocol.errors import ProtocolError
from twin.protocol.quantities import CURRENT_DISPLAY, VOLTAGE_DISPLAY, pretty, pretty_duration

# A step that ends only on a voltage or current condition ("until 2.0 V") still gets a
# finite duration, because cell_segment_t requires duration_s > 0 and finite. 1000 h is
# far beyond any step of the seed protocols (the longest is 2 h) yet keeps a runaway
# segment (a condition never met) from running forever.
UNTIL_DURATION_CAP_S = 1000.0 * 3600.0

# The longest simulated time a protocol may ask for: ten years (of 365.25 days) of
# cycling or storage, the far end of a cell's calendar life, yet a bound that keeps a
# typo ("for 1e300 hours") from a run that never returns. A single step, the steps of
# fixed duration together, and a runner's simulated time stay within it.
MAX_SIMULATED_S = 10 * 365.25 * 86400.0

# The most segments a protocol may expand to: a 25,000-cycle test of four steps. The
# steps are streamed, never expanded up front, but each one run is reported.
MAX_STEPS = 100_000

# Voltages above this are refused: the cell is a ~2-2.5 V Li-S cell and the bench source
# complies to 4 V, so anything above 10 V is a typo (e.g. mV written as V).
MAX_VOLTAGE_V = 10.0


@dataclasses.dataclass(frozen=True)
class Step:
    """One constant-current, constant-voltage or rest segment, in SI.

    kind: "charge", "discharge", "rest" or "hold".
    current_A: signed (+ charge); 0.0 for rest and hold (a hold sets the voltage).
    voltage_V: hold target; None otherwise.
    duration_s: always finite and > 0; UNTIL_DURATION_CAP_S when the text gave none.
    stop_voltage_V: "until <V>" of a charge/discharge; the C core stops when V rises to
        it on charge and falls to it on discharge (it reads the current's sign).
    stop_current_A: "until <I>" of a hold (a magnitude, > 0).
    line_no, text: where a parsed step came from (None for constructed steps).
    repeat_path: 0-based iteration indices of the enclosing Repeat blocks, outermost
        first, set on the steps returned by Protocol.steps(); () otherwise.
    The source fields do not take part in equality: a parsed step equals the step the
    constructors build for the same segment.
    """

    kind: str
    current_A: float
    voltage_V: Union[float, None] = None
    duration_s: float = UNTIL_DURATION_CAP_S
    stop_voltage_V: Union[float, None] = None
    stop_current_A: Union[float, None] = None
    line_no: Union[int, None] = dataclasses.field(default=None, compare=False)
    text: Union[str, None] = dataclasses.field(default=None, compare=False)
    repeat_path: tuple = dataclasses.field(default=(), compare=False)

    def __post_init__(self):
        # The constructors and the parser check their inputs with precise messages; this
        # catches a Step built by hand that the C core would misread.
        sign_ok = {"charge": self.current_A > 0, "discharge": self.current_A < 0,
                   "rest": self.current_A == 0, "hold": self.current_A == 0}
        if self.kind not in sign_ok:
            raise ProtocolError("unknown step kind %r" % (self.kind,), "charge, discharge, rest or hold")
        if not (isinstance(self.current_A, (int, float)) and math.isfinite(self.current_A)) \
                or not sign_ok[self.kind]:
            raise ProtocolError("%s step with current_A %r" % (self.kind, self.current_A),
                                "> 0 for charge, < 0 for discharge, 0 for rest and hold")
        if not (isinstance(self.duration_s, (int, float)) and math.isfinite(self.duration_s)
                and self.duration_s > 0):
            raise ProtocolError("duration_s %r" % (self.duration_s,), "a finite duration > 0")
        if (self.kind == "hold") != (self.voltage_V is not None):
            raise ProtocolError("%s step with voltage_V %r" % (self.kind, self.voltage_V),
                                "a voltage on hold steps only")
        if self.stop_current_A is not None and self.kind != "hold":
            raise ProtocolError("%s step with a stop current" % self.kind, "stop currents on hold steps only")
        if self.stop_voltage_V is not None and self.mode != MODE_CURRENT:
            raise ProtocolError("%s step with a stop voltage" % self.kind,
                                "stop voltages on charge and discharge steps only")

    @property
    def mode(self) -> int:
        if self.kind == "hold":
            return MODE_VOLTAGE
        if self.kind == "rest":
            return MODE_REST
        return MODE_CURRENT

    @property
    def has_stop_condition(self) -> bool:
        return self.stop_voltage_V is not None or self.stop_current_A is not None

    @property
    def planned_charge_C(self) -> Union[float, None]:
        """Signed charge a current step moves if it runs its full duration.

        None when it may end early (an "until" condition) or is not a current step.
        """
        if self.mode != MODE_CURRENT or self.has_stop_condition:
            return None
        return self.current_A * self.duration_s

    def segment_fields(self) -> dict:
        """The fields of c_core's cell_segment_t for this step (sample_interval_s is
        the runner's choice and not included)."""
        return {
            "mode": self.mode,
            "current_A": float(self.current_A),
            "voltage_V": 0.0 if self.voltage_V is None else float(self.voltage_V),
            "duration_s": float(self.duration_s),
            "stop_voltage_V": 0.0 if self.stop_voltage_V is None else float(self.stop_voltage_V),
            "use_stop_voltage": 0 if self.stop_voltage_V is None else 1,
            "stop_current_A": 0.0 if self.stop_current_A is None else float(self.stop_current_A),
            "use_stop_current": 0 if self.stop_current_A is None else 1,
            "stop_charge_C": 0.0,
            "use_stop_charge": 0,
        }

    def describe(self) -> str:
        """Canonical text of this step; Protocol.parse reads it back to an equal Step."""
        duration = None
        if not (self.has_stop_condition and self.duration_s == UNTIL_DURATION_CAP_S):
            duration = pretty_duration(self.duration_s)
        if self.kind == "rest":
            return "Rest for %s" % duration
        if self.kind == "hold":
            head = "Hold at %s" % pretty(float(self.voltage_V or 0.0), VOLTAGE_DISPLAY)
            until = None
            if self.stop_current_A is not None:
                until = pretty(self.stop_current_A, CURRENT_DISPLAY)
        else:
            head = "%s at %s" % (self.kind.capitalize(), pretty(abs(self.current_A), CURRENT_DISPLAY))
            until = None
            if self.stop_voltage_V is not None:
                until = pretty(self.stop_voltage_V, VOLTAGE_DISPLAY)
        if duration is not None and until is not None:
            return "%s for %s or until %s" % (head, duration, until)
        if duration is not None:
            return "%s for %s" % (head, duration)
        return "%s until %s" % (head, until)

    def __str__(self) -> str:
        return self.text.strip() if self.text is not None else self.describe()


@dataclasses.dataclass(frozen=True)
class Repeat:
    """A block of steps (and nested blocks) run count times, count >= 1."""

    count: int
    body: tuple
    line_no: Union[int, None] = dataclasses.field(default=None, compare=False)
    text: Union[str, None] = dataclasses.field(default=None, compare=False)

    def expand(self, path: tuple = ()) -> Iterator[Step]:
        for index in range(self.count):
            yield from expand(self.body, path + (index,))

    def describe_lines(self, indent: str) -> list:
        lines = ["%sRepeat %d %s:" % (indent, self.count, "time" if self.count == 1 else "times")]
        for item in self.body:
            lines.extend(describe_item(item, indent + "    "))
        return lines


def count_steps(items: Iterable) -> int:
    """How many steps `items` expand to, without expanding them."""
    return sum(item.count * count_steps(item.body) if isinstance(item, Repeat) else 1 for item in items)


def fixed_duration_s(items: Iterable) -> float:
    """The simulated time the steps of fixed duration (no stop condition) take
    together; a step with an 'until' may end at once and adds nothing."""
    total = 0.0
    for item in items:
        if isinstance(item, Repeat):
            total += item.count * fixed_duration_s(item.body)
        elif not item.has_stop_condition:
            total += item.duration_s
    return total


def step_at(items: tuple, index: int, path: tuple = ()) -> Step:
    """The index-th step of the expansion of `items` (0 <= index < count_steps),
    found by walking the tree: O(depth x width), nothing expanded."""
    for item in items:
        if isinstance(item, Repeat):
            per_pass = count_steps(item.body)
            span = item.count * per_pass
            if index < span:
                iteration, within = divmod(index, per_pass)
                return step_at(item.body, within, path + (iteration,))
            index -= span
        elif index == 0:
            return dataclasses.replace(item, repeat_path=path)
        else:
            index -= 1
    raise IndexError("protocol step index out of range")


def leaf_steps(items: Iterable) -> Iterator[Step]:
    """Each Step of the tree once, in text order (not expanded)."""
    for item in items:
        if isinstance(item, Repeat):
            yield from leaf_steps(item.body)
        else:
            yield item


def describe_item(item, indent: str) -> list:
    if isinstance(item, Repeat):
        return item.describe_lines(indent)
    return [indent + item.describe()]


def expand(items: Iterable, path: tuple) -> Iterator[Step]:
    for item in items:
        if isinstance(item, Repeat):
            yield from item.expand(path)
        else:
            yield dataclasses.replace(item, repeat_path=path)


# ---------------------------------------------------------------- validation helpers

def _check_positive(value, what: str, hint: str, line=None, fragment=None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _error("%s must be a number, got %r" % (what, value), hint, line, fragment)
    number = float(value)
    if not math.isfinite(number):
        raise _error("%s must be a finite number, got %r" % (what, value), hint, line, fragment)
    if number <= 0:
        raise _error("%s must be > 0, got %r" % (what, value), hint, line, fragment)
    return number


def _check_voltage(value, what: str, line=None, fragment=None) -> float:
    volts = _check_positive(value, what, "a voltage above 0 and at most %g V" % MAX_VOLTAGE_V, line, fragment)
    if volts > MAX_VOLTAGE_V:
        raise _error("%s of %r V is above %g V" % (what, volts, MAX_VOLTAGE_V),
                     "a voltage above 0 and at most %g V (mV written as V?)" % MAX_VOLTAGE_V,
                     line, fragment)
    return volts


def _check_duration(value, what: str, line=None, fragment=None) -> float:
    duration = _check_positive(value, what, "a duration > 0", line, fragment)
    if duration > MAX_SIMULATED_S:
        raise _error("%s of %r s is above the bound on simulated time" % (what, duration),
                     "a duration of at most %g s (%g h, ten years)" % (MAX_SIMULATED_S, MAX_SIMULATED_S / 3600),
                     line, fragment)
    return duration


def _loc(line) -> tuple:
    """(line_no, text) of a parsed line, (None, None) for a constructor call."""
    if line is None:
        return (None, None)
    return line


def _error(problem, expected, line, fragment) -> ProtocolError:
    line_no, text = _loc(line)
    return ProtocolError(problem, expected, line_no, text, fragment)


def current_step(kind, current_A, duration_s, until_V, line=None, fragments=(None, None, None)):
    sign = 1.0 if kind == "charge" else -1.0
    magnitude = _check_positive(current_A, "%s current" % kind,
                                "a current magnitude > 0; the verb gives the direction", line, fragments[0])
    if duration_s is None and until_V is None:
        raise _error("%s has neither a duration nor a stop voltage" % kind,
                     "'for <duration>', 'until <voltage>' or both", line, fragments[1])
    stop_V = None
    if until_V is not None:
        stop_V = _check_voltage(until_V, "stop voltage", line, fragments[2])
    if duration_s is None:
        duration = UNTIL_DURATION_CAP_S
    else:
        duration = _check_duration(duration_s, "duration", line, fragments[1])
    where = _loc(line)
    return Step(kind=kind, current_A=sign * magnitude, duration_s=duration, stop_voltage_V=stop_V,
                line_no=where[0], text=where[1])


# ---------------------------------------------------------------- constructors

def charge(current_A, duration_s=None, until_V=None) -> Step:
    """Charge (plate lithium) at current_A > 0 for duration_s and/or until V rises to until_V."""
    return current_step("charge", current_A, duration_s, until_V)


def discharge(current_A, duration_s=None, until_V=None) -> Step:
    """Discharge at current_A > 0 (stored as -current_A) for duration_s and/or until V falls to until_V."""
    return current_step("discharge", current_A, duration_s, until_V)


def rest(duration_s) -> Step:
    """Zero current for duration_s."""
    return rest_step(duration_s)


def rest_step(duration_s, line=None, fragment=None) -> Step:
    duration = _check_duration(duration_s, "rest duration", line, fragment)
    where = _loc(line)
    return Step(kind="rest", current_A=0.0, duration_s=duration, line_no=where[0], text=where[1])


def hold(voltage_V, until_A=None, duration_s=None) -> Step:
    """Hold the terminal at voltage_V until |I| falls to until_A and/or for duration_s."""
    return hold_step(voltage_V, until_A, duration_s)


def hold_step(voltage_V, until_A, duration_s, line=None, fragments=(None, None, None)):
    volts = _check_voltage(voltage_V, "hold voltage", line, fragments[0])
    if until_A is None and duration_s is None:
        raise _error("hold has neither a stop current nor a duration",
                     "'until <current>', 'for <duration>' or both", line, fragments[1])
    stop_A = None
    if until_A is not None:
        stop_A = _check_positive(until_A, "hold stop current", "a current > 0", line, fragments[2])
    if duration_s is None:
        duration = UNTIL_DURATION_CAP_S
    else:
        duration = _check_duration(duration_s, "duration", line, fragments[1])
    where = _loc(line)
    return Step(kind="hold", current_A=0.0, voltage_V=volts, duration_s=duration, stop_current_A=stop_A,
                line_no=where[0], text=where[1])


def repeat(count, *items) -> Repeat:
    """A block of steps (or nested blocks) run count >= 1 times."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise ProtocolError("repeat count must be an integer, got %r" % (count,), "a whole number >= 1")
    if count < 1:
        raise ProtocolError("repeat count must be >= 1, got %d" % count, "a whole number >= 1")
    if not items:
        raise ProtocolError("repeat block is empty", "at least one step in the block")
    from twin.protocol.bench import BenchStep

    for item in items:
        if not isinstance(item, (Step, BenchStep, Repeat)):
            raise ProtocolError("repeat block holds %r, not a Step, BenchStep or Repeat" % (item,),
                                "Step, BenchStep or Repeat objects")
    return Repeat(count=count, body=tuple(items))
