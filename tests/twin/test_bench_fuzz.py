"""Fuzz of bench steps: any line shaped like one (verbs, names, numbers and units,
hostile pieces) is a BenchStep whose canonical text reads back equal, or a
ProtocolError with its line; and any protocol of bench steps a firmware plays through
`bms-twin run` ends 0, 1 (an expectation failed: one line naming it) or 2 (refused,
nothing written), never a traceback; and so does a damaged bench.json under --from.
"""
import shutil
import uuid

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from test_fuzz_inputs import run_main
from twin.protocol import BenchStep, Protocol, ProtocolError

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

WORDS = st.sampled_from([
    "Set", "Ramp", "Inject", "Clear", "Cut", "Command", "Wait", "Expect", "ambient", "to", "over", "power",
    "for", "until", "within", "state", "formed", "event", "no", "fault", "inventory", "above", "below", "of",
    "stuck", "at", "crack", "internal", "short", "thermistor", "open", "cell", "ADC", "VCELL", "TCELL",
    "source", "offset", "all", "faults", "READY", "FAULT", "VERIFY", "SENSOR", "CRACK_SUSPECTED", "stop",
    "reset_fault", "formation/start", "charge", "set_limits", "current_ua=100", "duration_s=-5", "ccl_ua=x",
    "0", "-5", "25", "1e999", "nan", "1.5", "°C", "C", "°", "ohm", "kohm", "uA", "uAh", "mAh", "minutes",
    "hours", "s", "parsecs", "_", "=", "/", "#", "\u00b5Ah",
])
LINE = st.one_of(st.lists(WORDS, min_size=1, max_size=9).map(" ".join), st.text(max_size=25))


@FUZZ
@given(lines=st.lists(LINE, min_size=1, max_size=4))
def test_any_bench_line_reads_to_a_step_that_reads_back_or_is_refused_with_its_line(lines):
    text = "\n".join(["Rest for 1 minute"] + lines)
    try:
        protocol = Protocol.parse(text)
    except ProtocolError as error:
        assert error.line_no is not None and 1 <= error.line_no <= len(text.splitlines())
        assert error.brief.startswith("line %d: " % error.line_no)
        event("refused")
        return
    event("read")
    assert Protocol.parse(protocol.describe()) == protocol
    for step in protocol.bench_steps():
        assert isinstance(step, BenchStep) and step.line_no is not None


RUN_STEP = st.sampled_from([
    "Wait until formed within 48 hours", "Wait until formed within 1 hour", "Wait for 10 minutes",
    "Set ambient to 0 °C", "Set ambient to 80 °C", "Ramp ambient to 40 °C over 30 minutes", "Inject crack",
    "Inject internal short of 20 ohm", "Inject open cell", "Inject thermistor short",
    "Inject ADC ISHUNT stuck at 0", "Inject ADC VCELL stuck at 99999", "Inject source offset of 30 uA",
    "Clear all faults", "Clear thermistor", "Clear ADC ISHUNT", "Cut power for 5 minutes", "Command stop",
    "Command rest", "Command reset_fault", "Command formation/start", "Command set_limits ccl_ua=10",
    "Command charge current_ua=100 duration_s=300", "Command discharge current_ua=99999999",
    "Wait until state READY within 5 minutes", "Wait until state SAFE within 1 minute",
    "Expect event FAULT within 10 minutes", "Expect event CYCLE within 5 minutes", "Expect state READY",
    "Expect no fault", "Expect fault SHORT", "Expect inventory above 100 uAh", "Expect inventory below 1 mAh",
    "Charge at 100 uA for 5 minutes", "Discharge at 100 uA for 5 minutes or until 2.0 V", "Rest for 2 minutes",
    "Inject meltdown", "Wait until formed",
])


@pytest.mark.slow      # each example a closed-loop run and its plots: ~2 s
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(RUN_STEP, min_size=1, max_size=6))
def test_any_bench_protocol_runs_fails_in_one_line_or_is_refused(tmp_path, capsys, steps):
    path = tmp_path / "p.txt"
    path.write_text("\n".join(steps) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    code, captured = run_main(["run", "--no-mqtt", "--protocol", str(path), "--out", str(out)], capsys, "run")
    if code == 2:
        assert not out.exists()
    elif code == 1:
        assert "failed: " in captured.err and captured.err.startswith("bms-twin run: line ")
    shutil.rmtree(out, ignore_errors=True)


HOSTILE = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                    st.text(max_size=8), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                                                st.integers(), max_size=2))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A bench a run saved: formed, a thermistor open."""
    import json

    from twin.parameters import load_parameter_set
    from twin.run import run_closed_loop
    from twin.saved_bench import save_bench

    out = tmp_path_factory.mktemp("saved")
    result = run_closed_loop(load_parameter_set("d111"),
                             Protocol.parse("Wait until formed within 48 hours\nInject thermistor open\n"))
    save_bench(result.bench, out)
    return json.loads((out / "bench.json").read_text())


def _paths(data, prefix=()):
    for key, value in data.items():
        yield prefix + (key,)
        if isinstance(value, dict) and len(value) < 12:
            yield from _paths(value, prefix + (key,))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=HOSTILE, drop=st.booleans())
def test_a_damaged_saved_bench_resumes_or_is_refused_in_one_line(tmp_path, capsys, saved, data, value, drop):
    import copy
    import json

    bench = copy.deepcopy(saved)
    path = data.draw(st.sampled_from(sorted(_paths(bench))))
    where = bench
    for key in path[:-1]:
        where = where[key]
    if drop:
        del where[path[-1]]
    else:
        where[path[-1]] = value
    folder = tmp_path / "from"
    folder.mkdir(exist_ok=True)
    (folder / "bench.json").write_text(json.dumps(bench))
    (tmp_path / "p.txt").write_text("Wait for 1 minute\n")
    out = tmp_path / ("out-%s" % uuid.uuid4().hex)     # its own per example: none is left by another
    code, captured = run_main(["run", "--no-mqtt", "--from", str(folder), "--protocol", str(tmp_path / "p.txt"),
                               "--out", str(out)], capsys, "run")
    if code == 2:
        assert not out.exists()
        assert "--from=" in captured.err or "--cell" in captured.err or "--protocol" in captured.err, captured.err
    shutil.rmtree(out, ignore_errors=True)
