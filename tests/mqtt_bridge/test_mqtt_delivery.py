"""A run that cannot deliver says so: the bridge says why it cannot connect (a wrong
CA by its TLS reason, a refused password, nobody listening) once per reason;
`bms-twin run` waits a little, then exits 1 with one line on stderr, and its
summary.json says "complete": false, why, and what was published, acknowledged
and is still queued. A run that delivered reports that too, and the console's
watch hint for a TLS broker is a command that works. Real Mosquitto with TLS,
passwords and docs/acl.example (conftest.secure_broker), real `bms-twin run`.
Run: .venv/bin/python -m pytest tests/mqtt_bridge/test_mqtt_delivery.py -q
"""

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mqtt_bridge import Bridge
from mqtt_bridge.config import PASSWORD_ENV
from mqtt_bridge.sink import CLOSE_TIMEOUT_S
from mqtt_helpers import DEVICE_PASSWORD, event_frame, free_port, wait_until

BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))


def run_cli(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([BMS_TWIN, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


@pytest.fixture
def short_duty(tmp_path):
    duty = tmp_path / "duty.txt"
    duty.write_text("Rest for 1 minute\n")
    return str(duty)


def _failing_bridge(kind, secure_broker, wrong_ca, device_id, queue_path):
    broker, ca = secure_broker
    if kind == "wrong CA":
        return Bridge(device_id, "mqtts://%s@localhost:%d" % (device_id, broker.port), password=DEVICE_PASSWORD,
                      username=device_id, tls_ca=wrong_ca, queue_path=queue_path, discovery=False,
                      reconnect_min_s=0.2, reconnect_max_s=0.2)
    if kind == "wrong password":
        return Bridge(device_id, "mqtts://localhost:%d" % broker.port, username=device_id, password="not-it",
                      tls_ca=ca, queue_path=queue_path, discovery=False, reconnect_min_s=0.2, reconnect_max_s=0.2)
    return Bridge(device_id, "mqtt://127.0.0.1:%d" % free_port(), queue_path=queue_path, discovery=False,
                  reconnect_min_s=0.2, reconnect_max_s=0.2)


@pytest.mark.parametrize("kind, said", [("wrong CA", "TLS: certificate verify failed"),
                                        ("wrong password", "broker refused the connection: Not authorized"),
                                        ("nobody listening", "Connection refused")])
def test_a_failed_connection_is_said_once_per_reason_and_reported(kind, said, secure_broker, wrong_ca, device_id,
                                                                  tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mqtt_bridge")
    bridge = _failing_bridge(kind, secure_broker, wrong_ca, device_id, str(tmp_path / "q.sqlite")).start()
    try:
        bridge.publish_frame(event_frame(device_id, 1, 0))
        assert wait_until(lambda: bridge.stats()["connect_failures"] >= 3, timeout=20)
        assert bridge.last_connect_error.startswith(said), bridge.last_connect_error
        lines = [r.getMessage() for r in caplog.records if "cannot connect" in r.getMessage()]
        assert len(lines) == 1 and said in lines[0] and str(tmp_path / "q.sqlite") in lines[0]
        assert not bridge.connected
    finally:
        bridge.stop()
    delivery = bridge.delivery()
    assert (delivery["connected"], delivery["still_queued"], delivery["acknowledged"]) == (False, 1, 0)
    assert delivery["why"].startswith("MQTT: never connected to ") and said in delivery["why"]
    assert "1 message(s) not acknowledged" in delivery["why"]


@pytest.mark.slow
def test_bms_twin_run_with_a_wrong_ca_exits_1_and_says_why(secure_broker, wrong_ca, device_id, tmp_path, short_duty):
    broker, _ca = secure_broker
    out = tmp_path / "run"
    queue = str(tmp_path / "q.sqlite")
    proc = run_cli("run", "--protocol", short_duty, "--out", str(out), "--device-id", device_id,
                   "--broker", "mqtts://%s@localhost:%d" % (device_id, broker.port), "--tls-ca", wrong_ca,
                   "--mqtt-queue", queue, "--no-discovery", env={PASSWORD_ENV: DEVICE_PASSWORD})
    assert proc.returncode == 1, proc.stderr
    where = "localhost:%d" % broker.port
    assert "cannot connect to %s: TLS: certificate verify failed" % where in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("bms-twin run: MQTT: never connected to %s (TLS: certificate verify failed" % where)
    assert "still queued in %s" % queue in last
    assert ("MQTT: not connected to %s (TLS: certificate verify failed" % where in proc.stdout
            and "waiting up to %.0f s" % CLOSE_TIMEOUT_S in proc.stdout)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["why"] == last[len("bms-twin run: "):]
    delivery = summary["delivery"]
    assert delivery["connected"] is False and delivery["acknowledged"] == 0
    assert delivery["events_stored"] > 0 and delivery["still_queued"] >= delivery["events_stored"]
    # offline, a newer state replaced each older one in the queue: one of them is left to send
    assert delivery["stored"] == delivery["still_queued"] + delivery["coalesced"]
    assert delivery["broker"] == "mqtts://%s:***@localhost:%d" % (device_id, broker.port)   # the password hidden
    assert (out / "events.jsonl").exists() and (out / "timeseries.csv").exists()
    assert DEVICE_PASSWORD not in proc.stdout + proc.stderr + (out / "summary.json").read_text()


@pytest.mark.slow
def test_a_delivered_tls_run_reports_it_and_its_watch_hint_works(secure_broker, device_id, tmp_path, short_duty):
    broker, ca = secure_broker
    out = tmp_path / "run"
    url = "mqtts://%s:%s@localhost:%d" % (device_id, DEVICE_PASSWORD, broker.port)
    proc = run_cli("run", "--protocol", short_duty, "--out", str(out), "--device-id", device_id, "--broker", url,
                   "--tls-ca", ca, "--mqtt-queue", str(tmp_path / "q.sqlite"), "--no-discovery")
    assert proc.returncode == 0, proc.stderr
    delivery = json.loads((out / "summary.json").read_text())["delivery"]
    assert delivery["why"] is None and delivery["connected"] is True and delivery["still_queued"] == 0
    assert delivery["stored"] + delivery["replayed"] == (delivery["acknowledged"] + delivery["still_queued"]
                                                         + delivery["evicted"] + delivery["coalesced"])
    assert delivery["broker"] == "mqtts://%s:***@localhost:%d" % (device_id, broker.port)
    [line] = [ln for ln in proc.stdout.splitlines() if ln.startswith("MQTT: publishing")]
    hint = line.split("watch with: ", 1)[1]
    command, note = hint.split(" (", 1)
    assert command == "bms-twin watch --broker mqtts://%s@localhost:%d --tls-ca %s" % (device_id, broker.port,
                                                                                      shlex.quote(ca))
    assert note == "password from $%s) (add --speed 600 to follow a run live)" % PASSWORD_ENV
    # status, state and limits are retained: three updates to see
    argv = shlex.split(command)[1:] + ["--device", device_id, "--count", "3", "--timeout", "20"]
    watch = run_cli(*argv, env={PASSWORD_ENV: DEVICE_PASSWORD})
    assert watch.returncode == 0, watch.stderr
    last_table = watch.stdout.strip().split("\n\n")[-1]
    assert device_id in last_table and "READY" in last_table


def test_watch_says_why_it_cannot_connect(secure_broker, wrong_ca, device_id):
    broker, _ca = secure_broker
    watch = run_cli("watch", "--broker", "mqtts://localhost:%d" % broker.port, "--tls-ca", wrong_ca, "--once",
                    "--timeout", "3")
    assert watch.returncode == 1
    assert watch.stderr.count("watch: cannot connect to localhost:%d: TLS: certificate verify failed"
                              % broker.port) == 1
    plain = run_cli("watch", "--broker", "mqtt://localhost:%d" % broker.port, "--tls-ca", wrong_ca, "--once")
    assert plain.returncode == 2 and "use mqtts://" in plain.stderr


def test_watch_refused_by_the_broker_says_so_and_exits_1(secure_broker, device_id):
    broker, ca = secure_broker
    watch = run_cli("watch", "--broker", "mqtts://%s@localhost:%d" % (device_id, broker.port), "--tls-ca", ca,
                    "--once", "--timeout", "10", env={PASSWORD_ENV: "not-the-password"})
    assert watch.returncode == 1, watch.stderr
    assert "watch: broker refused connection" in watch.stderr and "Traceback" not in watch.stderr
    assert "not-the-password" not in watch.stderr


def test_messages_the_broker_refuses_are_said_and_reported(secure_broker, device_id, tmp_path, caplog):
    """Logged in as another device, the ACL lets this one write nothing of its own (MQTT 5: 135)."""
    caplog.set_level(logging.WARNING, logger="mqtt_bridge")
    broker, ca = secure_broker
    bridge = Bridge(device_id, "mqtts://localhost:%d" % broker.port, username="other-" + device_id,
                    password="other-pw", tls_ca=ca, queue_path=str(tmp_path / "q.sqlite")).start()
    try:
        assert bridge.wait_connected(10)
        bridge.publish_frame(event_frame(device_id, 1, 0))
        assert bridge.flush(10)
        stats = bridge.stats()
        assert stats["rejected_by_broker"] == 1                  # the stored event
        assert stats["refused_other"] >= 1                        # status "online", the discovery configs
        said = [r.getMessage() for r in caplog.records if "the broker refused" in r.getMessage()]
        assert len(said) == 1
    finally:
        bridge.stop()
    delivery, stats = bridge.delivery(), bridge.stats()     # the "offline" at stop was refused too
    assert delivery["refused_by_broker"] == stats["rejected_by_broker"] + stats["refused_other"]
    assert "localhost:%d refused %d message(s)" % (broker.port, delivery["refused_by_broker"]) in delivery["why"]


@pytest.mark.slow
def test_bms_twin_hil_reports_its_delivery_and_exits_1_when_it_could_not(shared_broker, device_id, tmp_path):
    """`bms-twin hil` closes its sinks before it writes the run files, so summary.json
    says what was delivered, as `bms-twin run`'s does."""
    host, port = shared_broker
    common = ["hil", "--firmware", "cpython", "--duration-s", "20", "--device-id", device_id, "--no-discovery"]
    good = run_cli(*common, "--out", str(tmp_path / "good"), "--broker", "mqtt://%s:%d" % (host, port),
                   "--mqtt-queue", str(tmp_path / "good.sqlite"))
    assert good.returncode == 0, good.stderr
    delivered = json.loads((tmp_path / "good" / "summary.json").read_text())
    assert delivered.get("complete") is not False and delivered["delivery"]["connected"] is True
    assert delivered["delivery"]["acknowledged"] > 0 and delivered["delivery"]["still_queued"] == 0
    nobody = "127.0.0.1:%d" % free_port()
    bad = run_cli(*common, "--out", str(tmp_path / "bad"), "--broker", "mqtt://" + nobody,
                  "--mqtt-queue", str(tmp_path / "bad.sqlite"))
    assert bad.returncode == 1, bad.stderr
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("bms-twin hil: MQTT: never connected to %s" % nobody), bad.stderr
    summary = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert summary["complete"] is False and summary["why"] == last[len("bms-twin hil: "):]
    assert summary["delivery"]["acknowledged"] == 0 and summary["delivery"]["still_queued"] > 0
