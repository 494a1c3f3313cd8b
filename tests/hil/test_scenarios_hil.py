"""The scenario library over HIL with the firmware in a CPython process on a pty
(twin/scenario_hil.py): every scenario meets its expectations with the same events,
at the same times, as in-process (cycler steps as REQUESTs; a power cut stops the
firmware's process and starts it again on the board's record); a power cut leaves
the record and the plated charge as in-process wherever the firmware runs; a
firmware on a port (no power switch the twin holds) has the cut refused with its
line, before anything runs; `bms-twin hil --protocol` plays them from the command line.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from twin.protocol import Protocol
from twin.scenario import StepRefused, scenarios
from twin.hil.errors import FirmwareFailed
from twin.scenario_hil import FirmwareGone, refusal
from twin.testing import open_bench

# slow (not in the fast lane): whole formations over HIL
pytestmark = pytest.mark.slow


def _play(backend, name):
    with open_bench(backend, seed=2) as bench:
        bench.run(scenarios()[name])
        return bench.summary(), list(bench.events), bench.frames[-1]


def _event_keys(events):
    return [(e["event"], e.get("fault"), e.get("to"), e["time_s"]) for e in events]


@pytest.mark.parametrize("name", sorted(scenarios()))
def test_a_scenario_over_hil_is_the_in_process_one(name):
    ref_summary, ref_events, ref_frame = _play("inprocess", name)
    summary, events, frame = _play("cpython", name)
    assert summary["complete"] is True, summary.get("why")
    assert summary["expectations"] == ref_summary["expectations"]
    assert _event_keys(events) == _event_keys(ref_events)
    assert frame == ref_frame
    assert summary["final_state"] == ref_summary["final_state"]
    assert (summary["boots"], summary["power_cuts_s"]) == (ref_summary["boots"], ref_summary["power_cuts_s"])
    # A command over the link acts on the board one tick later than in-process (the
    # setpoint and relay come back in the REPLY to the next TICK, as on a real board):
    # up to a tick of formation current (100 uA x 1 s = 0.03 uAh) per command.
    commands = sum(1 for e in events if e["event"] == "COMMAND")
    assert summary["plated_uAh_end"] == pytest.approx(ref_summary["plated_uAh_end"], abs=1e-9 + 0.03 * commands)
    assert summary["link_lost"] is False


BEFORE_CUT = "Wait until state PLATE within 1 hour\nWait for 5 minutes\n"
AFTER_CUT = "Wait until state PLATE within 10 minutes\nWait for 2 minutes\n"


def _cut(backend, image=None):
    """What a power cut while plating leaves: the board's record and the cell before
    and after it, and the run after the firmware came back."""
    with open_bench(backend, seed=4, image=image) as bench:
        bench.run(BEFORE_CUT)
        before = bench.bench.board.record, bench.bench.cell.plated_uAh, bench.t_s
        bench.run("Cut power for 3 minutes")
        cut = bench.bench.board.record, bench.bench.cell.plated_uAh, bench.t_s, bench.player.state
        bench.run(AFTER_CUT)
        s = bench.summary()
        return before, cut, s, _event_keys(bench.events), bench.frame


@pytest.mark.parametrize("backend", ["cpython", "micropython", "unix-32", "qemu"])
def test_a_power_cut_over_hil_leaves_the_record_and_the_plated_charge_as_in_process(request, backend):
    image = {"unix-32": "micropython_32", "qemu": "qemu_firmware"}.get(backend)
    ref = _cut("inprocess")
    before, cut, s, events, frame = _cut(backend, image and str(request.getfixturevalue(image)))
    assert before[0] is not None and before == ref[0]
    # off: the board keeps the record (its flash) and the cell rests; the firmware is
    # gone (no frame since: BOOT) until the next tick
    assert cut[0] == before[0] and cut[1] == pytest.approx(before[1]) and cut[2] == before[2] + 180
    assert cut == ref[1] and cut[3] == "BOOT"
    assert s["complete"] is True, s.get("why")
    assert (s["boots"], s["power_cuts_s"]) == (2, [[before[2], before[2] + 180]]) == (ref[2]["boots"],
                                                                                    ref[2]["power_cuts_s"])
    assert s["plated_uAh_end"] == ref[2]["plated_uAh_end"] and frame == ref[4]
    assert events == ref[3] and ("STATE", None, "FORMING") in [e[:3] for e in events if e[3] > cut[2]]
    assert s["link"]["twin"]["bad_crc"] == 0 and s["link_lost"] is False


def test_a_firmware_that_does_not_start_again_after_a_cut_is_dead_and_the_board_safe(monkeypatch):
    with open_bench("cpython") as bench:
        bench.run("Wait until state PLATE within 1 hour")
        assert bench.bench.board.relay_closed

        def no_start():
            raise FirmwareFailed("cpython firmware: no frame from the firmware within 1 s (it said 'boom')")
        monkeypatch.setattr(bench._loop.supply, "on", no_start)
        with pytest.raises(FirmwareGone, match="did not start again after a power cut: cpython firmware: no frame"):
            bench.run("Cut power for 1 minute")
        s = bench.summary()
        assert s["hil"]["firmware_dead"] is True and s["link_lost"] is True and s["power_cuts_s"]
        assert (s["hil"]["board_setpoint_ua"], s["hil"]["board_relay_closed"]) == (0, False)


def test_a_firmware_on_a_port_has_the_cut_refused_before_anything_runs():
    protocol = Protocol.from_file(scenarios()["power_cut_verify"])
    first = next(step for step in protocol.distinct_steps() if refusal(step))
    assert [step.kind for step in protocol.distinct_steps() if refusal(step, power_switch=True)] == []
    with open_bench("serial:pty") as bench:
        with pytest.raises(StepRefused, match="line %d: 'Cut power for 10 minutes' cannot run over HIL: the twin "
                                              "holds no power switch" % first.line_no):
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
    # the last line: before it, a loaded machine may add the link's retries (timer ones)
    assert done.stderr.splitlines()[-1] == "bms-twin hil: line 3: 'Expect state FAULT' failed: state READY/RESTING"
    assert all(line.startswith("link faults seen by the twin: ") for line in done.stderr.splitlines()[:-1])
    s = json.loads((tmp_path / "wrong" / "summary.json").read_text())
    assert s["complete"] is False and s["why"].startswith("line 3: ")


def test_bms_twin_hil_cuts_the_power_of_the_firmware_it_started(tmp_path):
    done = _hil_cli("--firmware", "cpython", "--protocol", "power_cut_verify", "--out", str(tmp_path / "cut"))
    assert done.returncode == 0, done.stderr
    s = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert s["expectations"] == {"passed": 5, "failed": None} and s["final_state"] == "READY"
    assert s["boots"] == 2 and len(s["power_cuts_s"]) == 1
    # the firmware that ran the end of the session ended it cleanly
    assert s["hil"]["end_acked"] is True and s["hil"]["firmware_exit_code"] == 0


@pytest.mark.parametrize("args, why", [
    (["--port", "pty", "--protocol", "power_cut_verify"], "line 5: 'Cut power for 10 minutes' cannot run over "
                                                          "HIL: the twin holds no power switch of a firmware on a port"),
    (["--protocol", "short_at_boot", "--duration-s", "60"], "--duration-s=60.0: not with --protocol"),
    (["--protocol", "short_at_boot", "--realtime"], "--realtime=None: not with --protocol"),
    (["--protocol", "nope"], "--protocol='nope': no such file, nor a shipped protocol of that name"),
])
def test_bms_twin_hil_refuses_what_the_link_cannot_play_before_anything_runs(tmp_path, args, why):
    where = [] if "--port" in args else ["--firmware", "cpython"]
    done = _hil_cli(*where, "--out", str(tmp_path / "o"), *args)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith("bms-twin hil: " + why), done.stderr
    assert not (tmp_path / "o").exists()
