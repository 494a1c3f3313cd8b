"""Shared by the HIL tests: the firmware in its own process on a pty, started the
way `bms-twin hil --firmware` starts it (twin/hil/firmware.py: firmware_command,
firmware_process, a context manager that always ends it), run from the clone's root.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

from bmsfw.config import Config
from twin.hil import firmware
from twin.hil.firmware import LINK_MAIN, config_overrides, firmware_command

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["LINK_MAIN", "ROOT", "config_overrides", "firmware_command", "firmware_process"]


@contextlib.contextmanager
def firmware_process(kind: str, port: str, config: Config, device_id: str, link_timeout_ms: int | None = None,
                     image=None, **popen):
    with firmware.firmware_process(kind, port, config, device_id, link_timeout_ms, image=image,
                                   cwd=popen.pop("cwd", str(ROOT)), **popen) as proc:
        yield proc
