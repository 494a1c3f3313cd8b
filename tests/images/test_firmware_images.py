"""The real images of `bms-twin firmware build` (the session fixtures of
tests/conftest.py: MicroPython 1.28.0 built from its source with this checkout's
firmware frozen in): what the CLI prints, what each image is, and that it holds
this firmware.

Run: .venv/bin/python -m pytest tests/images/test_firmware_images.py -q
"""
import json
import os
import subprocess

import pytest

from twin import cli
from twin.hil import qemu
from twin.images import MICROPYTHON_VERSION, firmware_dir, image_key

pytestmark = pytest.mark.slow   # builds the images when the machine's cache lacks them


@pytest.mark.parametrize("target, fixture", [("unix-32", "micropython_32"), ("qemu-cortex-m3", "qemu_firmware")])
def test_the_cli_prints_where_the_image_is(target, fixture, request, capsys):
    path = request.getfixturevalue(fixture)
    assert cli.main(["firmware", "build", "--target", target]) == 0
    captured = capsys.readouterr()
    assert captured.out == "%s\n" % path
    assert "%s from the cache" % target in captured.err


@pytest.mark.parametrize("target, fixture", [("unix-32", "micropython_32"), ("qemu-cortex-m3", "qemu_firmware")])
def test_the_image_froze_this_checkouts_firmware(target, fixture, request):
    path = request.getfixturevalue(fixture)
    meta = json.loads((path.parent / "image.json").read_text())
    assert (meta["micropython"], meta["target"]) == (MICROPYTHON_VERSION, target)
    assert meta["key"] == image_key(target, firmware_dir()) == image_key(target, path.parent / "firmware")
    assert meta["manifest_options"] == {"board_hal": False, "link_hal": True}


PROBE = """import sys, gc
import bmsfw.link_main, bmsfw.controller
print(sys.implementation.name, "%d.%d.%d" % sys.implementation.version[:3])
print(sys.implementation._machine)
print(2.0**24 + 1.0 == 2.0**24)
gc.collect()
print(gc.mem_free())
try:
    import bmsfw.board_hal
except ImportError:
    print("no board_hal")
"""


def test_the_unix_32_image_is_32_bit_single_precision_with_the_link_component_frozen(micropython_32, tmp_path):
    # cwd empty and MICROPYPATH the frozen modules only: what imports is frozen in
    out = subprocess.run([str(micropython_32), "-c", PROBE], cwd=str(tmp_path), capture_output=True, text=True,
                         env=dict(os.environ, MICROPYPATH=".frozen"), timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "micropython " + MICROPYTHON_VERSION
    assert lines[2] == "True"               # float32: 2**24 + 1 rounds to 2**24
    assert lines[4] == "no board_hal"       # the link component, not the board's
    with open(micropython_32, "rb") as fh:
        elf = fh.read(5)
    assert elf == b"\x7fELF\x01"            # ELFCLASS32


def test_the_qemu_board_boots_to_a_repl_with_the_firmware_frozen_and_a_boards_heap(qemu_firmware, tmp_path):
    with open(tmp_path / "qemu.log", "wb") as log:
        proc, sock = qemu.boot_board(qemu_firmware, stderr=log)
        try:
            qemu.run_in_raw_repl(sock, proc, PROBE.encode())
            ok, said = qemu.read_until(sock, b"\x04>", 20, proc)    # stdout, Ctrl-D, stderr, Ctrl-D, '>'
        finally:
            proc.kill()
            proc.wait()
            sock.close()
    assert ok, said
    out, err = said[:-2].decode().split("\x04")[:2]
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == "micropython " + MICROPYTHON_VERSION
    assert "Cortex-M3" in lines[1]
    assert lines[2] == "True"
    # ~140 KB of heap with the firmware imported: more than the 64 KB the firmware must fit in
    assert 64 * 1024 < int(lines[3]) < 144 * 1024
    assert lines[4] == "no board_hal"
