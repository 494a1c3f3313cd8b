"""`bms-twin` argument routing (twin/cli.py main): `watch` hands every argument
after it, leading options included, to mqtt_bridge.watch's own parser; every
other command refuses arguments it does not know.

Run: .venv/bin/python -m pytest tests/twin/test_cli.py -q
"""
import pytest

from twin.cli import main


def test_watch_options_reach_the_watch_parser(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["watch", "--device", "no/slashes", "--once"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: bms-twin watch")
    assert "--device: use [A-Za-z0-9_-] or leave it out for all devices" in err


def test_watch_help_is_the_watch_parsers(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["watch", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: bms-twin watch") and "--broker URL" in out and "--count N" in out


def test_watch_times_out_on_a_real_broker_with_exit_1(capsys):
    # the shared mosquitto on 127.0.0.1:1883; nobody publishes for this device
    assert main(["watch", "--broker", "mqtt://127.0.0.1:1883", "--device", "cli-nobody",
                 "--once", "--timeout", "0.5"]) == 1
    assert "timed out after 0.5 s" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["params", "--bogus"], ["simulate", "--protocol", "d111", "--out", "x", "extra"]])
def test_other_commands_refuse_unknown_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: bms-twin ")
    assert "bms-twin: error: unrecognized arguments: " + argv[-1] in err
