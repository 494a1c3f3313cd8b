"""A bench for a test: a shipped cell on a twin board and a firmware wherever it runs,
driven through a small API (docs/testing.md).

    with open_bench("inprocess") as bench:      # or cpython, micropython, unix-32, qemu, serial:/dev/ttyACM0
        bench.wait_until(formed=True, within_s=48 * 3600)
        bench.inject("thermistor open")
        event = bench.expect_event("SENSOR", within_s=60)
        assert bench.state == "FAULT"
        bench.run("Clear thermistor\\nWait for 1 minute\\nCommand reset_fault")

Every method is a line of the cycler language (twin/protocol/bench.py) played by
twin/scenario.py's Player, so a test and a scenario file mean the same thing; a
failed expectation raises ExpectationFailed (an AssertionError: pytest reports it
as a test failure) with its line and what was seen.
"""
from __future__ import annotations

import collections
import contextlib
from pathlib import Path

from twin.protocol import Protocol
from twin.scenario import Player, check_bench

BACKENDS = ("inprocess", "cpython", "micropython", "unix-32", "qemu", "serial:<port>")
FRAMES_KEPT = 100_000       # the frames a session keeps (the newest), ~1 day of 1 s ticks


class ExpectationFailed(AssertionError):
    """A bench expectation that did not hold: the step, its line, what was seen."""


class _Tap:
    """The loop, with every frame it returns kept (a copy: the firmware reuses its dict)."""

    def __init__(self, loop, frames):
        self._loop = loop
        self._frames = frames

    def __getattr__(self, name):
        return getattr(self._loop, name)

    def tick(self):
        frame = self._loop.tick()
        self._frames.append(dict(frame, faults=list(frame["faults"])))
        return frame


class BenchSession:
    """The API a test talks to: `backend` names where the firmware runs."""

    def __init__(self, loop, backend: str, summarize, formation_limits: dict | None = None):
        """formation_limits: the Player's (open_bench gives `bms-twin run`'s: run.player_limits)."""
        self.backend = backend
        self.frames: collections.deque = collections.deque(maxlen=FRAMES_KEPT)
        self._loop = _Tap(loop, self.frames)
        self._summarize = summarize
        self.player = Player(self._loop, formation_limits)

    # ------------------------------------------------------------ playing
    def run(self, protocol) -> "BenchSession":
        """Play protocol text, a file (a Path), or a Protocol; ExpectationFailed when
        an expectation fails, ProtocolError for a line that is no step (nothing runs)."""
        if isinstance(protocol, Path):
            protocol = Protocol.from_file(protocol)
        elif isinstance(protocol, str):
            protocol = Protocol.parse(protocol)
        check_bench(protocol, self.bench.board)
        check = getattr(self._loop, "check_protocol", None)     # what a loop over a link cannot carry
        if check is not None:
            check(protocol)
        if not self.player.play(protocol):
            raise ExpectationFailed(self.player.why)
        return self

    def inject(self, fault: str) -> None:
        """A fault as the language says it: 'crack', 'internal short of 50 ohm',
        'thermistor open', 'ADC VCELL stuck at 1234', ..."""
        self.run("Inject " + fault)

    def clear(self, fault: str = "all faults") -> None:
        self.run("Clear " + fault)

    def set_ambient(self, celsius: float) -> None:
        self.run("Set ambient to %r C" % float(celsius))

    def wait(self, seconds: float) -> None:
        self.run("Wait for %r s" % float(seconds))

    def wait_until(self, state: str | None = None, formed: bool = False, within_s: float = 3600.0) -> None:
        if formed == (state is not None):
            raise ValueError("wait_until: give a state or formed=True")
        what = "formed" if formed else "state " + state
        self.run("Wait until %s within %r s" % (what, float(within_s)))

    def expect_event(self, name: str, within_s: float = 60.0) -> dict:
        """The event `name` (an event kind, or a fault's FAULT event), from those not
        matched yet or within within_s; returns it."""
        self.run("Expect event %s within %r s" % (name, float(within_s)))
        return self.player.last_match

    def expect_state(self, name: str) -> None:
        self.run("Expect state " + name)

    def expect_no_fault(self) -> None:
        self.run("Expect no fault")

    def command(self, name: str, **args):
        """An operator command (bmsfw.commands); (ok, code) as the firmware answered."""
        return self._loop.command(name, args or None)

    # ------------------------------------------------------------ reading
    @property
    def bench(self):
        """The twin: .cell (the model's truth), .board (the HAL's side)."""
        return self._loop.bench

    @property
    def frame(self) -> dict | None:
        frames = self.frames
        return frames[-1] if frames else None

    @property
    def state(self) -> str:
        return self.player.state

    @property
    def substate(self) -> str:
        return self.frame["substate"] if self.frame else ""

    @property
    def faults(self) -> list:
        return list(self.frame["faults"]) if self.frame else []

    @property
    def events(self) -> list:
        return self._loop.recorder.events

    @property
    def t_s(self) -> float:
        return self.bench.t_s

    def summary(self) -> dict:
        """summary.json's figures of the session so far."""
        summary = self._summarize()
        summary.update(self.player.report(), steps=self.player.steps)
        summary["complete"] = self.player.failed is None
        if self.player.failed is not None:
            summary["why"] = self.player.why
        return summary


@contextlib.contextmanager
def open_bench(backend: str = "inprocess", cell: str = "d111", seed: int = 0, ambient_c: float = 25.0,
               image: str | None = None, reply_timeout_s: float = 20.0, boot_timeout_s: float = 120.0):
    """A BenchSession with the firmware on `backend` (BACKENDS), ended on the way out;
    its formation limits are `bms-twin run`'s for the cell (run.player_limits)."""
    from twin.bench import Bench
    from twin.parameters import load_parameter_set
    from twin.run import controller_settings, player_limits

    params = load_parameter_set(cell)
    bench = Bench.build(params, ambient_c=ambient_c, seed=seed)
    config, device_id = controller_settings(bench)
    limits = player_limits(config, ambient_c)
    if backend == "inprocess":
        import time

        from twin.recorder import summarize
        from twin.run import InProcessLoop

        loop = InProcessLoop(bench, config, device_id)
        start = time.perf_counter()
        yield BenchSession(loop, backend, lambda: summarize(
            bench, loop.recorder, loop.formation, bench.controller.telemetry(), time.perf_counter() - start,
            device_id, loop.boots), limits)
        return
    yield from _hil_bench(backend, params, seed, ambient_c, image, reply_timeout_s, boot_timeout_s,
                          config, device_id, limits)


def _hil_bench(backend, params, seed, ambient_c, image, reply_timeout_s, boot_timeout_s, config, device_id,
               limits):
    from twin.hil import HilServer, firmware, open_port
    from twin.scenario_hil import HilLoop

    def session(stream, supply=None):
        server = HilServer(params, stream, mode="lockstep", ambient_c=ambient_c, seed=seed, config=config,
                           reply_timeout_s=reply_timeout_s, boot_timeout_s=boot_timeout_s)
        loop = HilLoop(server, supply)
        return BenchSession(loop, backend, lambda: loop.result().summary, limits)

    if backend.startswith("serial:"):
        stream, _ = open_port(backend[len("serial:"):])
        try:
            yield session(stream)
        finally:
            stream.close()
        return
    firmware.check_kind(backend, image)
    with firmware.FirmwareSupply(backend, config, device_id, image=firmware.image_path(backend, image),
                                 first_frame_timeout_s=boot_timeout_s) as supply:
        yield session(supply.on().stream, supply)
