"""`bms-twin hil` (twin/hil/cli.py add_arguments/main) end to end: a pty the
firmware opens from the printed path, the run's files; tcp:// with the
firmware's link on its stdin/stdout; refusals of bad ports and settings.

Run: .venv/bin/python -m pytest tests/hil/test_hil_cli.py -q
"""
import argparse
import json
import socket
import subprocess
import sys
import threading

import pytest

from hil_helpers import ROOT, firmware_command
from twin.hil import HilError, HilServer, add_arguments, main, open_port
from twin.parameters import load_parameter_set
from twin.firmware_config import config_for

RUN_HIL = ("import sys, argparse; from twin.hil import add_arguments, main; "
           "p = argparse.ArgumentParser(prog='bms-twin hil'); add_arguments(p); "
           "sys.exit(main(p.parse_args(sys.argv[1:])))")


def parse(*argv):
    parser = argparse.ArgumentParser(prog="bms-twin hil")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_options_and_defaults():
    args = parse("--port", "pty")
    assert (args.mode, args.cell, args.seed, args.ambient_c, args.duration_s) == ("lockstep", "d111", 0, 25.0, None)
    assert parse("--port", "pty", "--realtime").mode == "realtime"
    with pytest.raises(SystemExit):
        parse("--port", "pty", "--realtime", "--lockstep")
    with pytest.raises(SystemExit):
        parse()


@pytest.mark.slow
def test_hil_over_a_pty_writes_the_run_files(tmp_path):
    out = tmp_path / "run"
    twin = subprocess.Popen([sys.executable, "-c", RUN_HIL, "--port", "pty", "--out", str(out),
                             "--duration-s", "300", "--seed", "4"],
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fw = None
    try:
        line = twin.stdout.readline()
        assert line.startswith("bms-twin hil: firmware port /dev/pts/"), line
        port = line.split()[-1]
        config = config_for(load_parameter_set("d111"))
        fw = subprocess.Popen(firmware_command("cpython", port, config, "cli-0001"), cwd=str(ROOT),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        rest, err = twin.communicate(timeout=120)
    finally:
        for proc in (twin, fw):
            if proc is not None and proc.poll() is None:
                proc.kill()
            if proc is not None:
                proc.communicate(timeout=10)
    assert twin.returncode == 0, err
    assert "over HIL (lockstep)" in rest
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == "cli-0001"
    assert summary["link_lost"] is False
    assert summary["hil"]["ticks_sent"] == 300
    assert summary["sim_seconds"] == pytest.approx(300.0)
    assert summary["final_state"] == "FORMING"
    rows = (out / "timeseries.csv").read_text().splitlines()
    assert len(rows) == 1 + 300
    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    assert [e["to"] for e in events if e["event"] == "STATE"] == ["SHIPPED", "FORMING"]
    assert (out / "voltage.png").exists()


def test_hil_over_tcp_with_the_firmware_on_stdin_stdout():
    d111 = load_parameter_set("d111")
    config = config_for(d111)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(30)
    port = listener.getsockname()[1]
    procs = []

    def accept_and_start_firmware():
        conn, _ = listener.accept()
        cmd = firmware_command("cpython", "-", config, "tcp-0001")
        procs.append(subprocess.Popen(cmd, cwd=str(ROOT), stdin=conn.fileno(), stdout=conn.fileno(),
                                      stderr=subprocess.PIPE))
        conn.close()

    t = threading.Thread(target=accept_and_start_firmware, daemon=True)
    t.start()
    stream = None
    try:
        stream, slave = open_port(f"tcp://127.0.0.1:{port}")
        assert slave is None
        t.join(30)
        server = HilServer(d111, stream, config=config, reply_timeout_s=20.0)
        result = server.run(duration_s=200.0)
    finally:
        if stream is not None:
            stream.close()
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        listener.close()
    assert result.summary["device"] == "tcp-0001"
    assert result.summary["hil"]["replies"] == 201
    assert result.summary["link_lost"] is False
    assert result.summary["final_state"] == "FORMING"


@pytest.mark.parametrize("port, field", [("/dev/no-such-tty", "port"), ("tcp://nohostport", "port"),
                                         ("tcp://:99", "port")])
def test_a_bad_port_is_refused_by_name(port, field):
    with pytest.raises(HilError) as err:
        open_port(port)
    assert err.value.field == field


@pytest.mark.parametrize("kwargs, field", [({"mode": "fast"}, "mode"), ({"tick_ms": 0}, "tick_ms"),
                                           ({"reply_timeout_s": 0}, "reply_timeout_s")])
def test_bad_settings_are_refused_by_name(kwargs, field):
    with pytest.raises(HilError) as err:
        HilServer(load_parameter_set("d111"), None, **kwargs)
    assert err.value.field == field


def test_no_firmware_means_no_run_and_a_safe_board():
    stream, _slave = open_port("pty")
    try:
        server = HilServer(load_parameter_set("d111"), stream, boot_timeout_s=0.3)
        result = server.run()
    finally:
        stream.close()
    assert result.summary["link_lost"] is True
    assert result.summary["hil"]["firmware_dead"] is True
    assert result.summary["hil"]["ticks_sent"] == 0
    assert server.board.setpoint_ua == 0 and not server.board.relay_closed
    # the summary says why, not only that
    assert result.summary["complete"] is False
    assert result.summary["why"] == "link lost: no HELLO from a firmware within 0.3 s (no firmware on the port?)"


def test_the_cli_says_why_in_one_line_and_exits_1_when_no_firmware_came(tmp_path, capsys):
    out = tmp_path / "o"
    code = main(parse("--port", "pty", "--boot-timeout-s", "0.3", "--out", str(out)))
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "bms-twin hil: link lost: no HELLO from a firmware within 0.3 s (no firmware on the port?)"
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] is False and s["why"].startswith("link lost: no HELLO")


def test_main_refuses_a_missing_device(tmp_path):
    with pytest.raises(HilError):
        main(parse("--port", str(tmp_path / "ttyNONE"), "--out", str(tmp_path / "o")))


class StopWhenForming:
    """A sink with poll(controller), as the MQTT bridge drains commands: it
    stops the formation over the link the first time it sees FORMING."""

    def __init__(self):
        self.results = []

    def poll(self, controller):
        if not self.results and controller.state == "FORMING":
            self.results.append(controller.command("stop", {}))

    def frame(self, frame):
        pass

    def event(self, event):
        pass


def test_a_sink_commands_the_firmware_over_the_link():
    from hil_helpers import firmware_process

    d111 = load_parameter_set("d111")
    config = config_for(d111)
    sink = StopWhenForming()
    stream, slave = open_port("pty")
    try:
        with firmware_process("cpython", slave, config, "cmd-0001"):
            server = HilServer(d111, stream, config=config, sinks=[sink], reply_timeout_s=20.0)
            result = server.run(duration_s=60.0)
    finally:
        stream.close()
    assert sink.results == [(True, "OK")]
    assert result.summary["final_state"] == "SAFE"
    assert server.board.setpoint_ua == 0 and not server.board.relay_closed
    assert [e["command"] for e in result.events if e["event"] == "COMMAND"] == ["stop"]
