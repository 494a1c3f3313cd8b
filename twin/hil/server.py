"""The HIL server: the twin plays the cell for a firmware on the other end of a link.

Per tick it lets simulated time pass on its board, sends the ADC scan in a TICK
and applies the REPLY's setpoint and relay; frames and events go to the run's
recorder and to the sinks as in `bms-twin run` (twin/hil/__init__.py has the
whole story and the two pacings). One job, the run of a session, in one class:
its frame handlers, commands, pacing loops and the new session after a power cut
share the session's state, which is why it is ~480 lines (the transport, the link
end and the REPLY decoder are their own modules).
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
from twin.hil.link_end import FRAME_GAP_S, RetryTimer, TwinLinkEnd
from twin.hil.reply import decode_reply
from twin.recorder import FORMATION_TIMEOUT_S, FormationWatch, Recorder, RunResult, summarize
from twin.run_files import mark_incomplete


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
                 retry_s: float = 0.5, link_timeout_ms: int | None = None, boot_timeout_s: float = 60.0,
                 retry_min_s: float = 0.005, frame_gap_s: float = FRAME_GAP_S, end_timeout_s: float = 1.0):
        if mode not in ("lockstep", "realtime"):
            raise HilError("mode", mode, "must be lockstep or realtime")
        self.bench = Bench.build(parameters, ambient_c=ambient_c, seed=seed, board=board)
        self.board = self.bench.board
        config = config if config is not None else config_for(parameters, self.board.description)
        self.config = config    # the twin's copy (the firmware carries its own): tick, formation limits
        self.tick_ms = tick_ms if tick_ms is not None else config.tick_ms
        if not isinstance(self.tick_ms, int) or self.tick_ms <= 0:
            raise HilError("tick_ms", self.tick_ms, "must be a positive int")
        for name, value in (("reply_timeout_s", reply_timeout_s), ("retry_s", retry_s),
                            ("boot_timeout_s", boot_timeout_s), ("retry_min_s", retry_min_s),
                            ("frame_gap_s", frame_gap_s), ("end_timeout_s", end_timeout_s)):
            if not value > 0:
                raise HilError(name, value, "must be > 0")
        if retry_min_s > retry_s:
            raise HilError("retry_min_s", retry_min_s, f"must be <= retry_s ({retry_s})")
        self.parameters = parameters
        self.mode = mode
        self.link = TwinLinkEnd(stream, frame_gap_s)
        self.timer = RetryTimer(retry_min_s, retry_s)
        self.end_timeout_s = end_timeout_s
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
        self.why: str | None = None     # why the link was lost or the run cut short (the first reason)
        self.firmware_dead = False
        self.record_seq = 0             # the number of the record the board holds (SAVE_RECORD's record_seq)
        self.fw_record_seq = 0          # the number of the firmware's latest record (its last REPLY)
        self.record_stale_ticks = 0     # ticks that began with the board's record older than the firmware's
        self.end_acked: bool | None = None   # the firmware acknowledged END (None: no END sent)
        self._nak = False
        self._hello_seq, self._hello_want = 0, False
        self._await_why: str | None = None
        self._answer_skipped = 0        # lockstep: the link's skipped count when the awaited TICK went
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
        self._links_before: dict = {}   # the counters of both ends' links before a power cut
        self._fw_before: dict = {}

    # ------------------------------------------------------------ frames in
    def _scan(self):
        b = self.board
        return (b.adc_read(VCELL), b.adc_read(ISHUNT), b.adc_read(TCELL))

    def _boot_tick(self, hello_seq: int, want_record: bool, retry: bool = False) -> int:
        b = self.board
        record = b.load_record() if want_record else None
        self._hello_seq, self._hello_want = hello_seq, want_record
        return self.link.send_tick(b.ticks_ms(), self._scan(), retry_seq=self._await_seq if retry else None,
                                   boot=(hello_seq, b.adc_bits(), b.adc_vref_mv(), self.record_seq, record))

    def _pump(self, timeout_s: float) -> bool:
        """Handle what arrives within timeout_s; True if the awaited REPLY came."""
        got = False
        for ftype, seq, payload in self.link.frames(timeout_s):
            if ftype == lc.T_HELLO:
                got = self._on_hello(seq, payload) or got
            elif ftype == lc.T_REPLY:
                got = self._on_reply(payload, seq) or got
            elif ftype == lc.T_EVENT:
                self._on_event(payload)
            elif ftype == lc.T_SAVE_RECORD:
                self._on_save_record(payload)
            elif ftype == lc.T_NAK:
                self.link.counters["naks"] += 1
                self._nak = True
            elif ftype == lc.T_END:
                self.end_acked = True
            elif ftype == lc.T_COMMAND_RESULT:
                try:
                    res = json.loads(payload)
                    self._cmd_results[res["id"]] = (bool(res["ok"]), str(res["code"]))
                except (ValueError, KeyError, TypeError):
                    self.link.counters["bad_payload"] += 1
        return got

    def _on_save_record(self, payload: bytes) -> None:
        # Numbered: a save sent again (a retried answer, the latest on request)
        # is stored only if newer than what the board holds.
        if len(payload) < lc.RECORD_SEQ_SIZE:
            self.link.counters["bad_payload"] += 1
            return
        seq = payload[0] | payload[1] << 8
        if lc.seq_delta(seq, self.record_seq) > 0 or self.board.load_record() is None:
            self.board.save_record(payload[lc.RECORD_SEQ_SIZE:])
            self.record_seq = seq

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

    def _on_reply(self, payload: bytes, seq: int = 0) -> bool:
        dec = decode_reply(payload, self.device_id or "bms")
        if dec is None:
            self.link.counters["bad_payload"] += 1
            return False
        ack, flags, setpoint_ua, relay, heartbeat, frame, counters = dec
        if (self.mode == "lockstep" and self._await_seq is not None and ack == self._await_seq
                and self.link.counters["skipped"] != self._answer_skipped):
            # A frame of this answer (an event) was lost on the way: the answer is
            # applied whole or not at all. Keep what came, ask again now: the
            # firmware sends the same bytes, of which the twin takes the frames it
            # lacks (link.fill: those seqs only) and this REPLY again (its seq only).
            self.link.rx_seq = (seq - 1) & 0xFFFF
            self.link.fill = set(self.link.missing)
            self._answer_skipped = self.link.counters["skipped"]
            self.link.counters["answers_incomplete"] += 1
            self._nak = True
            return False
        self.replies += 1
        self._last_reply_s = time.perf_counter()
        self.fw_counters = counters
        self.fw_record_seq = lc.unpack_reply(payload)["record_seq"]
        self.heartbeat = heartbeat
        if not self.firmware_dead:     # a zombie's late reply never turns the source back on
            self.board.set_current_ua(setpoint_ua)     # the board holds it to its own source range
            self.board.set_relay(relay)
        if flags & lc.REPLY_LINK_LOST:
            self._twin_event("LINK_LOST", "the firmware declared the link lost (no TICK in its timeout)")
            self.link_lost = True
            if self.why is None:
                self.why = "the firmware declared it (no TICK within its link timeout)"
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
        events.sort(key=lambda ev: ev["seq"])      # a lost one sent again came after its successors
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
        if self.why is None:
            self.why = why

    # ------------------------------------------------------------ commands
    def command(self, name, args=None, timeout_s: float | None = None):
        """Send a command; (ok, code) from the firmware, or (False, "LINK_TIMEOUT")."""
        self._cmd_id += 1
        cmd_id = self._cmd_id
        if not self.link.send_command(cmd_id, name, args if args is not None else {}):
            return False, "TOO_LONG"
        deadline = time.perf_counter() + (timeout_s or self.reply_timeout_s)
        while cmd_id not in self._cmd_results and time.perf_counter() < deadline:
            self._pump(0.01)
        return self._cmd_results.pop(cmd_id, (False, "LINK_TIMEOUT"))

    def request(self, current_ua: int) -> bool:
        """The cycler's duty request (+ charge, - discharge, 0 rest) in a REQUEST
        frame: the firmware takes it before the next TICK, as Controller.request_current_ua
        does in-process (READY only, clamped to CCL/DCL). Not answered: True if the
        firmware was READY at its last REPLY (so it takes it, on an undamaged link).
        Not an int of the wire's i32: an HilError, nothing sent; beyond the source's
        limit: the firmware drops it and counts it bad_payload (its config judges)."""
        if isinstance(current_ua, bool) or not isinstance(current_ua, int) or not -2**31 <= current_ua < 2**31:
            raise HilError("current_ua", current_ua, "must be an int of 32 bits")
        self.link.send_request(current_ua)
        return self.last_frame is not None and self.last_frame["state"] == "READY"

    # ------------------------------------------------------------ the run
    def connect(self) -> bool:
        """Wait for the firmware's HELLO and its answer to the boot TICK, sending
        that TICK again (flag RETRY, same seq) on evidence or timer, as a tick's."""
        deadline = time.perf_counter() + self.boot_timeout_s
        next_retry = None
        damaged = self.link.damaged
        while time.perf_counter() < deadline and not self.link.stream.eof:
            boot_seq = self._await_seq
            if self._pump(0.05 if next_retry is None else min(0.05, max(0.0, next_retry - time.perf_counter()))):
                return True
            now = time.perf_counter()
            if self._await_seq is None:
                continue
            if self._await_seq != boot_seq or next_retry is None:      # a new HELLO was answered
                next_retry = now + self.timer.rto()
            elif self._nak or self.link.damaged != damaged or now >= next_retry:
                self._nak = False
                damaged = self.link.damaged
                self.link.counters["retries"] += 1
                self._boot_tick(self._hello_seq, self._hello_want, retry=True)
                next_retry = now + self.timer.rto()
        return False

    def power_up(self, stream) -> bool:
        """The firmware powered up again at the end of `stream`, a new process after
        a power cut (twin/scenario_hil.py): a new link end (both ends' counters so
        far carried on into the summary), and the connect of a new session, whose HELLO
        wants the record the board holds (a boot, as in-process). False, with the
        firmware dead and the board safe, if it does not connect."""
        self._links_before = _sum_counters(self._links_before, self.link.counters)
        self._fw_before = _sum_counters(self._fw_before, self.fw_counters)
        self.fw_counters = {}
        stream.write_timeout_s = self.link.stream.write_timeout_s
        self.link = TwinLinkEnd(stream, self.link.frame_gap_s)
        self._await_seq = None
        self._pending_events = []
        self.fw_record_seq = self.record_seq    # the firmware starts from what the board holds
        if self.device_id is None:
            self.boots += 1     # cut before it spoke: it was powered all the same (a boot in-process)
        if self.connect():
            return True
        self.firmware_dead = True
        self._safe(self._lost_why(f"the firmware did not boot again within {self.boot_timeout_s:g} s "
                                  "after a power cut"))
        return False

    def power_failed(self, why: str) -> None:
        """The firmware did not start again after a power cut: dead, the board safe."""
        self.firmware_dead = True
        self._safe(why)

    def _lost_why(self, what: str) -> str:
        end = self.link.stream.end_reason if self.link.stream.eof else None
        return end or what

    def _await(self, done, resend, timeout_s: float) -> bool:
        """Pump until done(); resend() at once on evidence of a loss (a NAK, a
        damaged frame), else when the retry timer runs out. False after timeout_s
        or when the stream ended."""
        start = time.perf_counter()
        rto = self.timer.rto()
        next_retry = start + rto
        damaged = self.link.damaged
        self._nak = False
        while True:
            now = time.perf_counter()
            # with a frame half in, wait no longer than the frame gap: a byte lost
            # from it is evidence as soon as the line goes quiet
            wait = self.link.frame_gap_s if self.link.parser.pending() else 0.05
            self._pump(min(wait, max(0.0, next_retry - now)))
            if done():
                return True
            now = time.perf_counter()
            if now - start >= timeout_s or self.link.stream.eof:
                return False
            evidence = self._nak or self.link.damaged != damaged
            if evidence or now >= next_retry:
                if not evidence:
                    rto = min(2 * rto, self.timer.retry_max_s)
                self._nak = False
                damaged = self.link.damaged
                resend()
                next_retry = now + rto

    def _await_reply(self, seq: int) -> bool:
        """Lockstep: wait for the REPLY to TICK `seq`, sending it again on evidence
        or timer; then, until the board holds the firmware's latest record, ask for
        it (TICK RETRY + WANT_RECORD): simulated time never moves on a stale record."""
        self._await_seq = seq
        self._answer_skipped = self.link.counters["skipped"]
        self.link.missing, self.link.fill = set(), set()
        sent = time.perf_counter()
        tries = [0]

        def resend(want_record=False):
            tries[0] += 1
            self.link.counters["record_asks" if want_record else "retries"] += 1
            self.link.send_tick(self.board.ticks_ms(), self._scan(), retry_seq=seq, want_record=want_record)

        if not self._await(lambda: self._await_seq is None, resend, self.reply_timeout_s):
            return False
        if tries[0] == 0:
            self.timer.measured(time.perf_counter() - sent)
        if self.record_seq == self.fw_record_seq:
            return True
        if self._await(lambda: self.record_seq == self.fw_record_seq, lambda: resend(True), self.reply_timeout_s):
            return True
        self._await_why = (f"the firmware did not send its record {self.fw_record_seq} within "
                           f"{self.reply_timeout_s:g} s (the board holds {self.record_seq})")
        return False

    def _end_session(self) -> None:
        """END to the firmware, sent again until it answers END or end_timeout_s pass."""
        self.end_acked = False
        seq = self.link.send_end()
        self._await(lambda: self.end_acked, lambda: self.link.send_end(seq), self.end_timeout_s)

    def run(self, duration_s: float | None = None, stop_after_formation: bool = True,
            formation_timeout_s: float = FORMATION_TIMEOUT_S, end_session: bool = False) -> RunResult:
        """Tick until the formation ended (READY or FAULT), `duration_s` of simulated
        time passed, or the link was lost. end_session: then send END, so the
        firmware ends cleanly (`bms-twin hil` does); without it the session stays
        open and run() may be called again to continue."""
        t_wall = time.perf_counter()
        # Called again, run() continues (a test, a bench script): it connects once.
        connected = (self.device_id is not None and self._await_seq is None) or self.connect()
        t_loop = time.perf_counter()
        if not connected:
            self.firmware_dead = True
            self._safe(self._lost_why(f"no HELLO from a firmware within {self.boot_timeout_s:g} s "
                                      "(no firmware on the port?)") if self.device_id is None else
                       self._lost_why(f"the firmware sent HELLO but did not answer its boot TICK within "
                                      f"{self.boot_timeout_s:g} s"))
        tick_s = self.tick_ms / 1000.0
        end_s = duration_s if duration_s is not None else formation_timeout_s
        next_wall = time.perf_counter()
        while connected and not self.firmware_dead and self.bench.t_s < end_s - 1e-9:
            if self._pollers and self.mode == "lockstep":
                for p in self._pollers:
                    p.poll(self._remote)
            stale = self.record_seq != self.fw_record_seq
            self.record_stale_ticks += stale
            self.board.advance(self.tick_ms)
            seq = self.link.send_tick(self.board.ticks_ms(), self._scan(), want_record=stale)
            self.ticks_sent += 1
            if self.mode == "lockstep":
                self._await_why = None
                if not self._await_reply(seq):
                    self.firmware_dead = True
                    self._safe(self._lost_why(self._await_why or f"no REPLY to TICK {seq} within "
                                              f"{self.reply_timeout_s:g} s (the firmware stopped answering)"))
                    break
            else:
                next_wall += tick_s
                while True:
                    now = time.perf_counter()
                    if now >= next_wall:
                        break
                    self._pump(next_wall - now)
                if self.link.stream.eof:
                    self.firmware_dead = True
                    self._safe(self._lost_why("the stream ended"))
                elif time.perf_counter() - self._last_reply_s > self.link_timeout_s:
                    self._safe(f"no REPLY within {self.link_timeout_s * 1000:.0f} ms")
                elif time.perf_counter() - next_wall > 10 * tick_s:
                    next_wall = time.perf_counter()     # the twin itself fell behind: resynchronise
            frame = self.last_frame
            if (duration_s is None and stop_after_formation and frame is not None
                    and frame["state"] in ("READY", "FAULT") and self.replies > 1):
                break
        if self.mode == "realtime" and connected:
            self._pump(0.01)
        if end_session and connected and not self.firmware_dead and not self.link.stream.eof:
            self._end_session()
        t_end = time.perf_counter()
        return self._result(t_end - t_wall, t_end - t_loop)

    def _result(self, wall: float, loop_wall: float) -> RunResult:
        rec = self.recorder
        summary = summarize(
            self.bench, rec, self.formation, self.last_frame or {}, wall, self.device_id, self.boots, steps=[],
            hil={"mode": self.mode, "tick_ms": self.tick_ms, "ticks_sent": self.ticks_sent,
                 "replies": self.replies, "loop_wall_seconds": loop_wall,
                 "ticks_per_s": self.ticks_sent / loop_wall if loop_wall > 0 else math.inf,
                 "firmware_dead": self.firmware_dead, "end_acked": self.end_acked,
                 "record_seq": self.record_seq, "firmware_record_seq": self.fw_record_seq,
                 "record_stale_ticks": self.record_stale_ticks,
                 "retry_timeout_s": self.timer.rto(), "srtt_s": self.timer.srtt,
                 "board_setpoint_ua": self.board.setpoint_ua, "board_relay_closed": self.board.relay_closed},
            link_lost=self.link_lost,
            link={"twin": _sum_counters(self._links_before, self.link.counters),
                  "firmware": _sum_counters(self._fw_before, self.fw_counters)})
        summary["complete"] = True
        if self.link_lost:
            mark_incomplete(summary, "link lost: " + (self.why or "the firmware declared it (no TICK in its timeout)"))
        return RunResult(rec.rows, rec.events, summary, rec.cycles)


def _sum_counters(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {**a, **b}}
