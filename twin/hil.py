"""Hardware-in-the-loop: the twin plays the cell for a firmware on the other end
of a byte stream (a board on USB serial, a pty, a TCP serial bridge).

Per tick the twin lets simulated time pass on its board (TwinBoard.advance,
which latches one ADC scan), sends the scan in a TICK, and applies the REPLY's
setpoint and relay to the board; the REPLY's telemetry frame and the EVENT
frames go to the run's recorder and to the sinks, exactly as `bms-twin run`
feeds them from the in-process controller. SAVE_RECORD frames land in the
board's record store, and the record goes back to the firmware in the boot
TICK that answers its HELLO, as a board's flash would. The protocol is in
docs/hil.md and firmware/bmsfw/link_codec.py.

Two pacings:
  lockstep  the twin waits for each REPLY (retransmitting the TICK every
            retry_s, marking the firmware dead after reply_timeout_s):
            deterministic, as fast as both ends go.
  realtime  a TICK every tick_ms of wall time whatever the firmware does; a
            late reply is applied when it comes; no valid reply for
            link_timeout_ms puts the board safe (setpoint 0, relay open).
"""
from __future__ import annotations

import json
import math
import os
import select
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Iterable

from bmsfw import link_codec as lc
from bmsfw.config import Config
from bmsfw.hal import ISHUNT, TCELL, VCELL
from bmsfw.states import FAULTS, STATES, SUBSTATES
from bmsfw.telemetry import TELEMETRY_KEYS
from twin.run import Bench, FormationWatch, RunResult, _Recorder, config_for, summarize

_TICKS_MASK = (1 << 30) - 1     # the firmware compares ticks modulo 2**30 (bmsfw.hal)
FRAME_GAP_S = lc.FRAME_GAP_MS / 1000.0
TWIN_COUNTERS = ("frames", "garbage_bytes", "bad_header", "bad_crc", "truncated", "bad_payload",
                 "replayed", "skipped", "retries", "events_lost")


class HilError(ValueError):
    """A bad HIL setting or port: `field` names it."""

    def __init__(self, field, value, why):
        super().__init__(f"hil {field}={value!r}: {why}")
        self.field = field
        self.value = value


class FdLink:
    """A file descriptor (pty master, serial device, socket) as a byte stream."""

    def __init__(self, fd: int, closer=None):
        self.fd = fd
        self._closer = closer
        self.eof = False

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        if self.eof:
            time.sleep(timeout_s)
            return b""
        if not select.select([self.fd], [], [], max(0.0, timeout_s))[0]:
            return b""
        try:
            data = os.read(self.fd, max_bytes)
        except OSError:     # EIO: the pty's slave side is gone
            data = b""
        if not data:
            self.eof = True
        return data

    def write(self, data) -> None:
        view = memoryview(data)
        while len(view):
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                select.select([], [self.fd], [], 0.1)
                continue
            except OSError:
                self.eof = True
                return
            view = view[n:]

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None


def open_port(port: str, baud: int = 115200):
    """(FdLink, slave_path or None). `pty` makes a raw pseudo-terminal pair and
    keeps the slave open (so reads before the firmware opens it do not fail);
    `tcp://host:port` connects to a serial bridge; anything else is a serial device."""
    if port == "pty":
        import tty

        master, slave = os.openpty()
        tty.setraw(slave)           # no echo, no line editing: bytes pass as they are
        path = os.ttyname(slave)

        def close():
            os.close(master)
            os.close(slave)
        return FdLink(master, close), path
    if port.startswith("tcp://"):
        host, _, num = port[6:].rpartition(":")
        if not host or not num.isdigit():
            raise HilError("port", port, "expected tcp://host:port")
        sock = socket.create_connection((host, int(num)), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return FdLink(sock.fileno(), sock.close), None
    if not os.path.exists(port):
        raise HilError("port", port, "no such device (use a device path, pty or tcp://host:port)")
    import serial   # pyserial: sets the line discipline and baud rate of a real port

    ser = serial.Serial(port, baudrate=baud, timeout=0)
    return FdLink(ser.fileno(), ser.close), None


class TwinLinkEnd:
    """The twin's end of the protocol: frames out, frames in, counters."""

    def __init__(self, stream):
        self.stream = stream
        self.parser = lc.Parser()
        self.tx = bytearray(lc.MAX_FRAME)
        self.seq = 0
        self.rx_seq: int | None = None
        self.counters = dict.fromkeys(TWIN_COUNTERS, 0)
        self.last_byte_s = time.perf_counter()

    def send(self, ftype: int, payload_len: int, seq: int | None = None) -> int:
        """The payload is in self.tx[HEADER_SIZE:]; returns the seq used."""
        if seq is None:
            seq = self.seq
            self.seq = (self.seq + 1) & 0xFFFF
        n = lc.finish_frame(self.tx, 0, ftype, seq, payload_len)
        self.stream.write(memoryview(self.tx)[:n])
        return seq

    def send_tick(self, t_ms: int, counts, boot=None, retry_seq: int | None = None) -> int:
        """boot: None or (seq of the HELLO answered, adc_bits, vref_mv, record bytes or None)."""
        flags = (lc.TICK_BOOT if boot is not None else 0) | (lc.TICK_RETRY if retry_seq is not None else 0)
        n = lc.TICK_SIZE
        struct.pack_into(lc.TICK_FMT, self.tx, lc.HEADER_SIZE, t_ms & _TICKS_MASK, counts[0], counts[1],
                         counts[2], flags)
        if boot is not None:
            hello_seq, bits, vref_mv, record = boot
            rec = b"" if record is None else bytes(record)
            struct.pack_into(lc.BOOT_FMT, self.tx, lc.HEADER_SIZE + n, hello_seq, bits, vref_mv,
                             lc.NO_RECORD if record is None else len(rec))
            n += lc.BOOT_SIZE
            lc.put_bytes(self.tx, lc.HEADER_SIZE + n, rec)
            n += len(rec)
        return self.send(lc.T_TICK, n, retry_seq)

    def send_command(self, cmd_id: int, name, args) -> None:
        data = json.dumps({"id": cmd_id, "name": name, "args": args}).encode()
        lc.put_bytes(self.tx, lc.HEADER_SIZE, data)
        self.send(lc.T_COMMAND, len(data))

    def frames(self, timeout_s: float):
        """Yield (type, seq, payload bytes) of the good, in-order frames that
        arrive within timeout_s (returns early after the first batch)."""
        p = self.parser
        data = self.stream.read(4096, timeout_s)
        now = time.perf_counter()
        if data:
            self.last_byte_s = now
            p.feed(data)
        elif p.pending() and now - self.last_byte_s > FRAME_GAP_S:
            p.expire()
        out = []
        while p.next():
            ftype, seq = p.ftype, p.seq
            if ftype == lc.T_HELLO:
                self.rx_seq = seq       # a (re)booted firmware starts its seq afresh
            elif self.rx_seq is not None:
                d = lc.seq_delta(seq, self.rx_seq)
                if d <= 0:
                    self.counters["replayed"] += 1
                    continue
                if d > 1:
                    self.counters["skipped"] += d - 1
                self.rx_seq = seq
            else:
                self.rx_seq = seq
            out.append((ftype, seq, bytes(p.buf[p.pos:p.pos + p.n])))
        self.counters["frames"] = p.frames
        self.counters["garbage_bytes"] = p.garbage_bytes
        self.counters["bad_header"] = p.bad_header
        self.counters["bad_crc"] = p.bad_crc
        self.counters["truncated"] = p.truncated
        return out


def decode_reply(payload: bytes, device_id: str):
    """(ack, flags, setpoint_ua, relay_closed, heartbeat, telemetry frame, fw counters)
    or None if the payload is not a REPLY of this protocol version."""
    v = lc.unpack_reply(payload)
    if v is None:
        return None
    state_i, sub_i, mask, relay = v["state"], v["substate"], v["fault_mask"], v["relay"]
    if state_i >= len(STATES) or sub_i >= len(SUBSTATES) or mask >> len(FAULTS) or relay > 1:
        return None
    # The frame's keys in TELEMETRY_KEYS order; the wire carries every one but
    # kind and device, with state, substate and faults encoded.
    frame = {key: v.get(key, 0) for key in TELEMETRY_KEYS}
    frame.update(kind="telemetry", device=device_id, state=STATES[state_i], substate=SUBSTATES[sub_i],
                 faults=[FAULTS[i] for i in range(len(FAULTS)) if mask >> i & 1])
    counters = {name: v[name] for name in lc.LINK_COUNTERS}
    return v["ack"], v["flags"], v["hal_setpoint_ua"], bool(relay), v["heartbeat"], frame, counters


class _HilBench(Bench):
    """Bench's cell and board, without an in-process controller."""

    def _boot(self):
        self.boots += 1
        return None


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
    def __init__(self, parameters, stream, mode: str = "lockstep", ambient_c: float = 25.0, seed: int = 0,
                 board: str = "bench_ua", tick_ms: int | None = None, config: Config | None = None,
                 sinks: Iterable = (), record_every: int = 1, reply_timeout_s: float = 5.0,
                 retry_s: float = 0.5, link_timeout_ms: int | None = None, boot_timeout_s: float = 60.0):
        if mode not in ("lockstep", "realtime"):
            raise HilError("mode", mode, "must be lockstep or realtime")
        config = config if config is not None else config_for(parameters)
        self.tick_ms = tick_ms if tick_ms is not None else config.tick_ms
        if not isinstance(self.tick_ms, int) or self.tick_ms <= 0:
            raise HilError("tick_ms", self.tick_ms, "must be a positive int")
        for name, value in (("reply_timeout_s", reply_timeout_s), ("retry_s", retry_s),
                            ("boot_timeout_s", boot_timeout_s)):
            if not value > 0:
                raise HilError(name, value, "must be > 0")
        self.parameters = parameters
        self.mode = mode
        self.bench = _HilBench(parameters, ambient_c=ambient_c, seed=seed, board=board, config=config)
        self.bench.tick_ms = self.tick_ms
        self.board = self.bench.board
        self.link = TwinLinkEnd(stream)
        self.sinks = list(sinks)
        self.recorder = _Recorder(self.bench, record_every)
        self.reply_timeout_s = reply_timeout_s
        self.retry_s = retry_s
        self.link_timeout_s = (link_timeout_ms if link_timeout_ms is not None else 3 * self.tick_ms) / 1000.0
        self.boot_timeout_s = boot_timeout_s
        self.ambient_c = ambient_c
        self.seed = seed
        self.device_id: str | None = None
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
            self.bench.boots += 1           # the firmware restarted: it reads its record again
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
            self.board.set_current_ua(max(-2048, min(2048, setpoint_ua)))
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
            formation_timeout_s: float = 48 * 3600.0) -> RunResult:
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
        self.bench.device_id = self.device_id
        summary = summarize(
            self.bench, rec, self.formation, self.last_frame or {}, wall, steps=[],
            hil={"mode": self.mode, "tick_ms": self.tick_ms, "ticks_sent": self.ticks_sent,
                 "replies": self.replies, "loop_wall_seconds": loop_wall,
                 "ticks_per_s": self.ticks_sent / loop_wall if loop_wall > 0 else math.inf,
                 "firmware_dead": self.firmware_dead,
                 "board_setpoint_ua": self.board.setpoint_ua, "board_relay_closed": self.board.relay_closed},
            link_lost=self.link_lost,
            link={"twin": dict(self.link.counters), "firmware": dict(self.fw_counters)})
        return RunResult(rec.rows, rec.events, summary, rec.cycles)


# ---------------------------------------------------------------- the CLI
def add_arguments(parser) -> None:
    """Options of `bms-twin hil` (twin/cli.py adds the subcommand)."""
    parser.add_argument("--port", required=True,
                        help="serial device (e.g. /dev/ttyACM0), pty (prints the path for the firmware), "
                             "or tcp://host:port (a serial-to-TCP bridge)")
    parser.add_argument("--cell", default="d111", help="parameter set name or TOML path (default d111)")
    parser.add_argument("--ambient-c", type=float, default=25.0, help="ambient temperature, °C")
    parser.add_argument("--seed", type=int, default=0, help="seeds the board's ADC noise")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--lockstep", dest="mode", action="store_const", const="lockstep",
                      help="wait for each reply (deterministic; default)")
    pace.add_argument("--realtime", dest="mode", action="store_const", const="realtime",
                      help="one TICK per tick_ms of wall time; a late firmware sees time move on")
    parser.set_defaults(mode="lockstep")
    parser.add_argument("--tick-ms", type=int, default=None,
                        help="simulated ms per tick (default: the firmware config's tick_ms, 1000)")
    parser.add_argument("--duration-s", type=float, default=None,
                        help="simulated seconds to run (default: until formation ends, READY or FAULT)")
    parser.add_argument("--out", default="runs/hil", help="output directory (default runs/hil)")
    parser.add_argument("--baud", type=int, default=115200, help="serial baud rate (device ports)")
    parser.add_argument("--reply-timeout-s", type=float, default=5.0,
                        help="lockstep: no reply this long (wall) marks the firmware dead")
    parser.add_argument("--link-timeout-ms", type=int, default=None,
                        help="realtime: no reply this long (wall) puts the board safe (default 3 ticks)")
    parser.add_argument("--boot-timeout-s", type=float, default=60.0,
                        help="wall seconds to wait for the firmware's HELLO")


def main(args, sinks: Iterable = ()) -> int:
    from twin.parameters import load_parameter_set
    from twin.run import write_run_outputs

    params = load_parameter_set(args.cell)
    stream, slave = open_port(args.port, args.baud)
    try:
        if slave is not None:
            print(f"bms-twin hil: firmware port {slave}", flush=True)
        server = HilServer(params, stream, mode=args.mode, ambient_c=args.ambient_c, seed=args.seed,
                           tick_ms=args.tick_ms, sinks=sinks, reply_timeout_s=args.reply_timeout_s,
                           link_timeout_ms=args.link_timeout_ms, boot_timeout_s=args.boot_timeout_s)
        result = server.run(duration_s=args.duration_s)
    finally:
        stream.close()
    out = Path(args.out)
    write_run_outputs(result, out, title=f"{params.name}: HIL ({args.mode})")
    s = result.summary
    print(f"{params.name} over HIL ({args.mode}): final state {s['final_state']}, faults {s['faults'] or 'none'}, "
          f"link {'LOST' if s['link_lost'] else 'ok'}; {s['hil']['ticks_sent']} ticks, "
          f"{s['sim_seconds'] / 3600:.2f} h simulated in {s['wall_seconds']:.1f} s")
    bad = {k: v for k, v in s["link"]["twin"].items() if v and k != "frames"}
    if bad:
        print(f"link faults seen by the twin: {bad}", file=sys.stderr)
    print(f"wrote {out}/timeseries.csv, events.jsonl, summary.json, voltage.png, inventory.png")
    return 1 if s["link_lost"] else 0
