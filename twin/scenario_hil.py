"""The player's loop over HIL: a firmware at the other end of a link (twin/hil/),
driven one lockstep tick at a time through the HilServer's own run().

What the link carries: the ADC scan (so injected faults, ambient and cell
faults reach the firmware as they would on a board), the firmware's frames and
events, operator commands (COMMAND / COMMAND_RESULT) and the cycler's duty
request (REQUEST, before the TICK it is for: Charge, Discharge, Rest, Hold play
as in-process).

`Cut power` needs the firmware's power switch: a firmware the twin started
(twin/hil/firmware.py FirmwareSupply, every --firmware kind) has one. The cut
stops its process (its RAM is gone), rests the twin's board unpowered as
in-process (Bench.power_cut), starts the process again and connects a new
session: the firmware boots from the record the board holds (lockstep keeps it
the firmware's latest at every tick, as a board's flash after its last save). A
firmware on a port (`--port`, serial:) has no switch the twin holds: there the
step is refused before anything runs (check_hil_protocol).
"""
from __future__ import annotations

import math
import time

from twin.hil.errors import FirmwareFailed
from twin.protocol.bench import BenchStep
from twin.scenario import StepRefused

# what a link without the firmware's power switch lacks, per step kind
_NO_SWITCH = {
    "power_cut": "the twin holds no power switch of a firmware on a port (its board's power is cut by its "
                 "bench supply); with --firmware the twin cuts it",
}


def refusal(step, power_switch: bool = False) -> str | None:
    """Why a HIL loop (with the firmware's power switch or not) cannot play `step`, or None."""
    if power_switch or not isinstance(step, BenchStep):
        return None             # a cycler step: its requests go over the link (REQUEST)
    return _NO_SWITCH.get(step.kind)


def check_hil_protocol(protocol, power_switch: bool = False) -> None:
    """StepRefused, naming the first line a HIL loop cannot play."""
    for step in protocol.distinct_steps():
        why = refusal(step, power_switch)
        if why is not None:
            raise StepRefused("line %s: %r cannot run over HIL: %s" % (step.line_no, str(step), why))


class FirmwareGone(RuntimeError):
    """The firmware stopped answering on the link."""


class HilLoop:
    """A HilServer (lockstep) as the player's loop; `supply`, the firmware's
    FirmwareSupply if the twin started it (it then plays `Cut power`)."""

    def __init__(self, server, supply=None):
        if server.mode != "lockstep":
            raise ValueError("a HIL loop steps in lockstep (the player waits on each tick)")
        self.server = server
        self.supply = supply
        self.bench = server.bench
        self.recorder = server.recorder
        self.formation = server.formation
        self.tick_s = server.tick_ms / 1000.0
        self._start = time.perf_counter()
        self.powered_s = 0.0    # the ticks the firmware ran: what formation's limits count
        self._frame = None      # the last tick's frame; None since a boot, as in-process

    @property
    def frame(self):
        return self._frame

    def check_protocol(self, protocol) -> None:
        """StepRefused for a step this loop cannot play (check_hil_protocol)."""
        check_hil_protocol(protocol, power_switch=self.supply is not None)

    @property
    def boots(self) -> int:
        return self.server.boots

    def tick(self) -> dict:
        server = self.server
        server.run(duration_s=self.bench.t_s + self.tick_s, stop_after_formation=False)
        if server.firmware_dead or server.last_frame is None:
            raise FirmwareGone("the firmware stopped answering on the link at %.0f s" % self.bench.t_s)
        self.powered_s += self.tick_s
        self._frame = server.last_frame
        return self._frame

    def command(self, name: str, args=None):
        if self.server.device_id is None:       # not connected yet: the first tick connects
            self.tick()
        return self.server.command(name, args)

    def request(self, current_ua: int) -> bool:
        if self.server.device_id is None:       # not connected yet: the first tick connects
            self.tick()
        return self.server.request(current_ua)

    def power_cut(self, off_s: float) -> None:
        """As InProcessLoop.power_cut: the firmware stops, the board rests unpowered
        for off_s, the firmware boots again from the board's record."""
        if self.supply is None:
            raise StepRefused(_NO_SWITCH["power_cut"])
        server, bench = self.server, self.bench
        self.supply.off()
        self._frame = None
        cut_s = bench.t_s
        bench.power_cut(off_s)
        self.recorder.power_cut(cut_s, bench.t_s)
        try:
            firmware = self.supply.on()
        except FirmwareFailed as failed:
            server.power_failed("the firmware did not start again after a power cut: %s" % failed)
            raise FirmwareGone(server.why) from None
        if not server.power_up(firmware.stream):
            raise FirmwareGone(server.why)

    def result(self, end_session: bool = False):
        """The session's RunResult so far (no tick runs), its wall time since this loop
        began; end_session: the session ends there (END to the firmware)."""
        result = self.server.run(duration_s=self.bench.t_s, stop_after_formation=False, end_session=end_session)
        s = result.summary
        s["wall_seconds"] = wall = time.perf_counter() - self._start
        s["speed_factor"] = s["sim_seconds"] / wall if wall > 0 else math.inf
        return result
