"""The player of a protocol on a bench with a firmware: cycler steps as requests the
firmware may limit, bench steps (twin/protocol/bench.py) as a test engineer does
them, and expectations that end the run when they fail.

The player drives a *loop*: the firmware on its bench, one tick at a time, wherever
the firmware runs. A loop has `bench` (the twin: cell and board), `tick_s`,
`recorder` and `formation` (twin/recorder.py), `frame` (the firmware's last
telemetry frame, or None before the first), and tick() -> frame, command(name,
args) -> (ok, code), request(current_ua) -> bool, power_cut(off_s). The in-process
loop is twin/run.py's InProcessLoop; over HIL, twin/scenario_hil.py's HilLoop.

How a cycler step plays: while the firmware is still booting or forming, the step
first waits for formation to end (the firmware's business, as `bms-twin run` always
did, at most formation_timeout_s); in READY it plays as requests; in FAULT or SAFE
it is skipped (counted), and the protocol goes on, so a later bench step (an
expectation, `Command reset_fault`) still runs. A protocol of cycler steps alone
therefore plays as before: formation, the duty, and nothing after a fault.

Expect event looks at the events not yet matched by an earlier Expect event (as
pytest-embedded's expect reads on from its last match), then waits up to its limit.
"""
from __future__ import annotations

from pathlib import Path

from bmsfw.config import UAS_PER_UAH
from bmsfw.states import BOOT, FAULT, FORMING, READY, SHIPPED
from twin.core import COULOMB_PER_UAH
from twin.cell import KELVIN
from twin.protocol.bench import ADC_CHANNELS, INJECTIONS, BenchStep
from twin.protocol.quantities import pretty_duration
from twin.recorder import FORMATION_TIMEOUT_S

# The scenario library: acceptance scenarios as protocol files, each with its expectations.
SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"

# A duty step ends early when the firmware grants less than this fraction of
# the request for LIMITED_FOR_S: the BMS, not the schedule, ended it.
LIMITED_FRACTION = 0.01
LIMITED_FOR_S = 60.0
# Clear's phrases -> the board fault they take back (twin.board.TwinBoard.clear).
_CLEARS = {"internal short": "internal_short", "open cell": "open_cell", "thermistor": "thermistor_open",
           "adc": "adc_stuck", "source offset": "source_offset"}
_FORMING = (BOOT, SHIPPED, FORMING)
# The bench steps summary.json lists one by one; past these (a Repeat of 100,000
# expectations) they are counted (bench_steps_more), so the summary stays small.
BENCH_STEPS_LISTED = 1000


class StepRefused(ValueError):
    """A step this loop cannot play (a cycler step over a link without requests)."""


def matches(event: dict, name: str) -> bool:
    """An event is `name`: its kind, or a FAULT event for the fault `name`."""
    return event.get("event") == name or (event.get("event") == "FAULT" and event.get("fault") == name)


def event_text(event: dict) -> str:
    kind = event.get("event")
    if kind == "STATE":
        return "STATE to %s" % event.get("to")
    if kind in ("FAULT", "FAULT_CLEARED"):
        return "%s %s" % (kind, event.get("fault"))
    if kind == "COMMAND":
        return "COMMAND %s" % event.get("command")
    return str(kind)


class Player:
    """Plays protocols (or single steps) on a loop. After a failed expectation
    `failed` says where and what was seen, and nothing more plays."""

    def __init__(self, loop, formation_limits: dict | None = None):
        """`formation_limits`: powered seconds the formation's charge ("charge": FORMING
        before VERIFY, allowed to charge), its "verify" and all of it ("powered") may
        take before the player stops waiting for it (twin/run.py derives them from the
        cell); with "all", every limit counts all powered time. Default: 48 h of it."""
        self.loop = loop
        self.formation_limits = formation_limits or {"charge": FORMATION_TIMEOUT_S, "verify": FORMATION_TIMEOUT_S,
                                                     "powered": FORMATION_TIMEOUT_S, "all": True}
        self._spent = {"charge": 0.0, "verify": 0.0, "powered": 0.0}
        self.formation_timed_out: dict | None = None
        self._duty_stopped_by: str | None = None
        self.steps: list = []           # the cycler steps played, as run.py always reported them
        self.bench_steps: list = []     # the bench steps played: line, text, t_s (the first BENCH_STEPS_LISTED)
        self.bench_steps_more = 0
        self.skipped = 0                # cycler steps skipped in FAULT or SAFE
        self.passed = 0                 # expectations met
        self.failed: dict | None = None
        self.ran_duty = False
        self._matched = 0               # events before this index were matched or passed over

    # ------------------------------------------------------------ reading the loop
    @property
    def state(self) -> str:
        frame = self.loop.frame
        return frame["state"] if frame else BOOT

    @property
    def last_match(self) -> dict | None:
        """The event the last Expect event matched."""
        return self.loop.recorder.events[self._matched - 1] if self._matched else None

    def _in(self, name: str) -> bool:
        """The firmware is in state (or substate) `name`."""
        frame = self.loop.frame
        return (frame["state"] == name or frame["substate"] == name) if frame else name == BOOT

    def _faults(self) -> list:
        frame = self.loop.frame
        return list(frame["faults"]) if frame else []

    def _state_text(self) -> str:
        faults = self._faults()
        frame = self.loop.frame
        sub = "/" + frame["substate"] if frame and frame["substate"] else ""
        return "state %s%s%s" % (self.state, sub, " with faults %s" % ", ".join(faults) if faults else "")

    # ------------------------------------------------------------ playing
    def play(self, protocol) -> bool:
        """Every step of `protocol` in run order; False when an expectation failed."""
        for index, step in enumerate(protocol.steps()):
            if not self.play_step(step, index):
                return False
        return True

    def play_step(self, step, index: int | None = None) -> bool:
        if self.failed is not None:
            return False
        if isinstance(step, BenchStep):
            return self._bench(step)
        report = self._duty(step)
        if report is None:
            self.skipped += 1
            if self._duty_stopped_by is None:
                self._duty_stopped_by = "%s: the cell is %s, not READY" % (
                    "not started" if not self.steps else "skipped from line %s" % step.line_no, self.state)
        else:
            report["index"] = index if index is not None else len(self.steps)
            self.steps.append(report)
            if report["stop_reason"] == "fault" and self._duty_stopped_by is None:
                self._duty_stopped_by = "FAULT at step %d (line %s)" % (len(self.steps), step.line_no)
        return True

    def await_formation(self) -> None:
        """Ticks while the firmware boots and forms, until a formation limit is reached."""
        while self.state in _FORMING and self.formation_timed_out is None:
            self._count_formation(self.loop.tick())

    def _count_formation(self, frame: dict) -> None:
        tick_s, spent, limits = self.loop.tick_s, self._spent, self.formation_limits
        spent["powered"] += tick_s
        if limits.get("all"):
            spent["charge"] = spent["verify"] = spent["powered"]
        elif frame["state"] == FORMING and "UNDER_TEMPERATURE" not in frame["faults"]:
            # the cold inhibit holding the charge is waiting, not failing
            spent["verify" if frame["substate"] == "VERIFY" else "charge"] += tick_s
        over = [phase for phase in ("charge", "verify", "powered") if spent[phase] >= limits[phase]]
        if over and frame["state"] in _FORMING:
            self.formation_timed_out = {"phase": over[0], "powered_s": spent[over[0]], "limit_s": limits[over[0]],
                                        "state": frame["state"], "substate": frame["substate"]}

    def finish(self) -> None:
        """After the duty, as `bms-twin run` always ended: a minute at rest."""
        if self.ran_duty and self.failed is None:
            self.loop.request(0)
            for _ in range(int(round(60 / self.loop.tick_s))):
                self.loop.tick()

    def report(self) -> dict:
        """The summary's keys of what the player did (run_files.judge_closed_loop reads
        "duty" and "formation_timed_out")."""
        reached = len(self.steps) + self.skipped
        return {"steps_skipped": self.skipped, "bench_steps": self.bench_steps,
                "bench_steps_more": self.bench_steps_more,
                "expectations": {"passed": self.passed, "failed": self.failed},
                "duty": {"asked": reached > 0, "steps": reached, "ran": len(self.steps),
                         "stopped_by": self._duty_stopped_by},
                "powered_seconds": getattr(self.loop, "powered_s", None),
                "formation_timeouts_s": {k: v for k, v in self.formation_limits.items() if k != "all"},
                "formation_timed_out": self.formation_timed_out}

    # ------------------------------------------------------------ cycler steps
    def _duty(self, step) -> dict | None:
        """Play one cycler step as requests; how it ended, or None if skipped."""
        if self.state in _FORMING:
            self.await_formation()
        if self.state != READY:
            return None
        loop, bench = self.loop, self.loop.bench
        self.ran_duty = True
        start_s = bench.t_s
        q_in0, q_out0 = bench.cell.state.charge_in_C, bench.cell.state.charge_out_C
        limited_s = 0.0
        reason = "time"
        hold_request = 0
        tick_s = loop.tick_s
        while bench.t_s - start_s < step.duration_s - 1e-9:
            request = hold_request if step.kind == "hold" else int(round(step.current_A * 1e6))
            if self.state == READY:
                loop.request(request)
            frame = loop.tick()
            if frame["state"] == FAULT:
                reason = "fault"
                break
            if step.kind == "hold":
                # a plain proportional voltage hold, as a cycler's CV loop would do
                error_mv = step.voltage_V * 1000.0 - frame["cell_mv"]
                hold_request = int(max(-1000, min(1000, hold_request + error_mv * 2)))
                if step.stop_current_A is not None and bench.t_s - start_s > 60 and \
                        abs(frame["current_ua"]) <= step.stop_current_A * 1e6:
                    reason = "current"
                    break
                continue
            if _until_reached(step, frame["cell_mv"]):
                reason = "voltage"
                break
            # what the firmware granted (its setpoint), not the noisy reading of it
            if request and abs(frame["setpoint_ua"]) < LIMITED_FRACTION * abs(request):
                limited_s += tick_s
                if limited_s >= LIMITED_FOR_S:
                    reason = "limited"
                    break
            else:
                limited_s = 0.0
        s = bench.cell.state
        return {"line": step.line_no, "text": step.text or step.describe(), "stop_reason": reason,
                "elapsed_s": bench.t_s - start_s,
                "charge_uAh": ((s.charge_in_C - q_in0) - (s.charge_out_C - q_out0)) / COULOMB_PER_UAH,
                "end_voltage_V": s.voltage_V}

    # ------------------------------------------------------------ bench steps
    def _bench(self, step: BenchStep) -> bool:
        loop, bench = self.loop, self.loop.bench
        k, v = step.kind, step.value
        start_s = bench.t_s
        seen = None
        if k == "ambient":
            bench.cell.set_ambient_c(v)
        elif k == "ramp":
            from_c = bench.cell.state.ambient_K - KELVIN
            while bench.t_s - start_s < step.duration_s - 1e-9:
                done = min(1.0, (bench.t_s - start_s + loop.tick_s) / step.duration_s)
                bench.cell.set_ambient_c(from_c + (v - from_c) * done)
                loop.tick()
        elif k == "inject":
            phrase, value = v
            if phrase == "adc":
                value = (ADC_CHANNELS.index(value[0]), value[1])
            bench.board.inject(INJECTIONS[phrase][0], value)
        elif k == "clear":
            phrase, value = v
            if phrase == "all faults":
                bench.board.clear_faults()
            else:
                bench.board.clear(_CLEARS[phrase], ADC_CHANNELS.index(value) if phrase == "adc" else None)
        elif k == "power_cut":
            loop.power_cut(step.duration_s)
        elif k == "command":
            name, args = v
            ok, code = loop.command(name, dict(args) or None)
            if not ok:
                return self._fail(step, "the firmware refused it: %s in %s" % (code, self._state_text()))
        elif k == "wait":
            while bench.t_s - start_s < step.duration_s - 1e-9:
                loop.tick()
        else:
            seen = self._expect(step)
            if seen is not None:
                return self._fail(step, seen)
            self.passed += 1
        if len(self.bench_steps) < BENCH_STEPS_LISTED:
            self.bench_steps.append({"line": step.line_no, "text": str(step), "t_s": start_s,
                                     "elapsed_s": bench.t_s - start_s})
        else:
            self.bench_steps_more += 1
        return True

    def _expect(self, step: BenchStep) -> str | None:
        """None when the expectation holds (waiting up to its limit), else what was seen."""
        loop, bench = self.loop, self.loop.bench
        k, v = step.kind, step.value
        if k in ("wait_state", "wait_formed"):
            deadline = bench.t_s + step.duration_s
            want = READY if k == "wait_formed" else v
            while not self._in(want) and bench.t_s < deadline - 1e-9:
                loop.tick()
            if self._in(want):
                return None
            return "still %s after %s" % (self._state_text(), pretty_duration(step.duration_s))
        if k == "expect_event":
            deadline = bench.t_s + step.duration_s
            events = loop.recorder.events
            first = i = self._matched
            while True:
                while i < len(events):
                    if matches(events[i], v):
                        self._matched = i + 1
                        return None
                    i += 1
                if bench.t_s >= deadline - 1e-9:
                    break       # nothing matched: the events stay for a later Expect
                loop.tick()
            others = [event_text(ev) for ev in events[first:]]
            shown = ", ".join(others[-6:]) if others else "no event"
            return "no %s event within %s; saw %s%s (%s)" % (v, pretty_duration(step.duration_s),
                                                             "... " if len(others) > 6 else "", shown,
                                                             self._state_text())
        if k == "expect_state":
            return None if self._in(v) else self._state_text()
        if k == "expect_no_fault":
            return None if not self._faults() and self.state != FAULT else self._state_text()
        if k == "expect_fault":
            return None if v in self._faults() else self._state_text()
        how, uah = v
        frame = loop.frame
        have = frame["inventory_uas"] / UAS_PER_UAH if frame else 0.0
        ok = have > uah if how == "above" else have < uah
        return None if ok else "the firmware counts %.1f uAh (%s)" % (have, self._state_text())

    def _fail(self, step: BenchStep, seen: str) -> bool:
        self.failed = {"line": step.line_no, "step": str(step), "seen": seen, "t_s": self.loop.bench.t_s}
        return False

    @property
    def why(self) -> str | None:
        """The one line a failed run reports."""
        f = self.failed
        if f is None:
            return None
        where = "line %d: " % f["line"] if f["line"] is not None else ""
        return "%s%r failed: %s" % (where, f["step"], f["seen"])


def _until_reached(step, cell_mv: int) -> bool:
    if step.stop_voltage_V is None:
        return False
    stop_mv = step.stop_voltage_V * 1000.0
    return cell_mv >= stop_mv if step.current_A > 0 else cell_mv <= stop_mv


def scenarios() -> dict:
    """The library's scenarios: name -> path."""
    return {path.stem: path for path in sorted(SCENARIO_DIR.glob("*.txt"))}


def check_bench(protocol, board) -> None:
    """ProtocolError for a bench step this board cannot take (ADC counts beyond its
    full scale), before anything runs."""
    from twin.protocol import ProtocolError

    full = (1 << board.adc_bits()) - 1
    for step in protocol.bench_steps():
        if step.kind == "inject" and step.value[0] == "adc" and step.value[1][1] > full:
            raise ProtocolError("%d counts are beyond the board's %d-bit ADC" % (step.value[1][1], board.adc_bits()),
                                "at most %d counts" % full, step.line_no, step.text, str(step.value[1][1]))


__all__ = ["SCENARIO_DIR", "scenarios", "Player", "StepRefused", "check_bench", "event_text", "matches"]
