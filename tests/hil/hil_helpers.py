"""Shared by the HIL tests: start the firmware in its own process on a pty,
always with a timeout, and always killed (firmware_process is a context manager).
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

from bmsfw.config import Config

ROOT = Path(__file__).resolve().parents[2]
# The firmware's HIL entry point (firmware/bmsfw/link_main.py), run as a user runs it.
LINK_MAIN = ("-m", "bmsfw.link_main")
MP_FIRMWARE = ROOT / "tests" / "hil" / "mp_firmware.py"
KILL_WAIT_S = 10


def config_overrides(config: Config) -> str:
    """The fields where `config` differs from the firmware's defaults, as the
    JSON object link_main --config takes (a board would carry them built in)."""
    base = Config()
    out = {}
    for name in config.names():
        value = getattr(config, name)
        if value != getattr(base, name):
            out[name] = [list(row) for row in value] if isinstance(value, tuple) else value
    return json.dumps(out)


def firmware_command(kind: str, port: str, config: Config, device_id: str,
                     link_timeout_ms: int | None = None) -> list:
    if kind == "cpython":
        cmd = [sys.executable, *LINK_MAIN, "--port", port]
    elif kind == "micropython":
        cmd = [sys.executable, str(MP_FIRMWARE), "--port", port, "--wall-timeout-s", "150"]
    else:
        raise ValueError(f"firmware kind {kind!r}: cpython or micropython")
    cmd += ["--config", config_overrides(config), "--device-id", device_id]
    if link_timeout_ms is not None:
        cmd += ["--link-timeout-ms", str(link_timeout_ms)]
    return cmd


@contextlib.contextmanager
def firmware_process(kind: str, port: str, config: Config, device_id: str, link_timeout_ms: int | None = None,
                     **popen):
    proc = subprocess.Popen(firmware_command(kind, port, config, device_id, link_timeout_ms),
                            stdout=popen.pop("stdout", subprocess.PIPE), stderr=popen.pop("stderr", subprocess.PIPE),
                            cwd=str(ROOT), **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=KILL_WAIT_S)
