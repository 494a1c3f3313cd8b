"""The HIL server: the twin plays the cell for a firmware on the other end of a link.

Per tick it lets simulated time pass on its board, sends the ADC scan in a TICK
and applies the REPLY's setpoint and relay; frames and events go to the run's
recorder and to the sinks as in `bms-twin run` (twin/hil/__init__.py has the
whole story and the two pacings). One job, the run of a session, in one class:
its frame handlers, commands and pacing loops share the session's state.
"""
from __future__ import annotations

import json
import math
import struct
import time
from typing import Iterable

from bmsfw import link_codec as lc
from bmsfw.config import Config
from bmsfw.hal import ISHUNT, TCELL, VCELL
from twin.bench import Bench
from twin.firmware_config import config_for
from twin.hil.errors import HilError
from twin.hil.link_end import TwinLinkEnd
from twin.hil.reply import decode_reply
from twin.recorder import FORMATION_TIMEOUT_S, FormationWatch, Recorder, RunResult, summarize


class RemoteController:
    """What a sink's poll(controller) sees in HIL: command() goes over the link."""

    def __init__(self, server: "HilServer"):
        self._server = server

    @property
    def state(self):
        frame = self._server.last_frame
        return frame["state"] if frame else "BOOT"

    def command(self, name, args=None):
        return self._server.command(name, args)


class HilServer:
    """A HIL session on a new bench: a shipped cell of `parameters` at `ambient_c`
    on `board` (a name, path, Board or mapping of its values; `seed` seeds its ADC
    noise), the firmware at the other end of `stream`. `config` is only used for
    the default tick (the firmware carries its own); it defaults to config_for the
    cell on this board."""

    def __init__(self, parameters, stream, mode: str = "lockstep", ambient_c: float = 25.0, seed: int = 0,
                 board=None, tick_ms: int | None = None, config: Config | None = None,
                 sinks: Iterable = (), record_every: int = 1, reply_timeout_s: float = 5.0,
                 retry_s: float = 0.5, link_timeout_ms: int | None = None, boot_timeout_s: float = 60.0):
        if mode not in ("lockstep", "realtime"):
            raise HilError("mode", mode, "must be lockstep or realtime")
        self.bench = Bench.build(parameters, ambient_c=ambient_c, seed=seed, board=board)
        self.board = self.bench.board
        config = config if config is not None else config_for(parameters, self.board.description)
        self.tick_ms = tick_ms if tick_ms is not None else config.tick_ms
        if not isinstance(self.tick_ms, int) or self.tick_ms <= 0:
            raise HilError("tick_ms", self.tick_ms, "must be a positive int")
        for name, value in (("reply_timeout_s", reply_timeout_s), ("retry_s", retry_s),
                            ("boot_timeout_s", boot_timeout_s)):
            if not value > 0:
                raise HilError(name, value, "must be > 0")
        self.parameters = parameters
        self.mode = mode
        self.link = TwinLinkEnd(stream)
        self.sinks = list(sinks)
        self.recorder = Recorder(self.bench, record_every)
        self.reply_timeout_s = reply_timeout_s
        self.retry_s = retry_s
        self.link_timeout_s = (link_timeout_ms if link_timeout_ms is not None else 3 * self.tick_ms) / 1000.0
        self.boot_timeout_s = boot_timeout_s
        self.device_id: str | None = None
        self.boots = 1          # the firmware's first HELLO; each HELLO after it wanting the record adds one
        self.last_frame: dict | None = None
        self.fw_counters: dict = {}
        self.heartbeat = None
        self.link_lost = False
        self.firmware_dead = False
        self.replies = 0
        self.ticks_sent = 0
        self._await_seq: int | None = None
        self._last_reply_s = time.perf_counter()
        self._last_event_seq = 0
        self._pending_events: list = []
        self._cmd_id = 0
        self._cmd_results: dict = {}
        self._remote = RemoteController(self)
        self._pollers = [s for s in self.sinks if hasattr(s, "poll")]
        self.formation = FormationWatch(self.bench)

    # ------------------------------------------------------------ frames in
    def _scan(self):
        b = self.board
        return (b.adc_read(VCELL), b.adc_read(ISHUNT), b.adc_read(TCELL))

    def _boot_tick(self, hello_seq: int, want_record: bool) -> int:
        b = self.board
        record = b.load_record() if want_record else None
        return self.link.send_tick(b.ticks_ms(), self._scan(),
                                   boot=(hello_seq, b.adc_bits(), b.adc_vref_mv(), record))

    def _pump(self, timeout_s: float) -> bool:
        """Handle what arrives within timeout_s; True if the awaited REPLY came."""
        got = False
        for ftype, seq, payload in self.link.frames(timeout_s):
            if ftype == lc.T_HELLO:
                got = self._on_hello(seq, payload) or got
            elif ftype == lc.T_REPLY:
                got = self._on_reply(payload) or got
            elif ftype == lc.T_EVENT:
                self._on_event(payload)
            elif ftype == lc.T_SAVE_RECORD:
                self.board.save_record(payload)
            elif ftype == lc.T_COMMAND_RESULT:
                try:
                    res = json.loads(payload)
                    self._cmd_results[res["id"]] = (bool(res["ok"]), str(res["code"]))
                except (ValueError, KeyError, TypeError):
                    self.link.counters["bad_payload"] += 1
            else:   # TICK/COMMAND: our own direction, echoed back; not the firmware's
                self.link.counters["bad_payload"] += 1
        return got

    def _on_hello(self, seq: int, payload: bytes) -> bool:
        if len(payload) < lc.HELLO_SIZE:
            self.link.counters["bad_payload"] += 1
            return False
        flags, n = struct.unpack_from(lc.HELLO_FMT, payload, 0)
        device = payload[lc.HELLO_SIZE:lc.HELLO_SIZE + n].decode("utf-8", "replace") or "bms"
        want = bool(flags & lc.HELLO_WANT_RECORD)
        if want and self.device_id is not None:
            self.boots += 1                 # the firmware restarted: it reads its record again
        self.device_id = device
        self._await_seq = self._boot_tick(seq, want)
        return False

    def _on_reply(self, payload: bytes) -> bool:
        dec = decode_reply(payload, self.device_id or "bms")
        if dec is None:
            self.link.counters["bad_payload"] += 1
            return False
        ack, flags, setpoint_ua, relay, heartbeat, frame, counters = dec
        self.replies += 1
        self._last_reply_s = time.perf_counter()
        self.fw_counters = counters
        self.heartbeat = heartbeat
        if not self.firmware_dead:     # a zombie's late reply never turns the source back on
            self.board.set_current_ua(setpoint_ua)     # the board holds it to its own source range
            self.board.set_relay(relay)
        if flags & lc.REPLY_LINK_LOST:
            self._twin_event("LINK_LOST", "the firmware declared the link lost (no TICK in its timeout)")
            self.link_lost = True
        self.last_frame = frame
        if flags & lc.REPLY_TICKED:
            self._record(frame)
        self._flush_events()
        if self._await_seq is not None and ack == self._await_seq:
            self._await_seq = None
            return True
        return False

    def _on_event(self, payload: bytes) -> None:
        try:
            ev = json.loads(payload)
        except ValueError:
            ev = None
        if not isinstance(ev, dict) or not isinstance(ev.get("seq"), int):
            self.link.counters["bad_payload"] += 1
            return
        self._pending_events.append(ev)

    def _flush_events(self) -> None:
        """Events go out after the frame of their tick, as in run_closed_loop."""
        events, self._pending_events = self._pending_events, []
        for ev in events:
            if ev["seq"] > self._last_event_seq + 1 and self._last_event_seq:
                self.link.counters["events_lost"] += ev["seq"] - self._last_event_seq - 1
            self._last_event_seq = max(self._last_event_seq, ev["seq"])
            self.recorder.event(ev)
            for sink in self.sinks:
                sink.event(ev)
            self.formation.event(ev)

    def _record(self, frame: dict) -> None:
        self.recorder.tick(frame)
        for sink in self.sinks:
            sink.frame(frame)
        self.formation.frame(frame)

    def _twin_event(self, name: str, detail: str) -> None:
        self.recorder.event({"kind": "event", "device": self.device_id, "seq": None,
                             "t_ms": self.board.ticks_ms(), "event": name, "detail": detail,
                             "source": "twin"})

    def _safe(self, why: str) -> None:
        """The twin's own safety: the board's source to 0 and its relay open."""
        self.board.set_current_ua(0)
        self.board.set_relay(False)
        if not self.link_lost:
            self.link_lost = True
            self._twin_event("LINK_LOST", why)

    # ------------------------------------------------------------ commands
    def command(self, name, args=None, timeout_s: float | None = None):
        """Send a command; (ok, code) from the firmware, or (False, "LINK_TIMEOUT")."""
        self._cmd_id += 1
        cmd_id = self._cmd_id
        self.link.send_command(cmd_id, name, args if args is not None else {})
        deadline = time.perf_counter() + (timeout_s or self.reply_timeout_s)
        while cmd_id not in self._cmd_results and time.perf_counter() < deadline:
            self._pump(0.01)
        return self._cmd_results.pop(cmd_id, (False, "LINK_TIMEOUT"))

    # ------------------------------------------------------------ the run
    def connect(self) -> bool:
        """Wait for the firmware's HELLO and its answer to the boot TICK."""
        deadline = time.perf_counter() + self.boot_timeout_s
        while time.perf_counter() < deadline:
            if self._pump(0.05):
                return True
        return False

    def _await_reply(self, seq: int) -> bool:
        """Lockstep: wait for the REPLY to TICK `seq`, retransmitting it."""
        self._await_seq = seq
        start = time.perf_counter()
        next_retry = start + self.retry_s
        while True:
            now = time.perf_counter()
            if self._pump(min(0.05, max(0.0, next_retry - now))):
                return True
            now = time.perf_counter()
            if now - start >= self.reply_timeout_s or self.link.stream.eof:
                return False
            if now >= next_retry and self._await_seq is not None:
                self.link.counters["retries"] += 1
                self.link.send_tick(self.board.ticks_ms(), self._scan(), retry_seq=self._await_seq)
                next_retry = now + self.retry_s

    def run(self, duration_s: float | None = None, stop_after_formation: bool = True,
            formation_timeout_s: float = FORMATION_TIMEOUT_S) -> RunResult:
        t_wall = time.perf_counter()
        # Called again, run() continues (a test, a bench script): it connects once.
        connected = (self.device_id is not None and self._await_seq is None) or self.connect()
        t_loop = time.perf_counter()
        if not connected:
            self.firmware_dead = True
            self._safe(f"no HELLO/boot answer from the firmware within {self.boot_timeout_s} s")
        tick_s = self.tick_ms / 1000.0
        end_s = duration_s if duration_s is not None else formation_timeout_s
        next_wall = time.perf_counter()
        while connected and not self.firmware_dead and self.bench.t_s < end_s - 1e-9:
            if self._pollers and self.mode == "lockstep":
                for p in self._pollers:
                    p.poll(self._remote)
            self.board.advance(self.tick_ms)
            seq = self.link.send_tick(self.board.ticks_ms(), self._scan())
            self.ticks_sent += 1
            if self.mode == "lockstep":
                if not self._await_reply(seq):
                    self.firmware_dead = True
                    self._safe(f"no REPLY to TICK {seq} within {self.reply_timeout_s} s: firmware dead")
                    break
            else:
                next_wall += tick_s
                while True:
                    now = time.perf_counter()
                    if now >= next_wall:
                        break
                    self._pump(next_wall - now)
                if time.perf_counter() - self._last_reply_s > self.link_timeout_s:
                    self._safe(f"no REPLY within {self.link_timeout_s * 1000:.0f} ms")
                elif time.perf_counter() - next_wall > 10 * tick_s:
                    next_wall = time.perf_counter()     # the twin itself fell behind: resynchronise
            frame = self.last_frame
            if (duration_s is None and stop_after_formation and frame is not None
                    and frame["state"] in ("READY", "FAULT") and self.replies > 1):
                break
        if self.mode == "realtime" and connected:
            self._pump(0.01)
        t_end = time.perf_counter()
        return self._result(t_end - t_wall, t_end - t_loop)

    def _result(self, wall: float, loop_wall: float) -> RunResult:
        rec = self.recorder
        summary = summarize(
            self.bench, rec, self.formation, self.last_frame or {}, wall, self.device_id, self.boots, steps=[],
            hil={"mode": self.mode, "tick_ms": self.tick_ms, "ticks_sent": self.ticks_sent,
                 "replies": self.replies, "loop_wall_seconds": loop_wall,
                 "ticks_per_s": self.ticks_sent / loop_wall if loop_wall > 0 else math.inf,
                 "firmware_dead": self.firmware_dead,
                 "board_setpoint_ua": self.board.setpoint_ua, "board_relay_closed": self.board.relay_closed},
            link_lost=self.link_lost,
            link={"twin": dict(self.link.counters), "firmware": dict(self.fw_counters)})
        return RunResult(rec.rows, rec.events, summary, rec.cycles)
