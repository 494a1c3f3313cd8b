"""Bad input to `bms-twin` (twin/cli.py, twin/options.py): exit 2 and one line
`bms-twin <command>: <input> ... expected`, before anything runs and with nothing
left behind; a run that ends short of its protocol exits 1 with its reason. In
process through twin.cli.main, and a few through the installed console script.

Run: .venv/bin/python -m pytest tests/twin/test_cli_inputs.py -q
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twin.cli import main
from twin.parameters import CELL_PARAM_FIELDS, DESIGN_UNITS, load_parameter_set

BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))
OK_PROTOCOL = "Charge at 10 uA for 10 minutes\n"


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.txt").write_text(OK_PROTOCOL)
    (tmp_path / "a_file").write_text("")
    return tmp_path


@pytest.fixture
def nothing_runs(monkeypatch):
    """Every runner fails the test if it is reached: refusals come first."""
    import twin.hil
    import twin.run
    import twin.simulate
    import twin.study.command

    def reached(*args, **kwargs):
        pytest.fail("the command ran despite a bad input")

    monkeypatch.setattr(twin.simulate, "simulate", reached)
    monkeypatch.setattr(twin.run, "run_closed_loop", reached)
    monkeypatch.setattr(twin.hil, "main", reached)
    monkeypatch.setattr(twin.study.command, "run", reached)


def refused(argv, capsys, command, says):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bms-twin %s: " % command), err
    assert says in lines[0], err
    return lines[0]


SIM = ["simulate", "--protocol", "ok.txt", "--out", "out"]


@pytest.mark.parametrize("extra, says", [
    (["--sample-s", "0"], "--sample-s=0.0: a finite number of s > 0 expected"),
    (["--sample-s", "-1"], "--sample-s=-1.0"),
    (["--sample-s", "nan"], "--sample-s=nan"),
    (["--sample-s", "1e-9"], "--sample-s=1e-09: the protocol's fixed steps alone"),
    (["--seed", "-1"], "--seed=-1: a whole number from 0 to"),
    (["--seed", str(2**40)], "--seed="),
    (["--ambient-c", "inf"], "--ambient-c=inf: a finite number expected"),
    (["--ambient-c", "-200"], "between -120 and 220"),
    (["--ambient-c", "160"], "safety temperature of 150"),
    (["--cell", "d112"], "unknown parameter set 'd112'"),
    (["--cell", "/dev/zero"], "not a regular file"),
    (["--cycler", "nothere"], "--cycler='nothere': no such file, nor a shipped cycler"),
])
def test_simulate_refuses_each_bad_option_in_one_line(here, capsys, nothing_runs, extra, says):
    refused(SIM + extra, capsys, "simulate", says)
    assert not (here / "out").exists()


@pytest.mark.parametrize("protocol, content, says", [
    ("missing.txt", None, "--protocol='missing.txt': no such file, nor a shipped protocol"),
    ("latin.txt", "Charge at 10 \u00b5A for 1 hour\n".encode("latin-1"), "byte 0xb5 at line 1"),
    ("binary.txt", bytes(range(256)), "is not UTF-8"),
    ("bad.txt", b"Rest for 1 s\nCharge at 10 parsecs for 1 hour\n", "line 2: unknown current unit 'parsecs'"),
    ("huge.txt", b"Repeat 1000000000 times:\n    Rest for 1 s\n", "expands to 1000000000 steps"),
    ("forever.txt", b"Charge at 10 uA for 1e300 hours\n", "above the bound on simulated time"),
    ("fast.txt", b"Charge at 1 A for 1 hour\n", "above the channel's current range"),
    ("fast_hold.txt", b"Hold at 2.6 V until 1 mA\n", "hold current limit"),
])
def test_simulate_refuses_a_bad_protocol_naming_the_file(here, capsys, nothing_runs, protocol, content, says):
    if content is not None:
        (here / protocol).write_bytes(content)
    refused(["simulate", "--protocol", protocol, "--out", "out"], capsys, "simulate", says)
    assert not (here / "out").exists()


def test_a_shipped_protocol_name_with_a_slash_is_not_looked_up(here, capsys, nothing_runs):
    refused(["simulate", "--protocol", "../d111", "--out", "out"], capsys, "simulate", "no such file")


@pytest.mark.parametrize("out, says", [
    ("a_file", "exists and is not a directory"),
    ("a_file/below", "a_file is not a directory"),
])
def test_out_is_checked_before_the_run(here, capsys, nothing_runs, out, says):
    refused(["simulate", "--protocol", "ok.txt", "--out", out], capsys, "simulate", "--out='%s': %s" % (out, says))


@pytest.mark.parametrize("extra, says", [
    (["--seed", "-1"], "--seed=-1"),
    (["--power-cut-at", "-5"], "--power-cut-at=-5.0"),
    (["--power-cut-at", "100", "--power-cut-at", "nan"], "--power-cut-at=nan"),
    (["--off-s", "-5"], "--off-s=-5.0"),
    (["--off-s", "0"], "--off-s=0.0"),
    (["--speed", "0"], "--speed=0.0"),
    (["--speed", "-600"], "--speed=-600.0"),
    (["--device-id", "a/b"], "--device-id='a/b'"),
    (["--protocol", "missing.txt"], "--protocol='missing.txt': no such file"),
    (["--out", "a_file"], "--out='a_file'"),
])
def test_run_refuses_each_bad_option_before_starting(here, capsys, nothing_runs, extra, says):
    refused(["run", "--no-mqtt", "--out", "out"] + extra, capsys, "run", says)
    if "--out" not in extra:
        assert not (here / "out").exists()


def test_run_refuses_a_cell_whose_default_device_id_mqtt_cannot_carry(here, capsys, nothing_runs):
    shutil.copy(load_parameter_set("d111").path, here / "my cell.toml")
    refused(["run", "--no-mqtt", "--cell", str(here / "my cell.toml")], capsys, "run",
            "the default 'my cell-0000' (<cell>-<seed>) is no MQTT device id")


@pytest.mark.parametrize("extra, says", [
    (["--tick-ms", "0"], "--tick-ms=0"),
    (["--baud", "0"], "--baud=0"),
    (["--duration-s", "-1"], "--duration-s=-1.0"),
    (["--reply-timeout-s", "nan"], "--reply-timeout-s=nan"),
    (["--boot-timeout-s", "0"], "--boot-timeout-s=0.0"),
    (["--link-timeout-ms", "-3"], "--link-timeout-ms=-3"),
    (["--seed", "-2"], "--seed=-2"),
    (["--out", "a_file"], "--out='a_file'"),
])
def test_hil_refuses_each_bad_option_before_opening_a_port(here, capsys, nothing_runs, extra, says):
    refused(["hil", "--port", "pty", "--no-mqtt"] + extra, capsys, "hil", says)


@pytest.mark.parametrize("extra, says", [
    (["--flush-s", "nan"], "--flush-s=nan"),
    (["--out", "a_file"], "--out='a_file'"),
])
def test_sweep_refuses_a_bad_option(here, capsys, nothing_runs, extra, says):
    refused(["sweep", "study.toml", "--out", "out"] + extra, capsys, "sweep", says)


def test_a_safety_stop_exits_1_with_its_reason_and_writes_what_ran(here, capsys):
    (here / "hot.toml").write_text('[safety_max_temperature_C]\nvalue = 25.1\nunit = "degC"\n'
                                   'source = "assumed: a test limit"\n')
    (here / "warm.txt").write_text("Charge at 2 mA for 1 hour\nRest for 1 hour\n")
    code = main(["simulate", "--protocol", "warm.txt", "--cycler", "hot.toml", "--out", "out"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err == [err[0]] and err[0].startswith("bms-twin simulate: safety limit: cell temperature")
    summary = json.loads((here / "out" / "summary.json").read_text())
    assert summary["complete"] is False and summary["why"] == err[0][len("bms-twin simulate: "):]
    assert summary["cycler"]["name"] == "hot"


def test_a_compliance_stop_is_reported_and_the_run_completes(here, capsys):
    (here / "over.txt").write_text("Charge at 20 mA for 1 hour\n")
    assert main(["simulate", "--protocol", "over.txt", "--out", "out"]) == 0
    out = capsys.readouterr().out
    assert "compliance: 1 step(s) ended on it (line 1 at once" in out
    assert json.loads((here / "out" / "summary.json").read_text())["complete"] is True


def test_simulate_says_a_cell_without_a_layer_has_none(here, capsys):
    assert main(["simulate", "--cell", "control_no_lipon", "--protocol", "d042", "--out", "out"]) == 0
    out = capsys.readouterr().out
    assert "no protective layer" in out and "layer intact" not in out


def test_params_prints_every_number_with_its_unit_and_source(capsys):
    assert main(["params", "d111"]) == 0
    text = capsys.readouterr().out
    params = load_parameter_set("d111")
    lines = {line.split()[0]: line for line in text.splitlines() if line.startswith("  ") and line.split()}
    for field in CELL_PARAM_FIELDS:
        if field in ("n_ocv_points", "ocv_x", "ocv_V"):
            continue
        line = lines[field]
        assert params.units[field] in line.split()[2] and params.sources[field] in line, field
    for field in DESIGN_UNITS:
        assert params.design_sources[field] in lines["design." + field]
    assert "compliance_max_V" in lines and "derived:" in lines["compliance_max_V"]
    assert "citations (twin/parameters/citations.bib): " in text and "Yu1997" in text
    assert ", ".join("%.6g" % x for x in params.values["ocv_x"]) in text


def test_params_json_has_value_unit_and_source_of_every_entry(capsys):
    assert main(["params", "product_1ah", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    params = load_parameter_set("product_1ah")
    assert data["based_on"] == list(params.based_on)
    for field, value in params.values.items():
        entry = data["values"][field]
        assert entry == {"value": value, "unit": params.units[field], "source": params.sources[field]}
    assert set(data["design"]) == set(DESIGN_UNITS)
    assert data["cycler"]["current_range_A"]["value"] == pytest.approx(25.0)


# ---- through the console script, as a user runs it --------------------------------

def cli(*args, cwd):
    return subprocess.run([BMS_TWIN, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_console_script_refuses_in_one_line_without_a_traceback(here):
    for args, says in ((["simulate", "--protocol", "missing", "--out", "o"], "--protocol='missing'"),
                       (["simulate", "--protocol", "ok.txt", "--out", "o", "--sample-s", "-1"], "--sample-s"),
                       (["run", "--no-mqtt", "--speed", "0", "--out", "o"], "--speed=0.0"),
                       (["params", "d112"], "unknown parameter set")):
        done = cli(*args, cwd=here)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert done.stderr.strip().splitlines() == [done.stderr.strip()]
        assert says in done.stderr
    assert not (here / "o").exists()


def test_the_console_script_runs_the_issues_examples_without_a_traceback(here):
    for text, code in (("Charge at 20 mA for 1 hour\n", 0), ("Hold at 10 V for 1 hour\n", 0),
                       ("Discharge at 10 mA for 1 hour\n", 0), ("Charge at 1 A for 1 hour\n", 2)):
        (here / "p.txt").write_text(text)
        done = cli("simulate", "--protocol", "p.txt", "--out", "o", cwd=here)
        assert done.returncode == code, done.stderr
        assert "Traceback" not in done.stderr


def test_a_run_whose_bridge_queue_cannot_open_ends_in_one_line_not_a_traceback(here, capsys):
    # the bridge opens its queue once the run publishes (mqtt_bridge): refused then
    refused(["run", "--broker", "mqtt://127.0.0.1:1883", "--mqtt-queue", "/dev/zero", "--out", "out"],
            capsys, "run", "/dev/zero: cannot open as a store-and-forward queue")


def test_a_hil_port_that_does_not_open_leaves_no_directory(here, capsys, monkeypatch):
    import twin.hil.cli

    monkeypatch.setattr(twin.hil.cli, "HilServer", lambda *a, **k: pytest.fail("served without a port"))
    refused(["hil", "--port", "/nonexistent/tty", "--no-mqtt", "--out", "out"], capsys, "hil",
            "no such device")
    assert not (here / "out").exists()
