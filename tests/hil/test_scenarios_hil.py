"""The scenario library over HIL with the firmware in a CPython process on a pty
(twin/scenario_hil.py): each scenario the link can carry meets its expectations
with the same events, at the same times, as in-process (cycler steps as REQUESTs);
the one with a power cut is refused
with the line the link cannot carry, before anything runs; `bms-twin hil --protocol`
plays them from the command line.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twin.protocol import Protocol
from twin.scenario import StepRefused, scenarios
from twin.scenario_hil import check_hil_protocol, refusal
from twin.testing import open_bench

# slow (not in the fast lane): whole formations over HIL
pytestmark = pytest.mark.slow


def _over_the_link(name):
    try:
        check_hil_protocol(Protocol.from_file(scenarios()[name]))
    except StepRefused:
        return False
    return True


LINKED = [name for name in sorted(scenarios()) if _over_the_link(name)]
NOT_LINKED = [name for name in sorted(scenarios()) if not _over_the_link(name)]


def test_all_of_the_library_but_a_power_cut_runs_over_the_link():
    # cycler steps travel as REQUESTs; the link has no power switch
    assert {"crack_in_cycling", "cold_cycling"} <= set(LINKED)
    assert NOT_LINKED == ["power_cut_verify"]


def _play(backend, name):
    with open_bench(backend, seed=2) as bench:
        bench.run(scenarios()[name])
        return bench.summary(), list(bench.events), bench.frames[-1]


@pytest.mark.parametrize("name", LINKED)
def test_a_scenario_over_hil_is_the_in_process_one(name):
    ref_summary, ref_events, ref_frame = _play("inprocess", name)
    summary, events, frame = _play("cpython", name)
    assert summary["complete"] is True, summary.get("why")
    assert summary["expectations"] == ref_summary["expectations"]
    assert [(e["event"], e.get("fault"), e.get("to"), e["time_s"]) for e in events] == \
        [(e["event"], e.get("fault"), e.get("to"), e["time_s"]) for e in ref_events]
    assert frame == ref_frame
    assert summary["final_state"] == ref_summary["final_state"]
    # A command over the link acts on the board one tick later than in-process (the
    # setpoint and relay come back in the REPLY to the next TICK, as on a real board):
    # up to a tick of formation current (100 uA x 1 s = 0.03 uAh) per command.
    commands = sum(1 for e in events if e["event"] == "COMMAND")
    assert summary["plated_uAh_end"] == pytest.approx(ref_summary["plated_uAh_end"], abs=1e-9 + 0.03 * commands)
    assert summary["link_lost"] is False


@pytest.mark.parametrize("name", NOT_LINKED)
def test_what_the_link_cannot_carry_is_refused_before_anything_runs(name):
    protocol = Protocol.from_file(scenarios()[name])
    first = next(step for step in protocol.distinct_steps() if refusal(step))
    with open_bench("cpython") as bench:
        with pytest.raises(StepRefused, match="line %d: " % first.line_no):
            bench.run(protocol)
        assert bench.frames == type(bench.frames)() and bench.t_s == 0.0


BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))


def _hil_cli(*args):
    return subprocess.run([BMS_TWIN, "hil", "--no-mqtt", *args], capture_output=True, text=True, timeout=600)


def test_bms_twin_hil_plays_a_scenario_and_fails_a_wrong_expectation_with_its_line(tmp_path):
    done = _hil_cli("--firmware", "cpython", "--protocol", "thermistor_open_formation", "--out", str(tmp_path / "ok"))
    assert done.returncode == 0, done.stderr
    s = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert s["expectations"]["failed"] is None and s["expectations"]["passed"] == 7
    assert s["faults"] == ["SENSOR"] and s["final_state"] == "READY" and s["wall_seconds"] > 0
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("Wait until formed within 48 hours\n\nExpect state FAULT\n")
    done = _hil_cli("--firmware", "cpython", "--protocol", str(wrong), "--out", str(tmp_path / "wrong"))
    assert done.returncode == 1
    assert done.stderr == "bms-twin hil: line 3: 'Expect state FAULT' failed: state READY/RESTING\n"
    s = json.loads((tmp_path / "wrong" / "summary.json").read_text())
    assert s["complete"] is False and s["why"].startswith("line 3: ")


@pytest.mark.parametrize("args, why", [
    (["--protocol", "power_cut_verify"], "line 5: 'Cut power for 10 minutes' cannot run over HIL: the link has "
                                         "no power switch"),
    (["--protocol", "short_at_boot", "--duration-s", "60"], "--duration-s=60.0: not with --protocol"),
    (["--protocol", "short_at_boot", "--realtime"], "--realtime=None: not with --protocol"),
    (["--protocol", "nope"], "--protocol='nope': no such file, nor a shipped protocol of that name"),
])
def test_bms_twin_hil_refuses_what_the_link_cannot_play_before_anything_runs(tmp_path, args, why):
    done = _hil_cli("--firmware", "cpython", "--out", str(tmp_path / "o"), *args)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("bms-twin hil: " + why), done.stderr
    assert not (tmp_path / "o").exists()
