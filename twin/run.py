"""Closed loop: the firmware controller runs a shipped cell on the twin bench.

The firmware sees only the HAL (twin/board.py); this module is the run around
it: it boots the controller on the bench, lets simulated time pass one tick at
a time, plays the duty cycle as *requests* the firmware may limit (as an
inverter or cycler asks a BMS), cuts power when told to (the controller boots
again from its record), and records what happened (twin/recorder.py), both as
the firmware reported it (frames) and as the twin knows it (truth).
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from bmsfw.config import Config
from bmsfw.controller import Controller
from twin.bench import Bench
from twin.core import COULOMB_PER_UAH
from twin.firmware_config import config_for, formation_timeouts_s
from twin.protocol import Protocol
from twin.run_files import judge_closed_loop
from twin.recorder import FORMATION_TIMEOUT_S, FormationWatch, Recorder, RunResult, summarize  # noqa: F401 (tests/mp)

DUTY_D111 = Path(__file__).resolve().parent / "protocols" / "d111_duty.txt"
# The area of the cell the D111 duty was written for (seed EXAMPLES: ~1 cm²).
D111_AREA_CM2 = 1.0
_CURRENT = re.compile(r"\b(\d+(?:\.\d+)?) uA\b")


def duty_for(parameters) -> Protocol:
    """The D111 duty (twin/protocols/d111_duty.txt) scaled to a cell: every
    current multiplied by the cell's area over D111's, so each step runs at the
    seed's current density (100 µA/cm² cycles, then the strip to 2.0 V and the
    20 µA/cm² finish), for the same durations. d111 gets the file itself."""
    text = DUTY_D111.read_text()
    scale = parameters.values["area_cm2"] / D111_AREA_CM2
    if scale != 1.0:
        text = _CURRENT.sub(lambda m: "%.6g mA" % (float(m.group(1)) * scale / 1000.0), text)
    return Protocol.parse(text, name="d111_duty scaled to %s" % parameters.name)

# A duty step ends early when the firmware grants (sets) less than this fraction
# of the request for LIMITED_FOR_S: the BMS, not the schedule, ended it.
LIMITED_FRACTION = 0.01
LIMITED_FOR_S = 60.0


def controller_settings(bench: Bench, config: Config | None = None,
                        device_id: str | None = None) -> tuple[Config, str]:
    """The config and device id of the controller run_closed_loop puts on `bench`,
    unless given: config_for the cell on the bench's board, and `<cell>-<seed>`."""
    if config is None:
        config = config_for(bench.parameters, bench.board.description)
    return config, device_id or f"{bench.parameters.name}-{bench.seed:04d}"


def _until_reached(step, cell_mv: int) -> bool:
    if step.stop_voltage_V is None:
        return False
    stop_mv = step.stop_voltage_V * 1000.0
    return cell_mv >= stop_mv if step.current_A > 0 else cell_mv <= stop_mv


def run_closed_loop(parameters, duty: Protocol | None = None, ambient_c: float = 25.0, seed: int = 0,
                    power_cuts_s: Sequence[float] = (), off_s: float = 60.0,
                    on_tick: Callable | None = None, sinks: Iterable = (), record_every: int = 1,
                    config: Config | None = None, ambient_profile: Callable | None = None,
                    stop_after_formation: bool = False, bench: Bench | None = None,
                    formation_timeout_s: float | None = None,
                    device_id: str | None = None, board=None) -> RunResult:
    """Boot the firmware on a shipped cell, let it form the cell, then play the
    duty protocol as requests. The bench is `bench`, or a new one of the parameter
    set at `ambient_c` on `board` (default: the one the set names) with `seed`; the
    firmware's config is `config`, or config_for the cell on the bench's board.
    `sinks` receive frames: objects with frame(dict), event(dict) and, optionally,
    poll(controller) for commands. `on_tick(bench)` runs after every tick (tests
    use it to inject faults).

    Formation ends at READY or FAULT, or times out: the charge (FORMING before
    VERIFY) and the verify each have a limit from the cell (firmware_config.
    formation_timeouts_s) in powered time allowed to charge (neither a power cut
    nor the cold inhibit counts), and all powered time has a backstop (48 h + 3 x
    the charge's limit); `formation_timeout_s` replaces the first two with one
    limit on all powered time."""
    bench = bench or Bench.build(parameters, ambient_c=ambient_c, seed=seed, board=board)
    config, device_id = controller_settings(bench, config, device_id)
    twin_board = bench.board
    tick_ms = config.tick_ms
    tick_s = tick_ms / 1000.0
    recorder = Recorder(bench, record_every)
    sinks = list(sinks)
    pollers = [s for s in sinks if hasattr(s, "poll")]
    cuts = sorted(float(t) for t in power_cuts_s)
    formation = FormationWatch(bench)
    steps_report: list = []
    boots = 0
    powered = [0.0]         # powered seconds: what formation's timeouts count

    def boot() -> None:
        # as at power-up: the controller reads its record from the board
        nonlocal boots
        boots += 1
        bench.controller = Controller(twin_board, config, device_id=device_id)

    def one_tick() -> dict:
        nonlocal cuts
        if cuts and bench.t_s >= cuts[0]:
            cuts = cuts[1:]
            bench.controller = None
            cut_s = bench.t_s
            bench.power_cut(off_s)
            recorder.power_cut(cut_s, bench.t_s)
            boot()
        if ambient_profile is not None:
            bench.cell.set_ambient_c(ambient_profile(bench.t_s))
        for p in pollers:
            p.poll(bench.controller)
        twin_board.advance(tick_ms)
        powered[0] += tick_s
        c = bench.controller
        c.tick()
        frame = c.telemetry()
        recorder.tick(frame)
        for sink in sinks:
            sink.frame(frame)
        events = c.pop_events()
        formation.frame(frame)
        for ev in events:
            recorder.event(ev)
            formation.event(ev)
            for sink in sinks:
                sink.event(ev)
        if on_tick is not None:
            on_tick(bench)
        return frame

    boot()
    t_wall = time.perf_counter()
    # Phase 1: boot and formation, the firmware's own business, within its timeouts.
    limits = formation_timeouts_s(config, bench.ambient_c)
    if formation_timeout_s is not None:
        limits = {"charge": formation_timeout_s, "verify": formation_timeout_s}
    limits = dict(limits)
    # The charge's clock runs while FORMING and allowed to charge (not while the
    # cold inhibit holds it: that is waiting, not failing); a backstop on all
    # powered time ends a run that never gets there (a cell kept too cold).
    limits["powered"] = FORMATION_TIMEOUT_S + 3 * limits["charge"]
    spent = {"charge": 0.0, "verify": 0.0, "powered": 0.0}
    timed_out = None
    while True:
        frame = one_tick()
        if frame["state"] in ("READY", "FAULT"):
            break
        spent["powered"] = powered[0]
        if frame["state"] == "FORMING" and "UNDER_TEMPERATURE" not in frame["faults"]:
            spent["verify" if frame["substate"] == "VERIFY" else "charge"] += tick_s
        if formation_timeout_s is not None:
            spent["charge"] = spent["verify"] = powered[0]
        over = [phase for phase in ("charge", "verify", "powered") if spent[phase] >= limits[phase]]
        if over:
            timed_out = {"phase": over[0], "powered_s": spent[over[0]], "limit_s": limits[over[0]],
                         "state": frame["state"], "substate": frame["substate"]}
            break
    # Phase 2: the duty cycle, each step a request the firmware may limit.
    duty_asked = duty is not None and not stop_after_formation
    duty_report = {"asked": duty_asked, "steps": len(duty.steps()) if duty_asked else 0, "ran": 0,
                   "stopped_by": None}
    if duty_asked and bench.controller.state != "READY":
        duty_report["stopped_by"] = "not started: the cell is %s, not READY" % bench.controller.state
    if duty_asked and bench.controller.state == "READY":
        for index, step in enumerate(duty.steps()):
            report = _run_step(bench, step, one_tick, tick_s)
            report["index"] = index
            steps_report.append(report)
            duty_report["ran"] = index + 1
            if bench.controller.state == "FAULT":
                duty_report["stopped_by"] = "FAULT at step %d (line %d)" % (index + 1, step.line_no)
                break
        bench.controller.request_current_ua(0)
        for _ in range(int(60 / tick_s)):
            one_tick()
    wall = time.perf_counter() - t_wall

    summary = summarize(bench, recorder, formation, bench.controller.telemetry(), wall, device_id, boots,
                        steps=steps_report, duty=duty_report, powered_seconds=powered[0],
                        formation_timeouts_s=limits, formation_timed_out=timed_out)
    judge_closed_loop(summary)
    return RunResult(recorder.rows, recorder.events, summary, recorder.cycles)


def _run_step(bench: Bench, step, one_tick, tick_s: float) -> dict:
    """Play one duty step as requests; returns how it ended."""
    start_s = bench.t_s
    q_in0, q_out0 = bench.cell.state.charge_in_C, bench.cell.state.charge_out_C
    limited_s = 0.0
    reason = "time"
    hold_request = 0
    while bench.t_s - start_s < step.duration_s - 1e-9:
        c = bench.controller
        if step.kind == "hold":
            request = hold_request
        else:
            request = int(round(step.current_A * 1e6))
        if c.state == "READY":
            c.request_current_ua(request)
        frame = one_tick()
        if frame["state"] == "FAULT":
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
