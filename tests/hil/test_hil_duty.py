"""Cycler steps over HIL (REQUEST, docs/hil.md): a short duty after formation on
d111 played by `bms-twin hil --firmware cpython --protocol FILE` writes the same
timeseries.csv and events.jsonl, byte for byte, as `bms-twin run --protocol FILE`
for the same seed, and the same player's report in summary.json.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))

DUTY = """Wait until formed within 48 hours
Charge at 100 uA for 10 minutes
Rest for 5 minutes
Discharge at 100 uA for 5 minutes
"""


def _cli(*args):
    return subprocess.run([BMS_TWIN, *args, "--no-mqtt"], capture_output=True, text=True, timeout=600)


def test_a_duty_over_hil_writes_the_files_bms_twin_run_writes(tmp_path):
    duty = tmp_path / "duty.txt"
    duty.write_text(DUTY)
    run = _cli("run", "--protocol", str(duty), "--seed", "3", "--out", str(tmp_path / "run"))
    assert run.returncode == 0, run.stderr
    hil = _cli("hil", "--firmware", "cpython", "--protocol", str(duty), "--seed", "3", "--out", str(tmp_path / "hil"))
    assert hil.returncode == 0, hil.stderr
    for name in ("timeseries.csv", "events.jsonl"):
        assert (tmp_path / "hil" / name).read_bytes() == (tmp_path / "run" / name).read_bytes(), name
    a = json.loads((tmp_path / "run" / "summary.json").read_text())
    b = json.loads((tmp_path / "hil" / "summary.json").read_text())
    assert [s["stop_reason"] for s in b["steps"]] == ["time", "time", "time"]
    # everything the two runs share is the same (wall time and the link's own report apart)
    own = {"wall_seconds", "speed_factor", "hil", "link", "link_lost"}
    assert {k: v for k, v in b.items() if k not in own} == {k: v for k, v in a.items() if k not in own}
    assert b["link"]["firmware"]["bad_payload"] == 0 and b["link_lost"] is False
