"""A retained command is never executed: not when it is published while the device
is online (MQTT 5: the bridge subscribes with Retain As Published, so the broker
keeps the flag on live delivery), not when the device reconnects and the broker
hands it the stored copy. Either way the refusal carries the command's request_id
(and, on MQTT 5, its Correlation Data to its Response Topic). Real Mosquitto.
Run: .venv/bin/python -m pytest tests/mqtt_bridge/test_mqtt_retained_live.py -q
"""

import json

import pytest

from mqtt_bridge import Bridge
from mqtt_helpers import WAIT_S, Collector, FakeController, connect_client, publish_properties, wait_until


@pytest.fixture
def retained_cleaner(shared_broker):
    """Clears the retained commands a test leaves on the shared broker."""
    topics = []
    yield topics
    client = connect_client(*shared_broker, protocol=4)
    try:
        for topic in topics:
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(WAIT_S)
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_retained_command_published_while_online_is_refused_with_its_request_id(shared_broker, device_id, tmp_path,
                                                                                    retained_cleaner):
    topic = "bms/%s/cmd/charge" % device_id
    retained_cleaner.append(topic)
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery=False).start()
    col = Collector(*shared_broker, [topic + "/reply/#"]).start()
    operator = connect_client(*shared_broker, protocol=5)
    try:
        assert bridge.wait_connected(WAIT_S)
        response_topic = topic + "/reply/op"
        operator.publish(topic, b'{"current_ua": 5, "request_id": "live"}', qos=1, retain=True,
                         properties=publish_properties(ResponseTopic=response_topic, CorrelationData=b"r1")
                         ).wait_for_publish(WAIT_S)
        assert col.wait_for(lambda m: col.on(response_topic))
        [(_t, payload, _retain, props)] = col.on(response_topic)
        doc = json.loads(payload)
        assert (doc["code"], doc["request_id"], props.CorrelationData) == ("RETAINED_IGNORED", "live", b"r1")
        controller = FakeController()
        assert bridge.drain_commands(controller) == [] and controller.calls == []
        # the same command not retained runs
        operator.publish(topic, b'{"current_ua": 5, "request_id": "now"}', qos=1).wait_for_publish(WAIT_S)
        assert wait_until(lambda: bridge.pending_commands() == 1)
        assert bridge.drain_commands(controller) == [("charge", True, "OK")]
    finally:
        operator.disconnect()
        operator.loop_stop()
        col.stop()
        bridge.stop()


@pytest.mark.parametrize("protocol", [5, 4])
def test_the_stored_retained_command_on_reconnect_is_refused_with_its_request_id(shared_broker, device_id, tmp_path,
                                                                                 retained_cleaner, protocol):
    topic = "bms/%s/cmd/discharge" % device_id
    retained_cleaner.append(topic)
    op = connect_client(*shared_broker, protocol=4)
    op.publish(topic, b'{"current_ua": 9, "request_id": 42}', qos=1, retain=True).wait_for_publish(WAIT_S)
    op.disconnect()
    op.loop_stop()
    col = Collector(*shared_broker, [topic + "/reply"]).start()
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery=False, protocol=protocol).start()
    try:
        assert col.wait_for(lambda m: col.on(topic + "/reply"))
        doc = json.loads(col.on(topic + "/reply")[0][1])
        assert (doc["code"], doc["request_id"]) == ("RETAINED_IGNORED", 42)
        controller = FakeController()
        assert bridge.drain_commands(controller) == [] and controller.calls == []
        assert bridge.stats()["refused_RETAINED_IGNORED"] == 1
    finally:
        col.stop()
        bridge.stop()
