"""`bms-twin hil --firmware KIND`: the twin starts the firmware in every place it
runs and runs the d111 formation against it. On the QEMU Cortex-M3 board and on the
32-bit single-precision unix build (the images of `bms-twin firmware build`, from
the session fixtures in tests/conftest.py) the run's timeseries.csv and
events.jsonl are byte for byte those of the in-process CPython run with the same
seed: the firmware counts in ints, so single precision changes nothing it reports.
Also: the processes it starts end in every outcome (a finished run, an exception,
a firmware that never comes up or dies, a killed twin), and bad options are
refused with one line and exit 2.

Run: .venv/bin/python -m pytest tests/hil/test_hil_images.py -q
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from twin import cli
from twin.firmware_config import config_for
from twin.hil import HilServer
from twin.hil.errors import FirmwareFailed
from twin.hil.firmware import start_firmware
from twin.parameters import load_parameter_set
from twin.run import run_closed_loop
from twin.run_files import write_run_outputs

SEED = 7
RUN_FILES = ("timeseries.csv", "events.jsonl")


def child_pids():
    """Live (not zombie) processes whose parent is this one."""
    me = os.getpid()
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            found.add(int(entry))
    return found


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def d111():
    return load_parameter_set("d111")


@pytest.fixture(scope="module")
def reference(d111, tmp_path_factory):
    """The in-process closed loop's run files: same cell, seed, config and device id
    (run_closed_loop's defaults, which `bms-twin hil --firmware` gives the firmware)."""
    out = tmp_path_factory.mktemp("in-process")
    result = run_closed_loop(d111, None, seed=SEED, stop_after_formation=True)
    write_run_outputs(result, out)
    return out, result.summary


def hil_cli(*argv):
    return cli.main(["hil", "--no-mqtt", "--seed", str(SEED), *argv])


@pytest.mark.slow
@pytest.mark.parametrize("kind, fixture", [("unix-32", "micropython_32"), ("qemu", "qemu_firmware")])
def test_the_d111_formation_on_an_image_writes_the_in_process_run_files(kind, fixture, reference, tmp_path,
                                                                        request):
    request.getfixturevalue(fixture)      # the image is in the cache: --firmware takes it from there
    ref_dir, ref = reference
    before = child_pids()
    out = tmp_path / kind
    assert hil_cli("--firmware", kind, "--out", str(out)) == 0
    assert child_pids() <= before, "a process the run started outlived it"
    for name in RUN_FILES:
        assert (out / name).read_bytes() == (ref_dir / name).read_bytes(), name
    s = json.loads((out / "summary.json").read_text())
    assert s["final_state"] == ref["final_state"] == "READY"
    assert s["faults"] == [] and s["device"] == ref["device"] == "d111-%04d" % SEED
    assert s["formation"]["counted_uAh"] == ref["formation"]["counted_uAh"]
    assert s["hil"]["ticks_sent"] == round(ref["sim_seconds"]) and s["hil"]["firmware_dead"] is False
    assert s["link_lost"] is False
    # nothing lost on either end (the files above are the in-process ones): a timer retry on a
    # busy machine only repeats an answer, and a frame the emulated UART paused in for longer
    # than the frame gap is cut short (truncated, its tail garbage) and asked for again
    paused = ("truncated", "garbage_bytes") if kind == "qemu" else ()
    assert {k: v for k, v in s["link"]["twin"].items()
            if v and k not in ("frames", "rx_bytes", "frame_bytes", "retries", "replayed", *paused)} == {}
    fw = s["link"]["firmware"]
    assert fw["rx_bytes"] == fw["rx_frame_bytes"] > 0
    assert {k: v for k, v in fw.items() if v and k not in ("rx_bytes", "rx_frames", "rx_frame_bytes")} == {}
    assert s["complete"] is True and s["hil"]["end_acked"] is True and s["hil"]["record_stale_ticks"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("kind, duration_s", [("cpython", 300), ("micropython", 60)])
def test_the_process_kinds_start_from_the_cli_too(kind, duration_s, reference, tmp_path):
    ref_dir, _ = reference
    out = tmp_path / kind
    assert hil_cli("--firmware", kind, "--duration-s", str(duration_s), "--out", str(out)) == 0
    # a clean end of session: END answered, the firmware exited 0, no LINK_LOST anywhere
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] is True and s["hil"]["end_acked"] is True and s["hil"]["firmware_exit_code"] == 0
    assert "LINK_LOST" not in (out / "events.jsonl").read_text() and s["faults"] == []
    rows = (out / "timeseries.csv").read_text().splitlines()
    assert len(rows) == 1 + duration_s
    assert rows == (ref_dir / "timeseries.csv").read_text().splitlines()[:1 + duration_s]


@pytest.mark.slow
@pytest.mark.parametrize("kind, fixture", [("unix-32", "micropython_32"), ("qemu", "qemu_firmware")])
def test_an_exception_in_the_session_stops_the_firmware(kind, fixture, d111, request):
    image = request.getfixturevalue(fixture)
    before = child_pids()
    with pytest.raises(RuntimeError, match="the twin failed"):
        with start_firmware(kind, config_for(d111), "raise-0001", image=image) as fw:
            assert fw.process.pid in child_pids()
            raise RuntimeError("the twin failed")
    assert fw.process.returncode is not None
    assert child_pids() <= before


@pytest.mark.slow
def test_a_qemu_board_that_dies_mid_run_ends_the_run_with_the_board_safe(d111, qemu_firmware):
    class KillAfter:
        def __init__(self, fw, n_frames):
            self.fw, self.left = fw, n_frames

        def frame(self, frame):
            self.left -= 1
            if self.left == 0:
                self.fw.process.kill()

        def event(self, event):
            pass

    config = config_for(d111)
    with start_firmware("qemu", config, "dies-0001", image=qemu_firmware) as fw:
        server = HilServer(d111, fw.stream, config=config, sinks=[KillAfter(fw, 50)], reply_timeout_s=5.0)
        result = server.run()
    s = result.summary
    assert s["hil"]["firmware_dead"] is True and s["link_lost"] is True
    assert 50 <= s["hil"]["ticks_sent"] <= 52
    assert server.board.setpoint_ua == 0 and not server.board.relay_closed


@pytest.mark.slow
def test_firmware_code_that_ends_at_once_is_reported_with_the_boards_words(d111, qemu_firmware):
    # link_main refuses --link-timeout-ms 0 and returns: the raw REPL ends the code
    # (Ctrl-D, '>') before any frame; the board's own message is in the error.
    before = child_pids()
    with pytest.raises(FirmwareFailed) as failed:
        with start_firmware("qemu", config_for(d111), "ends-0001", link_timeout_ms=0, image=qemu_firmware):
            pass
    assert "ended before its first frame" in str(failed.value)
    assert "link_timeout_ms='0': must be a positive integer" in str(failed.value)
    assert child_pids() <= before


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["unix-32", "qemu"])
def test_an_image_that_does_not_start_is_one_line_and_exit_1(kind, tmp_path, capsys):
    bad = tmp_path / "not-an-image"
    bad.write_text("#!/bin/sh\nexit 3\n")
    bad.chmod(0o755)
    before = child_pids()
    out = tmp_path / "run"
    assert hil_cli("--firmware", kind, "--image", str(bad), "--out", str(out)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bms-twin hil: %s firmware: " % kind), err
    assert ("exited with code 3" in err[0]) if kind == "unix-32" else ("REPL prompt" in err[0])
    assert not out.exists()
    assert child_pids() <= before


KILLED_TWIN = r'''
import sys, time
from twin.firmware_config import config_for
from twin.hil.firmware import start_firmware
from twin.parameters import load_parameter_set
with start_firmware("qemu", config_for(load_parameter_set("d111")), "orphan-0001", image=sys.argv[1]) as fw:
    print(fw.process.pid, flush=True)
    time.sleep(600)
'''


@pytest.mark.slow
def test_a_killed_twin_takes_its_qemu_board_along(qemu_firmware):
    twin = subprocess.Popen([sys.executable, "-c", KILLED_TWIN, str(qemu_firmware)], stdout=subprocess.PIPE, text=True)
    try:
        qemu_pid = int(twin.stdout.readline())
        assert alive(qemu_pid)
        twin.send_signal(signal.SIGKILL)        # no finally runs in the twin: the kernel tells the board
        twin.wait(10)
        deadline = time.monotonic() + 10
        while alive(qemu_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(qemu_pid), "QEMU outlived the twin that started it"
    finally:
        if twin.poll() is None:
            twin.kill()
            twin.wait()


@pytest.mark.parametrize("argv, expected", [
    (["--firmware", "nope"], "--firmware='nope': expected one of cpython, micropython, unix-32, qemu"),
    (["--port", "pty", "--image", "fw.elf"], "--image='fw.elf': only with --firmware"),
    (["--port", "pty", "--device-id", "d-1"], "--device-id='d-1': only with --firmware"),
    (["--firmware", "cpython", "--image", "fw.elf"], "--image='fw.elf': only with --firmware unix-32 or qemu"),
    (["--firmware", "qemu", "--image", "no-such.elf"], "--image='no-such.elf': no such file"),
])
def test_bad_firmware_options_are_one_line_and_exit_2(argv, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "cpython" in argv:
        (tmp_path / "fw.elf").write_bytes(b"\x7fELF")
    assert hil_cli(*argv, "--out", "run") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bms-twin hil: ") and err[0].endswith(expected), err
    assert not (tmp_path / "run").exists()


def test_qemu_missing_from_the_machine_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert hil_cli("--firmware", "qemu", "--out", str(tmp_path / "run")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bms-twin hil: ") and err[0].endswith(
        "--firmware='qemu': needs qemu-system-arm on PATH (Debian: apt-get install qemu-system-arm)"), err
    assert not (tmp_path / "run").exists()
