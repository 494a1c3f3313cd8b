"""Run MicroPython code under a native executable (the unix-32 image of
`bms-twin firmware build`, the tests' `micropython_32` fixture), with the result
shape of twin.images.wasm.run_guest, so runner.py drives either interpreter.

The guest runs as ``micropython -X heapsize=N -c code`` in `cwd`, with MICROPYPATH
set to the frozen modules only (nothing from ~/.micropython/lib); the caller puts
its staged paths on sys.path itself. The native build's garbage collector has no
defect of the WASI build's, so nothing here turns it off.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from twin.images.wasm import GuestResult


def run_native(executable: str | Path, code: str, *, cwd: str | Path, heap_bytes: int,
               wall_timeout_s: float) -> GuestResult:
    env = dict(os.environ, MICROPYPATH=".frozen")
    try:
        out = subprocess.run([str(executable), "-X", "heapsize=%d" % heap_bytes, "-c", code], cwd=str(cwd),
                             env=env, capture_output=True, timeout=wall_timeout_s)
    except subprocess.TimeoutExpired as timeout:
        return GuestResult(-1, (timeout.stdout or b"").decode("utf-8", "replace"),
                           (timeout.stderr or b"").decode("utf-8", "replace"),
                           "wall timeout after %.0f s" % wall_timeout_s, 0)
    return GuestResult(out.returncode, out.stdout.decode("utf-8", "replace"),
                       out.stderr.decode("utf-8", "replace"), "", 0)
