"""The player's loop over HIL: a firmware at the other end of a link (twin/hil/),
driven one lockstep tick at a time through the HilServer's own run().

What the link carries: the ADC scan (so injected faults, ambient and cell
faults reach the firmware as they would on a board), the firmware's frames and
events, operator commands (COMMAND / COMMAND_RESULT) and the cycler's duty
request (REQUEST, before the TICK it is for: Charge, Discharge, Rest, Hold play
as in-process). It carries no power switch, so `Cut power` is refused here
(StepRefused, before anything runs: check_hil_protocol).
"""
from __future__ import annotations

import math
import time

from twin.protocol.bench import BenchStep
from twin.scenario import StepRefused

# what the link lacks, per step kind
_REFUSED = {
    "power_cut": "the link has no power switch (a board's power is cut by its bench supply)",
}


def refusal(step) -> str | None:
    """Why a HIL loop cannot play `step`, or None."""
    if not isinstance(step, BenchStep):
        return None             # a cycler step: its requests go over the link (REQUEST)
    return _REFUSED.get(step.kind)


def check_hil_protocol(protocol) -> None:
    """StepRefused, naming the first line a HIL loop cannot play."""
    for step in protocol.distinct_steps():
        why = refusal(step)
        if why is not None:
            raise StepRefused("line %s: %r cannot run over HIL: %s" % (step.line_no, str(step), why))


class FirmwareGone(RuntimeError):
    """The firmware stopped answering on the link."""


class HilLoop:
    """A HilServer (lockstep) as the player's loop."""

    def __init__(self, server):
        if server.mode != "lockstep":
            raise ValueError("a HIL loop steps in lockstep (the player waits on each tick)")
        self.server = server
        self.bench = server.bench
        self.recorder = server.recorder
        self.formation = server.formation
        self.tick_s = server.tick_ms / 1000.0
        self._start = time.perf_counter()
        self.powered_s = 0.0    # powered time the player counts (no power cut over the link: all of it)

    @property
    def frame(self):
        return self.server.last_frame

    @staticmethod
    def check_protocol(protocol) -> None:
        """StepRefused for a step this loop cannot play (check_hil_protocol)."""
        check_hil_protocol(protocol)

    @property
    def boots(self) -> int:
        return self.server.boots

    def tick(self) -> dict:
        server = self.server
        server.run(duration_s=self.bench.t_s + self.tick_s, stop_after_formation=False)
        if server.firmware_dead or server.last_frame is None:
            raise FirmwareGone("the firmware stopped answering on the link at %.0f s" % self.bench.t_s)
        self.powered_s += self.tick_s
        return server.last_frame

    def command(self, name: str, args=None):
        if self.server.device_id is None:       # not connected yet: the first tick connects
            self.tick()
        return self.server.command(name, args)

    def request(self, current_ua: int) -> bool:
        if self.server.device_id is None:       # not connected yet: the first tick connects
            self.tick()
        return self.server.request(current_ua)

    def power_cut(self, off_s: float) -> None:
        raise StepRefused(_REFUSED["power_cut"])

    def result(self, end_session: bool = False):
        """The session's RunResult so far (no tick runs), its wall time since this loop
        began; end_session: the session ends there (END to the firmware)."""
        result = self.server.run(duration_s=self.bench.t_s, stop_after_formation=False, end_session=end_session)
        s = result.summary
        s["wall_seconds"] = wall = time.perf_counter() - self._start
        s["speed_factor"] = s["sim_seconds"] / wall if wall > 0 else math.inf
        return result
