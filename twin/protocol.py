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

Current sign, as everywhere in bms-twin: + charges the cell (plates lithium),
- discharges it. The text never carries a sign -- the verb gives the direction -- and a
Discharge step stores a negative current_A. (PyBaMM uses + = discharge; we do not.)

Numbers are read as exact decimals and rounded once to float, so "0.1 mA" and
charge(100e-6, ...) give the same current_A bit for bit.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable, Iterator, NoReturn, Sequence, Union

__all__ = [
    "MODE_CURRENT",
    "MODE_VOLTAGE",
    "MODE_REST",
    "UNTIL_DURATION_CAP_S",
    "MAX_VOLTAGE_V",
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

# Segment modes, the CELL_MODE_* values of c_core/cell.h.
MODE_CURRENT = 0
MODE_VOLTAGE = 1
MODE_REST = 2

# A step that ends only on a voltage or current condition ("until 2.0 V") still gets a
# finite duration, because cell_segment_t requires duration_s > 0 and finite. 1000 h is
# far beyond any step of the seed protocols (the longest is 2 h) yet keeps a runaway
# segment (a condition never met) from running forever.
UNTIL_DURATION_CAP_S = 1000.0 * 3600.0

# Voltages above this are refused: the cell is a ~2-2.5 V Li-S cell and the bench source
# complies to 4 V, so anything above 10 V is a typo (e.g. mV written as V).
MAX_VOLTAGE_V = 10.0

EXAMPLES = (
    "Charge at 100 uA for 2 hours",
    "Discharge at 100 uA until 2.0 V",
    "Charge at 0.1 mA for 1 hour or until 2.6 V",
    "Rest for 30 minutes",
    "Hold at 2.6 V until 5 uA",
    "Repeat 20 times:   (then a more-indented block)",
)

# unit -> (scale to SI as an exact decimal string)
_CURRENT_UNITS = {"nA": "1e-9", "uA": "1e-6", "\u00b5A": "1e-6", "\u03bcA": "1e-6", "mA": "1e-3", "A": "1"}
_VOLTAGE_UNITS = {"mV": "1e-3", "V": "1"}
_TIME_UNITS = {}
for _names, _scale in (
    (("s", "sec", "secs", "second", "seconds"), "1"),
    (("min", "mins", "minute", "minutes"), "60"),
    (("h", "hr", "hrs", "hour", "hours"), "3600"),
):
    for _name in _names:
        _TIME_UNITS[_name] = _scale

_CURRENT_HINT = "a current such as '100 uA' (units nA, uA, \u00b5A, mA, A)"
_VOLTAGE_HINT = "a voltage such as '2.0 V' (units V, mV)"
_TIME_HINT = "a duration such as '15 minutes' (units s, min, h and their long forms)"


class ProtocolError(ValueError):
    """A protocol line (or a constructor argument) that cannot become a step.

    line_no and line_text are None for errors raised by the constructors; fragment is
    the part of the line that could not be read.
    """

    def __init__(self, problem, expected, line_no=None, line_text=None, fragment=None):
        self.problem = problem
        self.expected = expected
        self.line_no = line_no
        self.line_text = line_text
        self.fragment = fragment
        where = "" if line_no is None else "line %d: " % line_no
        quoted = "" if line_text is None else " in %r" % line_text.strip()
        examples = "\n".join("    " + e for e in EXAMPLES)
        message = "%s%s%s; expected %s.\nExamples of valid lines:\n%s" % (
            where, problem, quoted, expected, examples)
        super().__init__(message)


def _fmt_decimal(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _si_from(number_text: str, scale: str) -> float:
    # Exact decimal product, one rounding: "0.1" mA == 1e-4 A exactly as Python reads 1e-4.
    return float(Decimal(number_text) * Decimal(scale))


def _pretty(value_si: float, units: Sequence[tuple]) -> str:
    """value in the first unit (name, scale) where it is >= 1, exact decimal digits."""
    exact = Decimal(repr(value_si))
    for name, scale in units:
        scaled = exact / Decimal(scale)
        if abs(scaled) >= 1:
            return "%s %s" % (_fmt_decimal(scaled), name)
    name, scale = units[-1]
    return "%s %s" % (_fmt_decimal(exact / Decimal(scale)), name)


def _pretty_duration(duration_s: float) -> str:
    exact = Decimal(repr(duration_s))
    for name, scale in (("hour", 3600), ("minute", 60)):
        scaled = exact / scale
        if scaled >= 1 and scaled == scaled.to_integral_value():
            return "%s %s%s" % (_fmt_decimal(scaled), name, "" if scaled == 1 else "s")
    return "%s %s" % (_fmt_decimal(exact), "second" if exact == 1 else "seconds")


_CURRENT_DISPLAY = (("A", "1"), ("mA", "1e-3"), ("uA", "1e-6"), ("nA", "1e-9"))
_VOLTAGE_DISPLAY = (("V", "1"), ("mV", "1e-3"))


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
            duration = _pretty_duration(self.duration_s)
        if self.kind == "rest":
            return "Rest for %s" % duration
        if self.kind == "hold":
            head = "Hold at %s" % _pretty(float(self.voltage_V or 0.0), _VOLTAGE_DISPLAY)
            until = None
            if self.stop_current_A is not None:
                until = _pretty(self.stop_current_A, _CURRENT_DISPLAY)
        else:
            head = "%s at %s" % (self.kind.capitalize(), _pretty(abs(self.current_A), _CURRENT_DISPLAY))
            until = None
            if self.stop_voltage_V is not None:
                until = _pretty(self.stop_voltage_V, _VOLTAGE_DISPLAY)
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
            yield from _expand(self.body, path + (index,))

    def describe_lines(self, indent: str) -> list:
        lines = ["%sRepeat %d %s:" % (indent, self.count, "time" if self.count == 1 else "times")]
        for item in self.body:
            lines.extend(_describe_item(item, indent + "    "))
        return lines


def _describe_item(item, indent: str) -> list:
    if isinstance(item, Repeat):
        return item.describe_lines(indent)
    return [indent + item.describe()]


def _expand(items: Iterable, path: tuple) -> Iterator[Step]:
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


def _loc(line) -> tuple:
    """(line_no, text) of a parsed line, (None, None) for a constructor call."""
    if line is None:
        return (None, None)
    return line


def _error(problem, expected, line, fragment) -> ProtocolError:
    line_no, text = _loc(line)
    return ProtocolError(problem, expected, line_no, text, fragment)


def _current_step(kind, current_A, duration_s, until_V, line=None, fragments=(None, None, None)):
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
        duration = _check_positive(duration_s, "duration", "a duration > 0", line, fragments[1])
    where = _loc(line)
    return Step(kind=kind, current_A=sign * magnitude, duration_s=duration, stop_voltage_V=stop_V,
                line_no=where[0], text=where[1])


# ---------------------------------------------------------------- constructors

def charge(current_A, duration_s=None, until_V=None) -> Step:
    """Charge (plate lithium) at current_A > 0 for duration_s and/or until V rises to until_V."""
    return _current_step("charge", current_A, duration_s, until_V)


def discharge(current_A, duration_s=None, until_V=None) -> Step:
    """Discharge at current_A > 0 (stored as -current_A) for duration_s and/or until V falls to until_V."""
    return _current_step("discharge", current_A, duration_s, until_V)


def rest(duration_s) -> Step:
    """Zero current for duration_s."""
    duration = _check_positive(duration_s, "rest duration", "a duration > 0")
    return Step(kind="rest", current_A=0.0, duration_s=duration)


def hold(voltage_V, until_A=None, duration_s=None) -> Step:
    """Hold the terminal at voltage_V until |I| falls to until_A and/or for duration_s."""
    return _hold_step(voltage_V, until_A, duration_s)


def _hold_step(voltage_V, until_A, duration_s, line=None, fragments=(None, None, None)):
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
        duration = _check_positive(duration_s, "duration", "a duration > 0", line, fragments[1])
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
    for item in items:
        if not isinstance(item, (Step, Repeat)):
            raise ProtocolError("repeat block holds %r, not a Step or Repeat" % (item,), "Step or Repeat objects")
    return Repeat(count=count, body=tuple(items))


# ---------------------------------------------------------------- the parser

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<word>[A-Za-z\u00b5\u03bc]+)|(?P<other>\S))")


class _Token:
    __slots__ = ("kind", "text", "start")

    def __init__(self, kind, text, start):
        self.kind = kind
        self.text = text
        self.start = start


def _tokenize(text: str) -> list:
    tokens = []
    pos = 0
    while True:
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            break
        kind = match.lastgroup or "other"
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


class _Line:
    """Cursor over one line's tokens; knows how to complain about them."""

    def __init__(self, line_no: int, text: str):
        self.line_no = line_no
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def peek_word(self):
        token = self.peek()
        return token.text.lower() if token is not None and token.kind == "word" else None

    def take(self):
        token = self.peek()
        self.pos += 1
        return token

    def rest_from(self, token) -> str:
        if token is None:
            return ""
        return self.text[token.start:].strip()

    def fail(self, problem, expected, fragment=None) -> NoReturn:
        raise ProtocolError(problem, expected, self.line_no, self.text, fragment)

    def fail_at(self, token, expected) -> NoReturn:
        if token is None:
            self.fail("line ends early", expected, "")
        fragment = self.rest_from(token)
        self.fail("cannot read %r" % fragment, expected, fragment)

    def expect_word(self, word, expected):
        token = self.peek()
        if token is None or token.kind != "word" or token.text.lower() != word:
            self.fail_at(token, expected)
        self.pos += 1

    def quantity(self, units: dict, what: str, hint: str):
        """Read '<number> <unit>'; return (value in SI, the fragment as written)."""
        number = self.peek()
        if number is None or number.kind != "num":
            self.fail_at(number, hint)
        self.pos += 1
        unit = self.peek()
        if unit is None or unit.kind != "word" or unit.text.lower() in ("for", "until", "or"):
            if unit is None or unit.kind == "word":
                self.fail("%s %r has no unit" % (what, number.text), hint, number.text)
            self.fail_at(unit, hint)
        self.pos += 1
        fragment = self.text[number.start:unit.start + len(unit.text)]
        scale = units.get(unit.text)
        if scale is None and units is _TIME_UNITS:
            scale = units.get(unit.text.lower())
        if scale is None:
            self.fail("unknown %s unit %r" % (what, unit.text), hint, fragment)
        if number.text.startswith(("-", "+")) and what == "current":
            self.fail("signed current %r" % fragment,
                      "a current magnitude without a sign: the verb gives the direction "
                      "('Discharge at 5 uA', not 'Charge at -5 uA')", fragment)
        if number.text.startswith("-"):
            self.fail("negative %s %r" % (what, fragment), hint, fragment)
        try:
            value = _si_from(number.text, scale)
        except InvalidOperation:
            self.fail("unreadable number %r" % number.text, hint, fragment)
        if not math.isfinite(value):
            self.fail("%s %r is not finite" % (what, fragment), hint, fragment)
        if value <= 0:
            self.fail("%s %r must be > 0" % (what, fragment), hint, fragment)
        return value, fragment

    def end(self, expected):
        token = self.peek()
        if token is not None:
            fragment = self.rest_from(token)
            self.fail("unexpected %r at the end" % fragment, expected, fragment)


def _parse_ending(line: _Line, units, what: str, hint: str, expected: str):
    """The end of a step: 'for <duration>', 'until <what>' or 'for <duration> or
    until <what>'. Returns (duration_s, its fragment, until value, its fragment)."""
    duration_s = duration_frag = until = until_frag = None
    word = line.peek_word()
    if word == "for":
        line.take()
        duration_s, duration_frag = line.quantity(_TIME_UNITS, "duration", _TIME_HINT)
        if line.peek_word() == "or":
            line.take()
            line.expect_word("until", "'until <%s>' after 'or'" % what)
            until, until_frag = line.quantity(units, what, hint)
    elif word == "until":
        line.take()
        until, until_frag = line.quantity(units, what, hint)
    else:
        line.fail_at(line.peek(), expected)
    line.end("the end of the line (or 'or until <%s>' right after the duration)" % what)
    return duration_s, duration_frag, until, until_frag


def _parse_current_step(line: _Line, kind: str) -> Step:
    line.expect_word("at", "'at <current>' after '%s'" % kind.capitalize())
    current_A, current_frag = line.quantity(_CURRENT_UNITS, "current", _CURRENT_HINT)
    duration_s, duration_frag, until_V, until_frag = _parse_ending(
        line, _VOLTAGE_UNITS, "voltage", _VOLTAGE_HINT,
        "'for <duration>', 'until <voltage>' or 'for <duration> or until <voltage>'")
    return _current_step(kind, current_A, duration_s, until_V, (line.line_no, line.text),
                         (current_frag, duration_frag, until_frag))


def _parse_rest(line: _Line) -> Step:
    if line.peek_word() == "until":
        token = line.peek()
        line.fail("a Rest cannot end on a condition (%r)" % line.rest_from(token),
                  "'Rest for <duration>': at zero current nothing else can stop it",
                  line.rest_from(token))
    line.expect_word("for", "'for <duration>' after 'Rest'")
    duration_s, fragment = line.quantity(_TIME_UNITS, "duration", _TIME_HINT)
    if line.peek_word() == "or":
        token = line.peek()
        line.fail("a Rest cannot end on a condition (%r)" % line.rest_from(token),
                  "'Rest for <duration>': at zero current nothing else can stop it",
                  line.rest_from(token))
    line.end("the end of the line after 'Rest for <duration>'")
    return Step(kind="rest", current_A=0.0, duration_s=duration_s, line_no=line.line_no, text=line.text)


def _parse_hold(line: _Line) -> Step:
    line.expect_word("at", "'at <voltage>' after 'Hold'")
    voltage_V, voltage_frag = line.quantity(_VOLTAGE_UNITS, "voltage", _VOLTAGE_HINT)
    duration_s, duration_frag, until_A, until_frag = _parse_ending(
        line, _CURRENT_UNITS, "current", _CURRENT_HINT,
        "'until <current>', 'for <duration>' or 'for <duration> or until <current>'")
    return _hold_step(voltage_V, until_A, duration_s, (line.line_no, line.text),
                      (voltage_frag, duration_frag, until_frag))


def _parse_repeat_header(line: _Line) -> int:
    count_token = line.peek()
    if count_token is None or count_token.kind != "num":
        line.fail_at(count_token, "a whole number of repetitions: 'Repeat 20 times:'")
    line.take()
    text = count_token.text
    if not re.fullmatch(r"[+-]?\d+", text):
        line.fail("repeat count %r is not a whole number" % text, "'Repeat <N> times:' with N >= 1", text)
    count = int(text)
    if count < 1:
        line.fail("repeat count %d is below 1" % count, "'Repeat <N> times:' with N >= 1", text)
    word = line.peek_word()
    if word not in ("times", "time"):
        line.fail_at(line.peek(), "'times:' after the count: 'Repeat %s times:'" % text)
    line.take()
    token = line.peek()
    if token is None or token.text != ":":
        line.fail_at(token, "':' closing 'Repeat %s times:'" % text)
    line.take()
    line.end("the end of the line after 'Repeat <N> times:' (the block goes on the next lines)")
    return count


_VERBS = ("charge", "discharge", "rest", "hold", "repeat")


def _parse_line(line: _Line):
    """One non-blank line -> Step, or ("repeat", count) for a block header."""
    first = line.peek()
    verb = line.peek_word()
    if verb not in _VERBS:
        line.fail_at(first, "a line starting with Charge, Discharge, Rest, Hold or Repeat")
    line.take()
    if verb in ("charge", "discharge"):
        return _parse_current_step(line, verb)
    if verb == "rest":
        return _parse_rest(line)
    if verb == "hold":
        return _parse_hold(line)
    return ("repeat", _parse_repeat_header(line))


def _strip_comment(text: str) -> str:
    cut = text.find("#")
    return text if cut < 0 else text[:cut]


def _parse_text(text: str) -> tuple:
    # Lines carry (line_no, indent, content); blank and comment-only lines are dropped.
    lines = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        content = _strip_comment(raw).rstrip()
        if not content.strip():
            continue
        stripped = content.lstrip(" \t")
        lead = content[:len(content) - len(stripped)]
        if "\t" in lead:
            raise ProtocolError("tab in the indentation", "indentation made of spaces only",
                                line_no, raw, lead)
        lines.append((line_no, len(lead), stripped, raw))
    if not lines:
        raise ProtocolError("the protocol has no steps", "at least one step line", None, None, "")

    position = 0

    def block(indent: int) -> list:
        """Lines at exactly `indent` until a shallower one; deeper ones belong to Repeats."""
        nonlocal position
        items: list = []
        while position < len(lines):
            line_no, line_indent, content, raw = lines[position]
            if line_indent < indent:
                break
            if line_indent > indent:
                raise ProtocolError("unexpected indentation (%d spaces where the block uses %d)"
                                    % (line_indent, indent),
                                    "indentation only in the block after a 'Repeat <N> times:' line",
                                    line_no, raw, content)
            position += 1
            parsed = _parse_line(_Line(line_no, content))
            if isinstance(parsed, Step):
                items.append(parsed)
                continue
            count = parsed[1]
            if position >= len(lines) or lines[position][1] <= indent:
                raise ProtocolError("the Repeat block at line %d is empty" % line_no,
                                    "at least one more-indented step line after 'Repeat <N> times:'",
                                    line_no, raw, content)
            inner_indent = lines[position][1]
            inner = block(inner_indent)
            items.append(Repeat(count=count, body=tuple(inner), line_no=line_no, text=content))
            # The block ended on a dedent: it must return to this block's level or further out.
            if position < len(lines) and indent < lines[position][1] < inner_indent:
                bad_no, bad_indent, bad_content, bad_raw = lines[position]
                raise ProtocolError("indentation of %d spaces matches no enclosing block (%d or %d)"
                                    % (bad_indent, indent, inner_indent),
                                    "a dedent back to the indentation of an enclosing block",
                                    bad_no, bad_raw, bad_content)
        return items

    top_indent = lines[0][1]
    items = block(top_indent)
    if position < len(lines):
        line_no, line_indent, content, raw = lines[position]
        raise ProtocolError("indentation of %d spaces is left of the first line's %d"
                            % (line_indent, top_indent),
                            "every top-level line at the first line's indentation",
                            line_no, raw, content)
    return tuple(items)


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
        self._steps = tuple(_expand(items, ()))

    @classmethod
    def parse(cls, text: str, name: Union[str, None] = None) -> "Protocol":
        if not isinstance(text, str):
            raise ProtocolError("protocol text must be a str, got %s" % type(text).__name__, "text lines")
        return cls(_parse_text(text), text=text, name=name)

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
            lines.extend(_describe_item(item, ""))
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return "Protocol(%s%d steps)" % ("%r, " % self.name if self.name else "", len(self))
