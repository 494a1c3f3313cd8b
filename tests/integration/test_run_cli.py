"""`bms-twin run` end to end through the console script: run files, power cuts,
and telemetry on a real Mosquitto (the machine's broker on 127.0.0.1:1883).
Run: .venv/bin/python -m pytest tests/integration/test_run_cli.py
"""
import csv
import json
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))
SHORT_DUTY = "Discharge at 100 uA for 15 minutes\nCharge at 100 uA for 15 minutes\n"


# slow (not in the fast lane, -m 'not slow'): whole `bms-twin run` processes
pytestmark = pytest.mark.slow


def run_cli(*args, timeout=300):
    return subprocess.run([BMS_TWIN, *args], capture_output=True, text=True, timeout=timeout)


def test_run_forms_the_cell_and_writes_every_run_file(tmp_path):
    duty = tmp_path / "duty.txt"
    duty.write_text(SHORT_DUTY)
    out = tmp_path / "run"
    done = run_cli("run", "--cell", "d111", "--protocol", str(duty), "--out", str(out), "--seed", "4",
                   "--no-mqtt", "--power-cut-at", "3000")
    assert done.returncode == 0, done.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["final_state"] == "READY" and s["faults"] == []
    for key in ("plated_uAh", "counted_uAh", "duration_s", "max_current_density_uA_cm2"):
        assert s["formation"][key] > 0, key
    assert s["formation"]["counted_uAh"] >= 200
    assert s["layer_cracked"] is False
    assert 0.0 < s["retained_fraction"] < 1.0                # most lithium is still on the electrode
    assert s["boots"] == 2                                   # the power cut rebooted the firmware
    assert s["sim_seconds"] > s["wall_seconds"] > 0
    with open(out / "timeseries.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {"time_s", "state", "voltage_V", "current_A", "inventory_uAh", "ccl_ua", "dcl_ua"} <= set(rows[0])
    assert rows[-1]["state"] == "READY"
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("FORMATION_DONE") == 1
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)   # one numbering across the reboot
    for name in ("voltage.png", "inventory.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_run_publishes_state_limits_telemetry_and_events_to_a_broker(tmp_path):
    duty = tmp_path / "duty.txt"
    duty.write_text(SHORT_DUTY)
    seed = int(uuid.uuid4().int % 9000) + 1000               # a device id no other test uses
    device = f"d111-{seed:04d}"
    got: dict = {}
    lock = threading.Lock()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-run-{seed}")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"bms/{device}/#", qos=1)
    client.on_subscribe = lambda *a: subscribed.set()

    def on_message(c, u, msg):
        kind = msg.topic.rsplit("/", 1)[-1]
        # status is plain online/offline (what Home Assistant expects); the rest is JSON
        value = msg.payload.decode() if kind == "status" else json.loads(msg.payload or b"null")
        with lock:
            got.setdefault(kind, []).append(value)

    client.on_message = on_message
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        done = run_cli("run", "--protocol", str(duty), "--out", str(tmp_path / "run"), "--seed", str(seed),
                       "--broker", "mqtt://127.0.0.1:1883", "--mqtt-queue", str(tmp_path / "q.sqlite"),
                       "--no-discovery")
        assert done.returncode == 0, done.stderr
        assert f"bms/{device}/#" in done.stdout
    finally:
        client.loop_stop()
        client.disconnect()
        # leave no retained messages behind for other tests or dashboards
        cleaner = mqtt.Client(CallbackAPIVersion.VERSION2)
        cleaner.connect("127.0.0.1", 1883)
        for kind in ("status", "state", "limits"):
            cleaner.publish(f"bms/{device}/{kind}", b"", qos=1, retain=True).wait_for_publish(5)
        cleaner.disconnect()
    events = json.loads((tmp_path / "run" / "summary.json").read_text())["events"]
    with lock:
        assert "telemetry" in got and "state" in got and "limits" in got
        seqs = [e["seq"] for e in got.get("event", [])]
        assert sorted(set(seqs)) == list(range(1, events + 1))   # every event arrived
        assert got["state"][-1]["state"] == "READY"
        assert got["status"][0] == "online" and got["status"][-1] == "offline"
