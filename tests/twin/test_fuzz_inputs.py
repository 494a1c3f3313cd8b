"""Fuzzing what a user hands `bms-twin simulate` and `run`: protocol text (grammar-shaped
and raw bytes), options, and parameter TOMLs mutated from d111's. Whatever comes in,
no traceback: exit 0 or 1 (a run, with its reason on one stderr line) or exit 2 with
one line `bms-twin <command>: ...` (argparse's own refusals keep its usage + error
form, exit 2). In process through twin.cli.main, and a few through the console script.

Run: .venv/bin/python -m pytest tests/twin/test_fuzz_inputs.py -q
"""
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from twin.cli import main
from twin.parameters import load_parameter_set

BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# ---- protocol text shaped like the language, with hostile pieces -------------------

NUMBERS = st.sampled_from(["0", "1", "2.5", "10", "100", "-1", "+5", "0.001", "1e300", "1e-300", "1e999",
                           "nan", "inf", "999999999", "3.", ".5", "1e3", "10000"])
UNITS = st.sampled_from(["uA", "mA", "A", "µA", "nA", "V", "mV", "s", "min", "minutes", "h", "hours",
                         "parsecs", "", "uAh"])
QUANTITY = st.builds(lambda n, u: (n + " " + u).strip(), NUMBERS, UNITS)
ENDING = st.one_of(st.builds("for {}".format, QUANTITY), st.builds("until {}".format, QUANTITY),
                   st.builds("for {} or until {}".format, QUANTITY, QUANTITY), st.just(""),
                   st.text(max_size=12))
# steps that run (the among them), so the fuzz also reaches the runs
VALID_STEP = st.sampled_from([
    "Charge at 100 uA for 30 minutes", "Charge at 10 uA for 10 minutes", "Discharge at 100 uA until 2.0 V",
    "Discharge at 50 uA for 10 minutes", "Rest for 5 minutes", "Hold at 2.5 V until 20 uA",
    "Hold at 2.6 V for 10 minutes or until 5 uA", "Charge at 20 mA for 1 hour", "Hold at 10 V for 20 minutes",
    "Discharge at 10 mA for 1 hour", "Charge at 0.5 mA for 30 minutes or until 2.6 V", "Repeat 2 times:",
])
STEP = st.one_of(
    VALID_STEP, VALID_STEP,
    st.builds("{} at {} {}".format, st.sampled_from(["Charge", "Discharge", "charge", "Chrage"]), QUANTITY, ENDING),
    st.builds("Rest {}".format, ENDING),
    st.builds("Hold at {} {}".format, QUANTITY, ENDING),
    st.builds("Repeat {} times:".format, st.sampled_from(["0", "1", "2", "3", "-2", "1.5", "1000000000", "x"])),
    st.text(max_size=30),
)
LINE = st.builds(lambda indent, step, comment: " " * indent + step + comment,
                 st.sampled_from([0, 0, 0, 0, 4, 4, 2, 8]), STEP, st.sampled_from(["", "", "", "  # note", "\t"]))
CLEAN_LINE = st.builds(lambda indent, step: " " * indent + step, st.sampled_from([0, 0, 4]), VALID_STEP)
PROTOCOL_TEXT = st.one_of(st.lists(LINE, min_size=0, max_size=8), st.lists(CLEAN_LINE, min_size=1, max_size=6)
                          ).map("\n".join)


def check_outcome(code, err, command):
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert code in (0, 1, 2), (code, err)
    if code == 0:
        return
    if lines and lines[0].startswith("usage: "):                  # argparse's refusal
        assert code == 2 and lines[-1].startswith("bms-twin %s: error: " % command), err
        return
    assert len(lines) == 1 and lines[0].startswith("bms-twin %s: " % command), err


def run_main(argv, capsys, command):
    try:
        code = main(argv)
    except SystemExit as stop:                                      # argparse
        code = stop.code
    captured = capsys.readouterr()
    check_outcome(code, captured.err, command)
    event("exit %s" % code)
    return code, captured


@FUZZ
@given(text=PROTOCOL_TEXT)
def test_any_protocol_text_is_run_or_refused_in_one_line(tmp_path, capsys, text):
    path = tmp_path / "p.txt"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    code, _ = run_main(["simulate", "--protocol", str(path), "--out", str(out), "--sample-s", "3600"],
                       capsys, "simulate")
    if code == 2:
        assert not out.exists()
    shutil.rmtree(out, ignore_errors=True)


@FUZZ
@given(data=st.binary(max_size=200))
def test_any_bytes_as_a_protocol_file_are_run_or_refused(tmp_path, capsys, data):
    path = tmp_path / "p.bin"
    path.write_bytes(data)
    run_main(["simulate", "--protocol", str(path), "--out", str(tmp_path / "out"), "--sample-s", "3600"],
             capsys, "simulate")
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


# ---- options --------------------------------------------------------------------

OPTION_VALUE = st.one_of(st.sampled_from(["0", "-1", "nan", "inf", "-inf", "1e999", "1e-9", "3", "25", "600",
                                          "4294967296", "-0", "", "x", "1e300"]),
                         st.floats(allow_nan=True).map(repr), st.integers(-10**12, 10**12).map(str))


@FUZZ
@given(sample_s=OPTION_VALUE, ambient=OPTION_VALUE, seed=OPTION_VALUE)
def test_any_simulate_options_are_run_or_refused(tmp_path, capsys, sample_s, ambient, seed):
    (tmp_path / "p.txt").write_text("Charge at 100 uA for 10 minutes\n")
    run_main(["simulate", "--protocol", str(tmp_path / "p.txt"), "--out", str(tmp_path / "out"),
              "--sample-s=" + sample_s, "--ambient-c=" + ambient, "--seed=" + seed], capsys, "simulate")
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


@FUZZ
@given(cuts=st.lists(OPTION_VALUE, max_size=3), off=OPTION_VALUE, speed=OPTION_VALUE, seed=OPTION_VALUE,
       device=st.one_of(st.none(), st.text(max_size=70)))
def test_any_run_options_are_refused_in_one_line_or_reach_the_run(tmp_path, capsys, monkeypatch, cuts, off,
                                                                    speed, seed, device):
    import twin.run

    reached = []

    def started(*args, **kwargs):
        reached.append(kwargs)
        raise Started

    monkeypatch.setattr(twin.run, "run_closed_loop", started)
    argv = ["run", "--no-mqtt", "--out", str(tmp_path / "out"), "--off-s=" + off, "--speed=" + speed,
            "--seed=" + seed] + ["--power-cut-at=" + c for c in cuts]
    if device is not None:
        argv.append("--device-id=" + device)
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    except Started:
        # the options passed every check and the run started with them
        assert len(reached) == 1
        kwargs = reached[0]
        assert kwargs["off_s"] > 0 and all(c > 0 for c in kwargs["power_cuts_s"])
        assert kwargs["seed"] >= 0
        capsys.readouterr()
        return
    check_outcome(code, capsys.readouterr().err, "run")
    assert code == 2 and not reached


class Started(Exception):
    """The closed loop was reached (a stub stands in for it)."""


# ---- parameter TOMLs mutated from d111 -------------------------------------------------

D111_TEXT = load_parameter_set("d111").path.read_text(encoding="utf-8")
D111_DATA = tomllib.loads(D111_TEXT)
ENTRY_NAMES = sorted(k for k, v in D111_DATA.items() if isinstance(v, dict) and "value" in v)
HOSTILE = st.sampled_from(["nan", "inf", "-inf", "0.0", "-1.0", "1e308", "1e-308", "\"1\"", "true", "[1, 2]",
                           "{}", "3", "1e6", "0.5"])


def mutate(text, entry, value, mode):
    lines = text.splitlines()
    head = lines.index("[%s]" % entry)
    if mode == "value":
        lines[head + 1] = "value = %s" % value
    elif mode == "unit":
        lines[head + 2] = "unit = %s" % value
    elif mode == "drop":
        del lines[head:head + 4]
    elif mode == "junk":
        lines.insert(head, "[junk_%s]\nvalue = %s" % (entry, value))
    else:
        lines[head] = lines[head][:-1]                              # broken TOML
    return "\n".join(lines) + "\n"


@FUZZ
@given(entry=st.sampled_from(ENTRY_NAMES), value=HOSTILE,
       mode=st.sampled_from(["value", "value", "value", "unit", "drop", "junk", "break"]))
@example(entry="lithium_mol_L", value="0.0", mode="value")     # no dissolved lithium: the summary once divided by it
@example(entry="max_substep_s", value="1e-308", mode="value")   # a step that left the time unmoved: a segment never ended
def test_a_mutated_parameter_set_is_run_or_refused(tmp_path, capsys, entry, value, mode):
    path = tmp_path / "cell.toml"
    path.write_text(mutate(D111_TEXT, entry, value, mode), encoding="utf-8")
    (tmp_path / "p.txt").write_text("Charge at 100 uA for 1 minute\nRest for 1 minute\n")
    code, captured = run_main(["simulate", "--cell", str(path), "--protocol", str(tmp_path / "p.txt"),
                               "--out", str(tmp_path / "out"), "--sample-s", "60"], capsys, "simulate")
    if code == 2 and mode != "break" and entry.split(".")[-1] in captured.err:
        assert "cell.toml" in captured.err or "--cell" in captured.err
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=PROTOCOL_TEXT, sample_s=OPTION_VALUE)
def test_a_few_through_the_console_script(tmp_path, text, sample_s):
    (tmp_path / "p.txt").write_text(text, encoding="utf-8")
    done = subprocess.run([BMS_TWIN, "simulate", "--protocol", "p.txt", "--out", "out", "--sample-s=" + sample_s],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    check_outcome(done.returncode, done.stderr, "simulate")
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
