"""The bench lines of the cycler language (twin/protocol/bench.py lists them) to
BenchSteps, read by the parser's cursor (twin/protocol/parser.py) so that every
refusal names the line, quotes the fragment and says what was expected.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from twin.protocol.bench import (
    ADC_CHANNELS,
    CLEARABLE,
    COMMAND_ARGS,
    COMMANDS,
    EVENT_NAMES,
    FAULTS,
    INJECTIONS,
    STATE_NAMES,
    BenchStep,
)
from twin.protocol.quantities import TIME_HINT, TIME_UNITS
from twin.protocol.steps import MAX_SIMULATED_S

BENCH_VERBS = ("set", "ramp", "inject", "clear", "cut", "command", "wait", "expect")

# a name starts as the tokenizer's words do (µ and μ included: 'µAh' is a word)
_NAME_RE = re.compile(r"[A-Za-z\u00b5\u03bc][A-Za-z0-9_/\u00b5\u03bc]*")
_ARG_RE = re.compile(r"([A-Za-z_]+)=([+-]?\d+)$")
TEMPERATURE_HINT = "a temperature such as '0 °C' (or '0 C')"
# the model's range (twin.cell): what --ambient-c accepts
_AMBIENT_RANGE_C = (-120.0, 220.0)
_RESISTANCE_UNITS = {"ohm": "1", "ohms": "1", "kohm": "1e3", "kohms": "1e3", "mohm": "1e-3"}
_CHARGE_UNITS = {"nAh": "1e-3", "uAh": "1", "\u00b5Ah": "1", "\u03bcAh": "1", "mAh": "1e3"}
# how a fault that takes a value reads, in a refusal's list
_SHOWN = {"internal short": "internal short of <R> ohm", "source offset": "source offset of <I> uA",
          "adc": "ADC <channel> stuck at <counts>"}
_OFFSET_UNITS = {"nA": "1e-3", "uA": "1", "\u00b5A": "1", "mA": "1e3"}


def _number(line, hint, signed=True):
    token = line.peek()
    if token is None or token.kind != "num":
        line.fail_at(token, hint)
    line.take()
    if not signed and token.text.startswith("-"):
        line.fail("negative value %r" % token.text, hint, token.text)
    try:
        value = Decimal(token.text)
    except InvalidOperation:
        line.fail("unreadable number %r" % token.text, hint, token.text)
    if not value.is_finite():
        line.fail("%r is not finite" % token.text, hint, token.text)
    return value, token


def _with_unit(line, units, what, hint, signed=True):
    """'<number> <unit>' in the units' scale; (value, fragment)."""
    value, number = _number(line, hint, signed)
    unit = line.peek()
    if unit is None or unit.kind != "word":
        line.fail("%s %r has no unit" % (what, number.text), hint, number.text)
    line.take()
    fragment = line.text[number.start:unit.start + len(unit.text)]
    scale = units.get(unit.text, units.get(unit.text.lower()))
    if scale is None:
        line.fail("unknown %s unit %r" % (what, unit.text), hint, fragment)
    return float(value * Decimal(scale)), fragment


def _temperature(line):
    value, number = _number(line, TEMPERATURE_HINT)
    token = line.peek()
    if token is not None and token.text == "\u00b0":
        line.take()
        token = line.peek()
    if token is None or token.kind != "word" or token.text not in ("C", "degC"):
        line.fail("temperature %r has no unit °C" % number.text, TEMPERATURE_HINT, number.text)
    line.take()
    celsius = float(value)
    low, high = _AMBIENT_RANGE_C
    if not low < celsius < high:
        line.fail("ambient %g °C is outside the model's range" % celsius,
                  "a temperature between %g and %g °C" % (low, high), number.text)
    return celsius


def _duration(line, what="duration"):
    value, fragment = _with_unit(line, TIME_UNITS, what, TIME_HINT, signed=False)
    if not value > 0:
        line.fail("%s %r must be > 0" % (what, fragment), TIME_HINT, fragment)
    if value > MAX_SIMULATED_S:
        line.fail("%s %r is above the bound on simulated time" % (what, fragment),
                  "at most ten years", fragment)
    return value


def _name(line, expected):
    """A name with underscores and slashes (CRACK_SUSPECTED, formation/start)."""
    token = line.peek()
    if token is None or token.kind != "word":
        line.fail_at(token, expected)
    match = _NAME_RE.match(line.text, token.start)
    end = match.end()
    while line.peek() is not None and line.peek().start < end:
        line.take()
    return match.group(0)


def _limit(line, what):
    """The 'within <duration>' every Wait until and Expect event needs."""
    if line.peek_word() != "within":
        if line.peek() is None:
            line.fail("%s has no time limit" % what,
                      "'within <duration>' at the end: a wait that never ends cannot fail", "")
        line.fail_at(line.peek(), "'within <duration>'")
    line.take()
    return _duration(line, "time limit")


def _choose(line, word, names, what):
    if word not in names:
        line.fail("unknown %s %r" % (what, word), "one of " + ", ".join(names), word)
    return word


def _fault_phrase(line, verb):
    """The words after Inject/Clear: the phrase of an INJECTIONS (or CLEARABLE) entry."""
    words = []
    start = line.peek()
    known = INJECTIONS if verb == "inject" else CLEARABLE
    while line.peek_word() is not None:
        words.append(line.take().text.lower())
        phrase = " ".join(words)
        if phrase in known or (verb == "clear" and phrase in INJECTIONS):
            return phrase
    fragment = line.rest_from(start) if start is not None else ""
    names = ", ".join(_SHOWN.get(name, name) for name in known)
    line.fail("unknown fault %r" % fragment if fragment else "no fault named",
              "one of: " + names, fragment)


def _inject(line):
    phrase = _fault_phrase(line, "inject")
    unit = INJECTIONS[phrase][1]
    value = None
    if unit == "ohm":
        line.expect_word("of", "'of <resistance>': 'Inject internal short of 50 ohm'")
        value, fragment = _with_unit(line, _RESISTANCE_UNITS, "resistance", "a resistance such as '50 ohm'",
                                     signed=False)
        if not value > 0:
            line.fail("resistance %r must be > 0" % fragment, "a resistance > 0", fragment)
    elif unit == "uA":
        line.expect_word("of", "'of <current>': 'Inject source offset of 5 uA'")
        value, fragment = _with_unit(line, _OFFSET_UNITS, "offset", "a current such as '5 uA' (may be negative)")
    elif unit == "adc":
        channel = _choose(line, _name(line, "a channel: " + ", ".join(ADC_CHANNELS)).upper(), ADC_CHANNELS,
                          "ADC channel")
        line.expect_word("stuck", "'stuck at <counts>': 'Inject ADC VCELL stuck at 1234'")
        line.expect_word("at", "'at <counts>'")
        counts, token = _number(line, "a whole number of ADC counts", signed=False)
        if counts != counts.to_integral_value():
            line.fail("ADC counts %r are not whole" % token.text, "a whole number of counts", token.text)
        value = (channel, int(counts))
    line.end("the end of the line after the fault")
    return BenchStep("inject", (phrase, value))


def _clear(line):
    phrase = _fault_phrase(line, "clear")
    if phrase == "crack":
        line.fail("a crack cannot be cleared", "a fault the board can take back: " + ", ".join(CLEARABLE),
                  "crack")
    if phrase == "thermistor" and line.peek_word() in ("open", "short"):
        line.take()     # 'Clear thermistor open': the thermistor reads again, open or shorted
    elif phrase in ("thermistor open", "thermistor short"):
        phrase = "thermistor"
    value = None
    if phrase == "adc":
        value = _choose(line, _name(line, "a channel: " + ", ".join(ADC_CHANNELS)).upper(), ADC_CHANNELS,
                        "ADC channel")
    line.end("the end of the line after the fault")
    return BenchStep("clear", (phrase, value))


def _command(line):
    name = _choose(line, _name(line, "a command: " + ", ".join(COMMANDS)), COMMANDS, "command")
    allowed = COMMAND_ARGS.get(name, ())
    args = []
    rest = line.rest_from(line.peek())
    for word in rest.split():
        match = _ARG_RE.match(word)
        if match is None or match.group(1) not in allowed:
            expected = ("arguments key=<int> of %s" % ", ".join(allowed)) if allowed else \
                "nothing after 'Command %s': it takes no arguments" % name
            line.fail("cannot read %r" % word, expected, word)
        if match.group(1) in dict(args):
            line.fail("%s given twice" % match.group(1), "each argument once", word)
        args.append((match.group(1), int(match.group(2))))
    if name in ("charge", "discharge") and "current_ua" not in dict(args):
        line.fail("Command %s has no current_ua" % name, "'Command %s current_ua=<uA> [duration_s=<s>]'" % name,
                  rest)
    if name == "set_limits" and not args:
        line.fail("Command set_limits has no limit", "one or more of %s=<int>" % ", ".join(allowed), rest)
    line.pos = len(line.tokens)
    return BenchStep("command", (name, tuple(args)))


def _wait(line):
    word = line.peek_word()
    if word == "for":
        line.take()
        duration = _duration(line)
        line.end("the end of the line after 'Wait for <duration>'")
        return BenchStep("wait", None, duration)
    line.expect_word("until", "'until state <STATE> within <duration>', 'until formed within <duration>' "
                              "or 'for <duration>'")
    if line.peek_word() == "formed":
        line.take()
        limit = _limit(line, "Wait until formed")
        line.end("the end of the line after the time limit")
        return BenchStep("wait_formed", None, limit)
    line.expect_word("state", "'state <STATE>' or 'formed' after 'Wait until'")
    state = _choose(line, _name(line, "a state: " + ", ".join(STATE_NAMES)), STATE_NAMES, "state")
    limit = _limit(line, "Wait until state %s" % state)
    line.end("the end of the line after the time limit")
    return BenchStep("wait_state", state, limit)


def _expect(line):
    word = line.peek_word()
    expected = "'event <NAME> within <duration>', 'state <STATE>', 'no fault', 'fault <FAULT>' " \
               "or 'inventory above <charge>' after 'Expect'"
    if word not in ("event", "state", "no", "fault", "inventory"):
        line.fail_at(line.peek(), expected)
    line.take()
    if word == "event":
        name = _choose(line, _name(line, "an event: " + ", ".join(EVENT_NAMES)), EVENT_NAMES, "event")
        limit = _limit(line, "Expect event %s" % name)
        step = BenchStep("expect_event", name, limit)
    elif word == "state":
        step = BenchStep("expect_state", _choose(line, _name(line, "a state"), STATE_NAMES, "state"))
    elif word == "fault":
        step = BenchStep("expect_fault", _choose(line, _name(line, "a fault"), FAULTS, "fault"))
    elif word == "no":
        line.expect_word("fault", "'Expect no fault'")
        step = BenchStep("expect_no_fault")
    else:
        how = line.peek_word()
        if how not in ("above", "below"):
            line.fail_at(line.peek(), "'above <charge>' or 'below <charge>': 'Expect inventory above 150 uAh'")
        line.take()
        value, _ = _with_unit(line, _CHARGE_UNITS, "charge", "a charge such as '150 uAh' (nAh, uAh, mAh)",
                              signed=False)
        step = BenchStep("expect_inventory", (how, value))
    line.end("the end of the line after the expectation")
    return step


def parse_bench(line, verb: str) -> BenchStep:
    """The rest of a bench line whose first word (`verb`, taken) is one of BENCH_VERBS."""
    if verb == "set" or verb == "ramp":
        line.expect_word("ambient", "'ambient to <temperature>' after '%s'" % verb.capitalize())
        line.expect_word("to", "'to <temperature>'")
        celsius = _temperature(line)
        if verb == "set":
            line.end("the end of the line after 'Set ambient to <temperature>'")
            step = BenchStep("ambient", celsius)
        else:
            line.expect_word("over", "'over <duration>': 'Ramp ambient to 45 °C over 2 hours'")
            duration = _duration(line)
            line.end("the end of the line after 'over <duration>'")
            step = BenchStep("ramp", celsius, duration)
    elif verb == "inject":
        step = _inject(line)
    elif verb == "clear":
        step = _clear(line)
    elif verb == "cut":
        line.expect_word("power", "'power for <duration>' after 'Cut'")
        line.expect_word("for", "'for <duration>': 'Cut power for 10 minutes'")
        duration = _duration(line)
        line.end("the end of the line after 'Cut power for <duration>'")
        step = BenchStep("power_cut", None, duration)
    elif verb == "command":
        step = _command(line)
    elif verb == "wait":
        step = _wait(line)
    else:
        step = _expect(line)
    if not math.isfinite(step.duration_s):
        line.fail("duration is not finite", TIME_HINT)
    return BenchStep(step.kind, step.value, step.duration_s, line.line_no, line.text)
