"""Where a reply may go, and that no command's MQTT 5 properties can stop the device
or make it publish elsewhere (mqtt_bridge/reply_to.py, docs/mqtt.md §4). Real
Mosquitto (the shared one; the run test starts `bms-twin run` against it), real
MQTT 5 properties: Response Topic with wildcards, empty, elsewhere, too long, too
deep; Correlation Data too long or shared by two clients; a flood of user
properties; command names no reply topic can be made of; a Response Topic that is
not UTF-8 (sent as raw bytes: the broker drops its sender).
Run: .venv/bin/python -m pytest tests/mqtt_bridge/test_mqtt_reply_routing.py -q
"""

import json
import logging
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mqtt_bridge import Bridge
from mqtt_bridge.reply_to import MAX_CORRELATION_BYTES, MAX_SUFFIX_LEVELS
from mqtt_bridge.schemas import validator
from mqtt_helpers import (SHARED_BROKER, WAIT_S, Collector, FakeController, connect_client, publish_properties,
                          telemetry_frame, wait_until)

CHARGE = b'{"current_ua": 100, "request_id": "c1"}'    # passes every check of the bridge


@pytest.fixture
def rig(shared_broker, device_id, tmp_path):
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery=False).start()
    assert bridge.wait_connected(WAIT_S)
    col = Collector(*shared_broker, ["bms/%s/#" % device_id, "bms/other-%s/#" % device_id, "x/#",
                                     "replies/%s/#" % device_id]).start()
    operator = connect_client(*shared_broker, protocol=5)
    yield bridge, col, operator
    operator.disconnect()
    operator.loop_stop()
    col.stop()
    bridge.stop()


def send(operator, device_id: str, name: str, payload: bytes = CHARGE, **props) -> None:
    operator.publish("bms/%s/cmd/%s" % (device_id, name), payload, qos=1,
                     properties=publish_properties(**props) if props else None).wait_for_publish(WAIT_S)


def replies(col: Collector, topic: str) -> list:
    """(payload doc, properties) of each reply on topic, each checked against reply.json."""
    out = []
    for _topic, payload, _retain, props in col.on(topic):
        doc = json.loads(payload)
        assert not list(validator("reply").iter_errors(doc)), doc
        out.append((doc, props))
    return out


def stray_replies(col: Collector, device_id: str, own: str | None = None) -> list:
    """Topics other than `own` on which a reply of this device arrived."""
    return [m[0] for m in col.messages if m[0] != own and b'"bms-reply/1"' in m[1] and device_id.encode() in m[1]]


@pytest.mark.parametrize("response_topic", ["x/+/y", "x/#", "+", "#", "bms/{id}/cmd/charge/reply/+",
                                            "bms/{id}/cmd/charge/reply/#"])
def test_a_wildcard_response_topic_is_refused_and_the_device_runs_on(rig, device_id, response_topic, caplog):
    bridge, col, operator = rig
    caplog.set_level(logging.WARNING, logger="mqtt_bridge")
    send(operator, device_id, "charge", ResponseTopic=response_topic.format(id=device_id), CorrelationData=b"k1")
    own = "bms/%s/cmd/charge/reply" % device_id
    assert col.wait_for(lambda m: col.on(own))
    [(doc, props)] = replies(col, own)
    assert (doc["code"], doc["ok"], doc["request_id"]) == ("BAD_RESPONSE_TOPIC", False, "c1")
    assert props.CorrelationData == b"k1"
    controller = FakeController()
    assert bridge.drain_commands(controller) == [] and controller.calls == []    # nothing queued, nothing raised
    assert bridge.connected
    assert any("BAD_RESPONSE_TOPIC" in r.getMessage() for r in caplog.records)
    # and the device still takes a command
    send(operator, device_id, "rest", b'{"request_id": "r1"}')
    assert wait_until(lambda: bridge.pending_commands() == 1)
    assert bridge.drain_commands(controller) == [("rest", True, "OK")]


@pytest.mark.parametrize("aimed_at", [
    "bms/{id}/event", "bms/{id}/state", "bms/{id}/status", "bms/{id}/telemetry", "bms/{id}/cmd/charge",
    "bms/{id}/cmd/stop/reply", "bms/other-{id}/cmd/charge/reply", "bms/{id}/cmd/charge/replyx",
    "", "replies/{id}/op1", "bms/{id}/cmd/charge/reply/", "bms/{id}/cmd/charge/reply//a",
    "bms/{id}/cmd/charge/reply/" + "/".join(["l"] * (MAX_SUFFIX_LEVELS + 1)),
    "bms/{id}/cmd/charge/reply/" + "y" * 65, "bms/{id}/cmd/charge/reply/" + "z" * 60_000,
    "bms/{id}/cmd/charge/reply/sp ace", "bms/{id}/cmd/charge/reply/\u00fc",
])
def test_a_reply_cannot_be_aimed_anywhere_but_under_the_commands_reply_topic(rig, device_id, aimed_at):
    bridge, col, operator = rig
    target = aimed_at.format(id=device_id)
    send(operator, device_id, "charge", ResponseTopic=target)
    own = "bms/%s/cmd/charge/reply" % device_id
    assert col.wait_for(lambda m: col.on(own))
    [(doc, _props)] = replies(col, own)
    assert doc["code"] == "BAD_RESPONSE_TOPIC" and len(doc["message"]) < 300   # a 60 kB topic is not echoed
    assert bridge.drain_commands(FakeController()) == []
    assert stray_replies(col, device_id, own) == []
    # not kicked off by the broker (a publish to "" would have been): the one connection still up
    assert bridge.connected and bridge.stats()["connects"] == 1


@pytest.mark.parametrize("suffix", ["", "/op-1", "/" + "/".join(["a.b_c-D"] * MAX_SUFFIX_LEVELS), "/" + "q" * 64])
def test_a_response_topic_under_the_reply_topic_gets_the_reply_and_its_correlation(rig, device_id, suffix):
    bridge, col, operator = rig
    topic = "bms/%s/cmd/charge/reply%s" % (device_id, suffix)
    send(operator, device_id, "charge", ResponseTopic=topic, CorrelationData=b"\x00\xffc")
    assert wait_until(lambda: bridge.pending_commands() == 1)
    controller = FakeController()
    assert bridge.drain_commands(controller) == [("charge", True, "OK")]
    assert col.wait_for(lambda m: col.on(topic))
    [(doc, props)] = replies(col, topic)
    assert doc["code"] == "OK" and props.CorrelationData == b"\x00\xffc"


def test_correlation_data_longer_than_the_limit_is_refused_without_being_echoed(rig, device_id):
    bridge, col, operator = rig
    topic = "bms/%s/cmd/charge/reply/op" % device_id
    send(operator, device_id, "charge", ResponseTopic=topic, CorrelationData=b"k" * MAX_CORRELATION_BYTES)
    send(operator, device_id, "charge", b'{"current_ua": 7}', ResponseTopic=topic,
         CorrelationData=b"k" * (MAX_CORRELATION_BYTES + 1))
    send(operator, device_id, "charge", b'{"current_ua": 8}', ResponseTopic=topic, CorrelationData=b"m" * 65_000)
    assert wait_until(lambda: bridge.pending_commands() == 1)
    controller = FakeController()
    assert bridge.drain_commands(controller) == [("charge", True, "OK")]
    assert [c[1]["current_ua"] for c in controller.calls] == [100]
    assert col.wait_for(lambda m: len(col.on(topic)) == 3)
    got = sorted((doc["code"], getattr(props, "CorrelationData", None) or b"") for doc, props in replies(col, topic))
    assert got == [("BAD_CORRELATION_DATA", b""), ("BAD_CORRELATION_DATA", b""), ("OK", b"k" * MAX_CORRELATION_BYTES)]


def test_user_properties_are_ignored_and_not_echoed(rig, device_id):
    bridge, col, operator = rig
    topic = "bms/%s/cmd/charge/reply" % device_id
    send(operator, device_id, "charge", UserProperty=[("k%d" % i, "v" * 100) for i in range(500)])
    assert wait_until(lambda: bridge.pending_commands() == 1)
    assert bridge.drain_commands(FakeController()) == [("charge", True, "OK")]
    assert col.wait_for(lambda m: col.on(topic))
    [(doc, props)] = replies(col, topic)
    assert doc["code"] == "OK" and not getattr(props, "UserProperty", None)


def test_clients_that_share_correlation_data_do_not_swallow_each_others_commands(rig, device_id):
    bridge, col, operator = rig
    second = connect_client(*SHARED_BROKER, protocol=5)
    try:
        base = "bms/%s/cmd/charge/reply/" % device_id
        send(operator, device_id, "charge", ResponseTopic=base + "a", CorrelationData=b"1")
        send(second, device_id, "charge", ResponseTopic=base + "b", CorrelationData=b"1")
        send(operator, device_id, "charge", b'{"current_ua": 200, "request_id": "c1"}', ResponseTopic=base + "a",
             CorrelationData=b"1")                                   # the same numbers, other arguments
        assert wait_until(lambda: bridge.pending_commands() == 3)
        controller = FakeController()
        assert len(bridge.drain_commands(controller, max_commands=3)) == 2   # BLIND_COMMANDS_PER_DRAIN
        assert len(bridge.drain_commands(controller)) == 1
        assert sorted(c[1]["current_ua"] for c in controller.calls) == [100, 100, 200]
        # the very same message again (a QoS 1 redelivery) runs once: the first answer is sent again
        send(second, device_id, "charge", ResponseTopic=base + "b", CorrelationData=b"1")
        assert col.wait_for(lambda m: len(col.on(base + "b")) == 2)
        assert bridge.drain_commands(controller) == [] and len(controller.calls) == 3
        assert bridge.stats()["commands_duplicate"] == 1
    finally:
        second.disconnect()
        second.loop_stop()


@pytest.mark.parametrize("name", ["a/b/c", "charge/now/please", "sp ace", "\u00fcber", "n" * 33, "a" * 5000])
def test_a_command_no_reply_topic_can_be_made_for_is_counted_not_answered(rig, device_id, name, caplog):
    bridge, col, operator = rig
    caplog.set_level(logging.WARNING, logger="mqtt_bridge")
    send(operator, device_id, name, ResponseTopic="bms/%s/cmd/%s/reply" % (device_id, name))
    assert wait_until(lambda: bridge.stats().get("commands_unanswerable") == 1)
    bridge.publish_frame(telemetry_frame(device_id, 0))         # published after any reply would have been
    assert bridge.flush(WAIT_S) and col.wait_for(lambda m: col.on("bms/%s/state" % device_id))
    assert stray_replies(col, device_id) == []
    assert any("UNANSWERABLE" in r.getMessage() for r in caplog.records)
    assert bridge.connected and bridge.drain_commands(FakeController()) == []


def test_an_unknown_two_level_name_is_answered_on_its_reply_topic(rig, device_id):
    bridge, col, operator = rig
    send(operator, device_id, "warp/now", b"{}")
    topic = "bms/%s/cmd/warp/now/reply" % device_id
    assert col.wait_for(lambda m: col.on(topic))
    assert replies(col, topic)[0][0]["code"] == "UNKNOWN_COMMAND"


def _mqtt_string(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def _varint(n: int) -> bytes:
    out = b""
    while True:
        n, digit = divmod(n, 128)
        out += bytes([digit | (0x80 if n else 0)])
        if not n:
            return out


def _packet(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + _varint(len(body)) + body


def test_a_response_topic_that_is_not_utf8_never_reaches_the_device(rig, device_id):
    """paho cannot send it, so the bytes are written by hand: the broker drops their sender."""
    bridge, col, operator = rig
    with socket.create_connection(SHARED_BROKER, timeout=WAIT_S) as raw:
        connect = _mqtt_string(b"MQTT") + bytes([5, 0x02]) + struct.pack("!H", 30) + _varint(0)
        raw.sendall(_packet(0x10, connect + _mqtt_string(b"raw-" + device_id.encode())))
        assert raw.recv(64)[:1] == b"\x20"                          # CONNACK
        props = b"\x08" + _mqtt_string(b"bms/" + device_id.encode() + b"/cmd/charge/reply/\xff\xfe")
        publish = _mqtt_string(("bms/%s/cmd/charge" % device_id).encode()) + _varint(len(props)) + props + CHARGE
        raw.sendall(_packet(0x30, publish))
        rest = b""
        while True:
            chunk = raw.recv(64)
            if not chunk:
                break
            rest += chunk
        assert rest == b"" or rest[:1] == b"\xe0"                  # closed, or DISCONNECT first
    send(operator, device_id, "rest", b'{"request_id": "after"}')
    assert wait_until(lambda: bridge.pending_commands() == 1)
    controller = FakeController()
    assert bridge.drain_commands(controller) == [("rest", True, "OK")]
    assert [c[0] for c in controller.calls] == ["rest"] and bridge.connected
    assert not col.on("bms/%s/cmd/charge/reply" % device_id)


BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))


@pytest.mark.slow
def test_bms_twin_run_survives_a_command_with_a_wildcard_response_topic(shared_broker, device_id, tmp_path):
    duty = tmp_path / "duty.txt"
    duty.write_text("Rest for 30 minutes\n")
    out = tmp_path / "run"
    col = Collector(*shared_broker, ["bms/%s/#" % device_id]).start()
    operator = connect_client(*shared_broker, protocol=5)
    proc = subprocess.Popen([BMS_TWIN, "run", "--protocol", str(duty), "--out", str(out), "--device-id", device_id,
                             "--broker", "mqtt://127.0.0.1:1883", "--mqtt-queue", str(tmp_path / "q.sqlite"),
                             "--no-discovery", "--speed", "2000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert col.wait_for(lambda m: any(p == b"online" for _t, p, *_ in col.on("bms/%s/status" % device_id)),
                            timeout=30)
        for response_topic in ("x/+/y", "x/#", ""):
            send(operator, device_id, "charge", ResponseTopic=response_topic, CorrelationData=b"k")
        own = "bms/%s/cmd/charge/reply" % device_id
        assert col.wait_for(lambda m: len(col.on(own)) == 3, timeout=30)
        assert {doc["code"] for doc, _p in replies(col, own)} == {"BAD_RESPONSE_TOPIC"}
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        summary = json.loads((out / "summary.json").read_text())
        assert summary["final_state"] == "READY" and summary["delivery"]["why"] is None
        assert summary["delivery"]["commands"]["rejected"] == 3 and summary["delivery"]["connects"] == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        operator.disconnect()
        operator.loop_stop()
        col.stop()
