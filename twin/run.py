"""Closed loop: the firmware controller runs a shipped cell on the twin bench.

The firmware sees only the HAL (twin/board.py); this module is the run around
it: it boots the controller on the bench, lets simulated time pass one tick at
a time (InProcessLoop), plays the duty cycle as *requests* the firmware may limit
(as an inverter or cycler asks a BMS) with its bench steps and expectations
(twin/scenario.py), cuts power when told to (the controller boots again from its
record), and records what happened (twin/recorder.py), both as the firmware
reported it (frames) and as the twin knows it (truth).
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from bmsfw.config import Config
from bmsfw.controller import Controller
from twin.bench import Bench
from twin.firmware_config import config_for, formation_timeouts_s
from twin.protocol import Protocol
from twin.recorder import FORMATION_TIMEOUT_S, FormationWatch, Recorder, RunResult, summarize  # noqa: F401 (tests/mp)
from twin.run_files import judge_closed_loop, mark_incomplete
from twin.scenario import Player, check_bench

DUTY_D111 = Path(__file__).resolve().parent / "protocols" / "d111_duty.txt"
# The area of the cell the D111 duty was written for (seed EXAMPLES: ~1 cm²).
D111_AREA_CM2 = 1.0
_CURRENT = re.compile(r"\b(\d+(?:\.\d+)?) uA\b")


def duty_text_for(parameters) -> str:
    """The D111 duty (twin/protocols/d111_duty.txt) scaled to a cell: every
    current multiplied by the cell's area over D111's, so each step runs at the
    seed's current density (100 µA/cm² cycles, then the strip to 2.0 V and the
    20 µA/cm² finish), for the same durations. d111 gets the file itself."""
    text = DUTY_D111.read_text()
    scale = parameters.values["area_cm2"] / D111_AREA_CM2
    if scale != 1.0:
        text = _CURRENT.sub(lambda m: "%.6g mA" % (float(m.group(1)) * scale / 1000.0), text)
    return text


def duty_for(parameters) -> Protocol:
    """duty_text_for(parameters), parsed: `bms-twin run`'s default duty."""
    return Protocol.parse(duty_text_for(parameters), name="d111_duty scaled to %s" % parameters.name)


def controller_settings(bench: Bench, config: Config | None = None,
                        device_id: str | None = None) -> tuple[Config, str]:
    """The config and device id of the controller run_closed_loop puts on `bench`,
    unless given: config_for the cell on the bench's board, and `<cell>-<seed>`."""
    if config is None:
        config = config_for(bench.parameters, bench.board.description)
    return config, device_id or f"{bench.parameters.name}-{bench.seed:04d}"


class InProcessLoop:
    """The firmware in this process on `bench`, one tick at a time: the loop
    twin/scenario.py's Player drives. It boots the controller (as at power-up: it
    reads its record from the board), cuts power when told or at the times in
    `power_cuts_s` (the controller boots again), follows `ambient_profile(t_s)`,
    and feeds the recorder and the sinks every frame and event."""

    def __init__(self, bench: Bench, config: Config, device_id: str, sinks: Iterable = (),
                 record_every: int = 1, on_tick: Callable | None = None, power_cuts_s: Sequence[float] = (),
                 off_s: float = 60.0, ambient_profile: Callable | None = None):
        self.bench = bench
        self.config = config
        self.device_id = device_id
        self.tick_ms = config.tick_ms
        self.tick_s = self.tick_ms / 1000.0
        self.recorder = Recorder(bench, record_every)
        self.formation = FormationWatch(bench)
        self.sinks = list(sinks)
        self._pollers = [s for s in self.sinks if hasattr(s, "poll")]
        self._cuts = sorted(float(t) for t in power_cuts_s)
        self.off_s = off_s
        self.on_tick = on_tick
        self.ambient_profile = ambient_profile
        self.boots = 0
        self.powered_s = 0.0        # ticks the firmware ran: what formation's timeouts count
        self.frame: dict | None = None
        self.boot()

    def boot(self) -> None:
        self.boots += 1
        self.frame = None
        self.bench.controller = Controller(self.bench.board, self.config, device_id=self.device_id)

    def power_cut(self, off_s: float) -> None:
        bench = self.bench
        bench.controller = None
        cut_s = bench.t_s
        bench.power_cut(off_s)
        self.recorder.power_cut(cut_s, bench.t_s)
        self.boot()

    def command(self, name: str, args=None):
        return self.bench.controller.command(name, args)

    def request(self, current_ua: int) -> bool:
        return self.bench.controller.request_current_ua(current_ua)

    def tick(self) -> dict:
        bench = self.bench
        if self._cuts and bench.t_s >= self._cuts[0]:
            self._cuts.pop(0)
            self.power_cut(self.off_s)
        if self.ambient_profile is not None:
            bench.cell.set_ambient_c(self.ambient_profile(bench.t_s))
        for p in self._pollers:
            p.poll(bench.controller)
        bench.board.advance(self.tick_ms)
        self.powered_s += self.tick_s
        c = bench.controller
        c.tick()
        frame = c.telemetry()
        self.recorder.tick(frame)
        for sink in self.sinks:
            sink.frame(frame)
        events = c.pop_events()
        self.formation.frame(frame)
        for ev in events:
            self.recorder.event(ev)
            self.formation.event(ev)
            for sink in self.sinks:
                sink.event(ev)
        self.frame = frame
        if self.on_tick is not None:
            self.on_tick(bench)
        return frame


def player_limits(config: Config, ambient_c: float, formation_timeout_s: float | None = None) -> dict:
    """The Player's formation limits for a run (run_closed_loop; bms-twin hil --protocol
    the same): the cell's charge and verify limits in powered time (one limit on all
    powered time with `formation_timeout_s`), and the powered-time backstop."""
    limits = dict(formation_timeouts_s(config, ambient_c))
    if formation_timeout_s is not None:
        limits = {"charge": formation_timeout_s, "verify": formation_timeout_s, "all": True}
    limits["powered"] = FORMATION_TIMEOUT_S + 3 * limits["charge"]
    return limits


def run_closed_loop(parameters, duty: Protocol | None = None, ambient_c: float = 25.0, seed: int = 0,
                    power_cuts_s: Sequence[float] = (), off_s: float = 60.0,
                    on_tick: Callable | None = None, sinks: Iterable = (), record_every: int = 1,
                    config: Config | None = None, ambient_profile: Callable | None = None,
                    stop_after_formation: bool = False, bench: Bench | None = None,
                    formation_timeout_s: float | None = None,
                    device_id: str | None = None, board=None) -> RunResult:
    """Boot the firmware on a shipped cell, let it form the cell, then play the
    duty protocol (twin/scenario.py: cycler steps as requests, bench steps and
    expectations). The bench is `bench` (a new one, or one resumed from a saved run:
    twin/saved_bench.py), else a new one of the parameter set at `ambient_c` on
    `board` with `seed`; the firmware's config is `config`, or config_for the cell on
    the bench's board. `sinks` receive frames: objects with frame(dict), event(dict)
    and, optionally, poll(controller) for commands. `on_tick(bench)` runs after every
    tick (tests use it to inject faults). A failed expectation ends the run: the
    summary says "complete": false and why (the line and what was seen).

    Formation ends at READY or FAULT, or times out: the charge (FORMING before
    VERIFY) and the verify each have a limit from the cell (firmware_config.
    formation_timeouts_s) in powered time allowed to charge (neither a power cut
    nor the cold inhibit counts), and all powered time has a backstop (48 h + 3 x
    the charge's limit); `formation_timeout_s` replaces the first two with one
    limit on all powered time. A protocol with bench steps (a scenario) is
    judged by its expectations; any other run is incomplete when its formation did not finish or its
    duty did not run every step (run_files.judge_closed_loop)."""
    bench = bench or Bench.build(parameters, ambient_c=ambient_c, seed=seed, board=board)
    config, device_id = controller_settings(bench, config, device_id)
    if duty is not None:
        check_bench(duty, bench.board)
    loop = InProcessLoop(bench, config, device_id, sinks, record_every, on_tick, power_cuts_s, off_s,
                         ambient_profile)
    player = Player(loop, player_limits(config, bench.ambient_c, formation_timeout_s))
    t_wall = time.perf_counter()
    if duty is None or stop_after_formation:
        player.await_formation()
    else:
        player.play(duty)
        player.finish()
    if loop.frame is None:
        loop.tick()         # a run reports the firmware's frame: one tick at least since its boot
    wall = time.perf_counter() - t_wall
    summary = summarize(bench, loop.recorder, loop.formation, bench.controller.telemetry(), wall, device_id,
                        loop.boots, steps=player.steps, **player.report())
    if player.failed is not None:
        mark_incomplete(summary, player.why)
    elif player.bench_steps:
        summary["complete"] = True      # a scenario: its own steps say what it expects, and all of it came
    else:
        judge_closed_loop(summary)
    return RunResult(loop.recorder.rows, loop.recorder.events, summary, loop.recorder.cycles, bench)
