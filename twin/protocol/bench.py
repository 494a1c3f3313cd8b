"""Bench steps: what a test engineer does to a bench around the cycler's steps.

    Set ambient to 0 °C                       Ramp ambient to 45 °C over 2 hours
    Inject crack                              Inject internal short of 50 ohm
    Inject thermistor open                    Inject ADC VCELL stuck at 1234
    Clear thermistor                          Clear all faults
    Cut power for 10 minutes                  Command stop
    Command charge current_ua=100 duration_s=600
    Wait for 10 minutes                       Wait until state READY within 2 hours
    Wait until formed within 48 hours
    Expect event CRACK_SUSPECTED within 2 hours
    Expect state READY                        Expect no fault
    Expect fault SENSOR                       Expect inventory above 150 uAh

A BenchStep is immutable like a Step, holds SI (seconds, °C, µAh) and sits in the
same tree (a Repeat may hold both). The names come from their one definition:
faults from twin.board.FAULTS (INJECTIONS says how each reads), commands from
bmsfw.commands, states, faults and event kinds from bmsfw.states. Every step but
`Set ambient` needs a firmware: `simulate` refuses them (needs_firmware).

Expectations end the run when they fail (twin/scenario.py plays them); `Wait until`
is an expectation with a time limit, and the limit is required.
"""
from __future__ import annotations

import dataclasses
from typing import Union

from bmsfw.commands import COMMANDS, LIMIT_KEYS
from bmsfw.states import EVENT_KINDS, FAULTS, STATES, SUBSTATES

# Fault phrase (the words after Inject / Clear) -> (twin.board.FAULTS name, the value
# it takes: None, "ohm", "uA" or "adc"). ambient_step is `Set ambient` (the same thing
# said the way a chamber is set). tests/twin/test_bench_steps.py checks every board
# fault has its phrase.
INJECTIONS = {
    "crack": ("crack_now", None),
    "internal short": ("internal_short", "ohm"),
    "open cell": ("open_cell", None),
    "thermistor open": ("thermistor_open", None),
    "thermistor short": ("thermistor_short", None),
    "adc": ("adc_stuck", "adc"),
    "source offset": ("source_offset", "uA"),
}
# What a Clear names (a crack is physical: it cannot be cleared).
CLEARABLE = ("internal short", "open cell", "thermistor", "adc", "source offset", "all faults")
ADC_CHANNELS = ("VCELL", "ISHUNT", "TCELL")     # bmsfw.hal's channel order

# The arguments a command takes (bmsfw.commands.check judges their values).
COMMAND_ARGS = {"charge": ("current_ua", "duration_s"), "discharge": ("current_ua", "duration_s"),
                "set_limits": LIMIT_KEYS}
# What Wait until state / Expect state may name: a state, or a substate (VERIFY, CHARGING).
STATE_NAMES = STATES + tuple(name for name in SUBSTATES if name)
# An event an expectation may name: an event kind, or a fault (a FAULT event for it).
EVENT_NAMES = EVENT_KINDS + FAULTS

# kind -> needs a time: "fixed" (the step takes it), "limit" (at most), or None.
BENCH_KINDS = {
    "ambient": None, "ramp": "fixed", "inject": None, "clear": None, "power_cut": "fixed",
    "command": None, "wait": "fixed", "wait_state": "limit", "wait_formed": "limit",
    "expect_event": "limit", "expect_state": None, "expect_no_fault": None, "expect_fault": None,
    "expect_inventory": None,
}
EXPECTATIONS = ("wait_state", "wait_formed", "expect_event", "expect_state", "expect_no_fault",
                "expect_fault", "expect_inventory")

BENCH_EXAMPLES = (
    "Set ambient to 0 °C", "Ramp ambient to 45 °C over 2 hours", "Inject crack",
    "Inject internal short of 50 ohm", "Inject ADC VCELL stuck at 1234", "Clear all faults",
    "Cut power for 10 minutes", "Command stop", "Wait until state READY within 2 hours",
    "Expect event CRACK_SUSPECTED within 2 hours", "Expect inventory above 150 uAh",
)


@dataclasses.dataclass(frozen=True)
class BenchStep:
    """One bench action or expectation.

    kind: a key of BENCH_KINDS.
    value: ambient/ramp: the target °C; inject/clear: (phrase, value) with value None,
        ohm, µA or (channel, counts); command: (name, ((key, int), ...)); wait_state,
        expect_state: a state; expect_event: an EVENT_NAMES name; expect_fault: a fault;
        expect_inventory: ("above" or "below", µAh).
    duration_s: the time a "fixed" kind takes, or the limit of a "limit" kind; 0 otherwise.
    """

    kind: str
    value: object = None
    duration_s: float = 0.0
    line_no: Union[int, None] = dataclasses.field(default=None, compare=False)
    text: Union[str, None] = dataclasses.field(default=None, compare=False)
    repeat_path: tuple = dataclasses.field(default=(), compare=False)

    def __post_init__(self):
        if self.kind not in BENCH_KINDS:
            raise ValueError("unknown bench step kind %r" % (self.kind,))

    # what the protocol tree asks of its items (twin/protocol/steps.py)
    @property
    def has_stop_condition(self) -> bool:
        """A limit is at most: it adds nothing to the least time a protocol takes."""
        return BENCH_KINDS[self.kind] != "fixed"

    @property
    def needs_firmware(self) -> bool:
        return self.kind != "ambient"

    @property
    def is_expectation(self) -> bool:
        return self.kind in EXPECTATIONS

    def describe(self) -> str:
        """Canonical text; the parser reads it back to an equal BenchStep."""
        from twin.protocol.quantities import pretty_duration

        k, v = self.kind, self.value
        limit = " within %s" % pretty_duration(self.duration_s) if BENCH_KINDS[k] == "limit" else ""
        if k == "ambient":
            return "Set ambient to %s °C" % _num(v)
        if k == "ramp":
            return "Ramp ambient to %s °C over %s" % (_num(v), pretty_duration(self.duration_s))
        if k in ("inject", "clear"):
            return ("Inject " if k == "inject" else "Clear ") + _fault_text(k, *v)
        if k == "power_cut":
            return "Cut power for %s" % pretty_duration(self.duration_s)
        if k == "command":
            name, args = v
            return " ".join(["Command", name] + ["%s=%d" % kv for kv in args])
        if k == "wait":
            return "Wait for %s" % pretty_duration(self.duration_s)
        if k == "wait_state":
            return "Wait until state %s%s" % (v, limit)
        if k == "wait_formed":
            return "Wait until formed%s" % limit
        if k == "expect_event":
            return "Expect event %s%s" % (v, limit)
        if k == "expect_state":
            return "Expect state %s" % v
        if k == "expect_fault":
            return "Expect fault %s" % v
        if k == "expect_no_fault":
            return "Expect no fault"
        return "Expect inventory %s %s uAh" % (v[0], _num(v[1]))

    def __str__(self) -> str:
        return self.text.strip() if self.text is not None else self.describe()


def _num(value: float) -> str:
    return ("%r" % float(value)).rstrip("0").rstrip(".") if float(value) != int(value) else "%d" % value


def _fault_text(kind: str, phrase: str, value) -> str:
    if phrase == "adc":
        channel = value if kind == "clear" else value[0]
        return "ADC %s" % channel + ("" if kind == "clear" else " stuck at %d" % value[1])
    if kind == "clear" or value is None:
        return phrase
    if phrase == "internal short":
        return "internal short of %s ohm" % _num(value)
    return "source offset of %s uA" % _num(value)


__all__ = ["ADC_CHANNELS", "BENCH_EXAMPLES", "BENCH_KINDS", "BenchStep", "CLEARABLE", "COMMANDS",
           "COMMAND_ARGS", "EVENT_NAMES", "EXPECTATIONS", "FAULTS", "INJECTIONS", "STATES", "STATE_NAMES"]
