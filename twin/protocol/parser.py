"""The text parser: cycler-language lines to Step and Repeat objects.

A line is tokenised (numbers, words, punctuation) and read by a cursor that knows
how to complain: every error quotes the line and the fragment that could not be read.
Indentation opens the block of a 'Repeat <N> times:' line, spaces only.
"""

from __future__ import annotations

import math
import re
from decimal import InvalidOperation
from typing import NoReturn

from twin.protocol.errors import ProtocolError
from twin.protocol.quantities import (
    CURRENT_HINT,
    CURRENT_UNITS,
    TIME_HINT,
    TIME_UNITS,
    VOLTAGE_HINT,
    VOLTAGE_UNITS,
    si_from,
)
from twin.protocol.bench import BenchStep
from twin.protocol.bench_parser import BENCH_VERBS, parse_bench
from twin.protocol.steps import Repeat, Step, current_step, hold_step, rest_step

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
        if scale is None and units is TIME_UNITS:
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
            value = si_from(number.text, scale)
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
        duration_s, duration_frag = line.quantity(TIME_UNITS, "duration", TIME_HINT)
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
    current_A, current_frag = line.quantity(CURRENT_UNITS, "current", CURRENT_HINT)
    duration_s, duration_frag, until_V, until_frag = _parse_ending(
        line, VOLTAGE_UNITS, "voltage", VOLTAGE_HINT,
        "'for <duration>', 'until <voltage>' or 'for <duration> or until <voltage>'")
    return current_step(kind, current_A, duration_s, until_V, (line.line_no, line.text),
                         (current_frag, duration_frag, until_frag))


def _parse_rest(line: _Line) -> Step:
    if line.peek_word() == "until":
        token = line.peek()
        line.fail("a Rest cannot end on a condition (%r)" % line.rest_from(token),
                  "'Rest for <duration>': at zero current nothing else can stop it",
                  line.rest_from(token))
    line.expect_word("for", "'for <duration>' after 'Rest'")
    duration_s, fragment = line.quantity(TIME_UNITS, "duration", TIME_HINT)
    if line.peek_word() == "or":
        token = line.peek()
        line.fail("a Rest cannot end on a condition (%r)" % line.rest_from(token),
                  "'Rest for <duration>': at zero current nothing else can stop it",
                  line.rest_from(token))
    line.end("the end of the line after 'Rest for <duration>'")
    return rest_step(duration_s, (line.line_no, line.text), fragment)


def _parse_hold(line: _Line) -> Step:
    line.expect_word("at", "'at <voltage>' after 'Hold'")
    voltage_V, voltage_frag = line.quantity(VOLTAGE_UNITS, "voltage", VOLTAGE_HINT)
    duration_s, duration_frag, until_A, until_frag = _parse_ending(
        line, CURRENT_UNITS, "current", CURRENT_HINT,
        "'until <current>', 'for <duration>' or 'for <duration> or until <current>'")
    return hold_step(voltage_V, until_A, duration_s, (line.line_no, line.text),
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


_VERBS = ("charge", "discharge", "rest", "hold", "repeat") + BENCH_VERBS


def _parse_line(line: _Line):
    """One non-blank line -> Step or BenchStep, or ("repeat", count) for a block header."""
    first = line.peek()
    verb = line.peek_word()
    if verb not in _VERBS:
        line.fail_at(first, "a line starting with Charge, Discharge, Rest, Hold or Repeat, or a bench "
                            "step: Set, Ramp, Inject, Clear, Cut, Command, Wait, Expect")
    line.take()
    if verb in BENCH_VERBS:
        return parse_bench(line, verb)
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


def parse_text(text: str) -> tuple:
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
            if isinstance(parsed, (Step, BenchStep)):
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
