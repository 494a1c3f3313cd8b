"""Commands end to end on the shared mosquitto: checked, queued, run on the
caller's thread by drain_commands, answered with correlation (MQTT 5 response
topic + correlation data; request_id for MQTT 3.1.1)."""

import json
import threading
import time

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_bridge import Bridge
from mqtt_bridge.schemas import validator
from mqtt_helpers import Collector, FakeController, connect_client, telemetry_frame


@pytest.fixture
def rig(shared_broker, device_id, tmp_path):
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery=False).start()
    assert bridge.wait_connected(10)
    replies = Collector(*shared_broker, ["bms/%s/cmd/#" % device_id]).start()
    operator = connect_client(*shared_broker, protocol=5)
    operator311 = connect_client(*shared_broker, protocol=4)
    yield bridge, replies, operator, operator311
    for client in (operator, operator311):
        client.disconnect()
        client.loop_stop()
    replies.stop()
    bridge.stop()


def reply_docs(col: Collector, topic: str) -> list:
    docs = col.json_on(topic)
    for doc in docs:
        assert not list(validator("reply").iter_errors(doc)), doc
    return docs


def wait_pending(bridge: Bridge, n: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while bridge.pending_commands() < n:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_mqtt5_command_runs_on_the_callers_thread_and_reply_correlates(rig, device_id):
    bridge, replies, operator, _ = rig
    props = Properties(PacketTypes.PUBLISH)
    response_topic = "bms/%s/cmd/charge/reply/op1" % device_id   # replies may go under the reply topic only
    props.ResponseTopic = response_topic
    props.CorrelationData = b"corr-42"
    operator.publish("bms/%s/cmd/charge" % device_id, json.dumps({"current_ua": 150, "duration_s": 60}),
                     qos=1, properties=props)
    assert wait_pending(bridge, 1)
    controller = FakeController()
    assert controller.calls == []           # queued, not executed by the network thread
    assert bridge.drain_commands(controller) == [("charge", True, "OK")]
    assert controller.calls == [("charge", {"current_ua": 150, "duration_s": 60}, threading.get_ident())]
    assert replies.wait_for(lambda m: replies.on(response_topic))
    topic, payload, _retain, properties = replies.on(response_topic)[0]
    assert properties.CorrelationData == b"corr-42"
    doc = reply_docs(replies, topic)[0]
    assert (doc["command"], doc["ok"], doc["code"]) == ("charge", True, "OK")


def test_mqtt311_request_id_correlates_on_the_reply_topic(rig, device_id):
    bridge, replies, _, operator311 = rig
    operator311.publish("bms/%s/cmd/formation/start" % device_id, json.dumps({"request_id": "fs-1"}), qos=1)
    assert wait_pending(bridge, 1)
    controller = FakeController()
    bridge.drain_commands(controller)
    reply_topic = "bms/%s/cmd/formation/start/reply" % device_id
    assert replies.wait_for(lambda m: replies.on(reply_topic))
    doc = reply_docs(replies, reply_topic)[0]
    assert (doc["request_id"], doc["ok"], doc["command"]) == ("fs-1", True, "formation/start")
    assert [c[0] for c in controller.calls] == ["formation/start"]


def test_rejected_commands_are_answered_at_once_and_never_reach_the_controller(rig, device_id):
    bridge, replies, _, operator311 = rig
    bridge.publish_frame(telemetry_frame(device_id, 0, cvl_mv=2800))   # the bridge now knows the limits
    cases = [("charge", b'{"current_ua": -3, "request_id": "a"}', "OUT_OF_RANGE"),
             ("charge", b'{"current_ua": 3.5, "request_id": "b"}', "BAD_ARGS"),
             ("discharge", b"not json", "BAD_JSON"),
             ("set_limits", b'{"cvl_mv": 3000, "request_id": "c"}', "WOULD_LOOSEN_LIMITS"),
             ("charge", b'{"current_ua": 1, "pad": "' + b"x" * 5000 + b'"}', "PAYLOAD_TOO_LARGE"),
             ("warp", b"{}", "UNKNOWN_COMMAND")]
    for name, raw, _code in cases:
        operator311.publish("bms/%s/cmd/%s" % (device_id, name), raw, qos=1)
    want = {name: code for name, _raw, code in cases}
    got = {}

    def all_answered(_msgs):
        got.clear()
        for topic, payload, *_ in replies.messages:
            if topic.endswith("/reply"):
                doc = json.loads(payload)
                got.setdefault(doc["command"], []).append(doc["code"])
        return sum(len(v) for v in got.values()) >= len(cases)

    assert replies.wait_for(all_answered)
    assert {k: sorted(v) for k, v in got.items()} == {
        "charge": sorted(["OUT_OF_RANGE", "BAD_ARGS", "PAYLOAD_TOO_LARGE"]), "discharge": ["BAD_JSON"],
        "set_limits": ["WOULD_LOOSEN_LIMITS"], "warp": ["UNKNOWN_COMMAND"]}
    assert set(want) == set(got)
    controller = FakeController()
    assert bridge.pending_commands() == 0
    assert bridge.drain_commands(controller) == []
    assert controller.calls == [] and controller.limits["cvl_mv"] == 2800


def test_controller_refusal_code_is_passed_through(rig, device_id):
    bridge, replies, _, operator311 = rig

    class Refusing(FakeController):
        def command(self, name, args):
            super().command(name, args)
            return False, "NOT_ALLOWED_IN_STATE"

    operator311.publish("bms/%s/cmd/discharge" % device_id, b'{"current_ua": 10, "request_id": "d1"}', qos=1)
    assert wait_pending(bridge, 1)
    assert bridge.drain_commands(Refusing()) == [("discharge", False, "NOT_ALLOWED_IN_STATE")]
    topic = "bms/%s/cmd/discharge/reply" % device_id
    assert replies.wait_for(lambda m: replies.on(topic))
    assert reply_docs(replies, topic)[0]["code"] == "NOT_ALLOWED_IN_STATE"


def test_a_redelivered_request_id_runs_once_and_is_answered_twice(rig, device_id):
    bridge, replies, _, operator311 = rig
    controller = FakeController()
    topic = "bms/%s/cmd/stop" % device_id
    operator311.publish(topic, b'{"request_id": "same"}', qos=1)
    assert wait_pending(bridge, 1)
    bridge.drain_commands(controller)
    operator311.publish(topic, b'{"request_id": "same"}', qos=1)
    assert replies.wait_for(lambda m: len(replies.on(topic + "/reply")) >= 2)
    bridge.drain_commands(controller)
    assert [c[0] for c in controller.calls] == ["stop"]
    assert [d["code"] for d in reply_docs(replies, topic + "/reply")] == ["OK", "OK"]


def test_retained_commands_are_not_executed(shared_broker, device_id, tmp_path):
    topic = "bms/%s/cmd/charge" % device_id
    op = connect_client(*shared_broker, protocol=4)
    op.publish(topic, b'{"current_ua": 5, "request_id": "old"}', qos=1, retain=True).wait_for_publish(5)
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery=False)
    replies = Collector(*shared_broker, [topic + "/reply"]).start()
    try:
        bridge.start()
        assert replies.wait_for(lambda m: len(m) >= 1)
        assert json.loads(replies.messages[0][1])["code"] == "RETAINED_IGNORED"
        controller = FakeController()
        bridge.drain_commands(controller)
        assert controller.calls == []
    finally:
        op.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)   # clear the retained command
        op.disconnect()
        op.loop_stop()
        replies.stop()
        bridge.stop()


def test_a_command_sent_the_moment_the_bridge_says_connected_arrives(shared_broker, device_id, tmp_path):
    """wait_connected() means subscribed too: the broker has acknowledged the command
    subscription, so a command an operator publishes at once is delivered. (Set on
    CONNACK alone, a command sent in the gap before the SUBACK was silently lost.)"""
    operator = connect_client(*shared_broker, protocol=5)
    try:
        for attempt in range(10):
            bridge = Bridge(device_id, queue_path=str(tmp_path / ("q%d.sqlite" % attempt)),
                            discovery=False).start()
            try:
                assert bridge.wait_connected(10)
                info = operator.publish("bms/%s/cmd/rest" % device_id, b"{}", qos=1)
                info.wait_for_publish(5)
                assert wait_pending(bridge, 1), "attempt %d: the command never reached the bridge" % attempt
            finally:
                bridge.stop()
    finally:
        operator.disconnect()
        operator.loop_stop()
