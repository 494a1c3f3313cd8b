"""The pytest plugin (twin/testing/plugin.py, the pytest11 entry point): one test file
(bench_example.py, as a user writes it) passes unchanged with the firmware in-process,
in a CPython process and under MicroPython over the HIL link; a failing expectation
is a test failure with its line and what was seen; a bad bench step is refused with
its line before anything runs; an unknown backend is a usage error.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def run_pytest(tmp_path, *args, timeout=600, example="bench_example.py"):
    shutil.copy(HERE / example, tmp_path / "test_example.py")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir",
                           str(tmp_path), str(tmp_path), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=tmp_path)


@pytest.mark.parametrize("backend", ["inprocess", "cpython",
                                     pytest.param("micropython", marks=pytest.mark.slow)])
def test_the_same_file_passes_wherever_the_firmware_runs(tmp_path, backend):
    done = run_pytest(tmp_path, "--bench-firmware", backend)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    assert "bms-twin bench: firmware %s, cell d111" % backend in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["inprocess", "unix-32", "qemu"])
def test_a_short_file_passes_on_the_built_images_too(tmp_path, request, backend):
    """The 32-bit unix port and the QEMU board (bench_example.py takes the QEMU board
    ~5 minutes: its three formations; this one a few hundred ticks)."""
    image = []
    if backend != "inprocess":
        image = ["--bench-image", str(request.getfixturevalue("micropython_32" if backend == "unix-32"
                                                                 else "qemu_firmware"))]
    done = run_pytest(tmp_path, "--bench-firmware", backend, *image, example="bench_quick_example.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_a_failed_expectation_is_a_test_failure_with_its_line(tmp_path):
    (tmp_path / "test_wrong.py").write_text(
        "def test_wrong(bench):\n"
        "    bench.run('''Wait until formed within 48 hours\n"
        "Expect no fault\n"
        "Expect event OVER_TEMPERATURE within 10 minutes\n''')\n")
    done = run_pytest(tmp_path, "-k", "wrong")
    assert done.returncode == 1
    assert "ExpectationFailed: line 3: 'Expect event OVER_TEMPERATURE within 10 minutes' failed: no " \
           "OVER_TEMPERATURE event within 10 minutes" in done.stdout


def test_the_bench_waits_for_formation_as_long_as_bms_twin_run_does(tmp_path):
    # too little lithium for the target: the charge stalls, and the bench stops
    # waiting at the cell's charge limit (run.player_limits), not at 48 h
    cell = tmp_path / "starved.toml"
    cell.write_text('based_on = "d111"\n[lithium_mol_L]\nvalue = 0.1\nunit = "mol/L"\n'
                    'source = "assumed: a catholyte with too little lithium for the target"\n')
    (tmp_path / "test_starved.py").write_text(
        "import pytest\n"
        "from twin.firmware_config import config_for, formation_timeouts_s\n"
        "from twin.parameters import load_parameter_set\n"
        "def test_starved(bench):\n"
        "    bench.run('Rest for 1 minute')\n"
        "    s = bench.summary()\n"
        "    limit = formation_timeouts_s(config_for(load_parameter_set(%r)))['charge']\n"
        "    assert s['formation_timed_out']['phase'] == 'charge'\n"
        "    assert s['formation_timed_out']['limit_s'] == pytest.approx(limit)\n"
        "    assert limit < bench.t_s < limit + 3600 and bench.state == 'FORMING'\n"
        "    assert s['steps_skipped'] == 1\n" % str(cell))
    done = run_pytest(tmp_path, "-k", "starved", "--bench-cell", str(cell))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_a_bad_step_is_refused_with_its_line_before_anything_runs(tmp_path):
    (tmp_path / "test_bad.py").write_text(
        "import pytest\n"
        "from twin.protocol import ProtocolError\n"
        "def test_bad(bench):\n"
        "    with pytest.raises(ProtocolError, match='line 2: Wait until formed has no time limit'):\n"
        "        bench.run('Inject crack\\nWait until formed\\n')\n"
        "    assert bench.t_s == 0 and not bench.bench.cell.layer_cracked\n")
    done = run_pytest(tmp_path, "-k", "bad")
    assert done.returncode == 0, done.stdout


def test_an_unknown_backend_is_a_usage_error(tmp_path):
    done = run_pytest(tmp_path, "--bench-firmware", "abacus")
    assert done.returncode != 0
    assert "--bench-firmware 'abacus': expected one of inprocess, cpython" in done.stdout + done.stderr
