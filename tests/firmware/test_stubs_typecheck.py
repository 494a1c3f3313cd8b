"""The firmware type-checks against the MicroPython stubs (DESIGN.md section 5).

mypy runs on firmware/ (bmsfw/, main.py, boot.py; settings in firmware/mypy.ini)
with a custom typeshed built from micropython-stdlib-stubs + micropython-rp2-stubs
(tests/mp/mp_typeshed.py), so `machine`, `time.ticks_ms`, `micropython.const`
... are the MicroPython ones and CPython-only names (time.monotonic, dataclasses)
are errors. By hand, from the project root:

    .venv/bin/python tests/mp/mp_typeshed.py build/mp-typeshed
    cd firmware && ../.venv/bin/python -m mypy --config-file mypy.ini \
        --custom-typeshed-dir ../build/mp-typeshed

Run: .venv/bin/python -m pytest tests/firmware/test_stubs_typecheck.py -q
"""

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mp"))

import mp_typeshed  # noqa: E402  (tests/mp is not a package)

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


@pytest.fixture(scope="module")
def typeshed(tmp_path_factory):
    return mp_typeshed.build(tmp_path_factory.mktemp("mp") / "typeshed")


def _mypy(typeshed, cache_dir, *args, cwd=FIRMWARE):
    return subprocess.run(
        [
            sys.executable, "-m", "mypy",
            "--custom-typeshed-dir", str(typeshed),
            "--cache-dir", str(cache_dir),
            "--show-error-codes",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_firmware_is_clean_under_micropython_stubs(typeshed, tmp_path):
    proc = _mypy(typeshed, tmp_path / "cache", "--config-file", str(FIRMWARE / "mypy.ini"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Every firmware module was checked (manifest.py, a build script, is not firmware).
    n_files = len(list((FIRMWARE / "bmsfw").glob("*.py"))) + 2  # + main.py, boot.py
    assert "Success: no issues found in %d source files" % n_files in proc.stdout, proc.stdout


@pytest.mark.slow
def test_stub_typeshed_rejects_cpython_only_and_mistyped_code(typeshed, tmp_path):
    # Guards the check itself: with the stubs in place these lines must fail
    # (MicroPython's time has no monotonic(); unique_id() returns bytes; the
    # machine stubs know unique_id() takes no argument).
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import time\nimport machine\n"
        "t = time.monotonic()\n"
        "s: str = machine.unique_id()\n"
        "machine.unique_id(1)\n"
        "ok: int = time.ticks_diff(time.ticks_ms(), time.ticks_ms())\n"
    )
    proc = _mypy(typeshed, tmp_path / "cache", "--no-site-packages", str(bad), cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert any(":3:" in line and "monotonic" in line for line in lines), proc.stdout
    assert any(":4:" in line and "bytes" in line for line in lines), proc.stdout
    assert any(":5:" in line for line in lines), proc.stdout
    assert not any(":6:" in line for line in lines), proc.stdout
