"""TLS, passwords and the example ACL (docs/acl.example, used as-is) against a
real mosquitto: a device writes only its own topics, `dashboard` reads but
cannot command, `operator` may command; a refused cmd/ publish changes nothing."""

import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from mqtt_bridge import Bridge
from mqtt_helpers import DEVICE_PASSWORD, WAIT_S, Collector, FakeController, connect_client, telemetry_frame, wait_until

def tls_client(port, ca, user, pw):
    return connect_client("localhost", port, protocol=5, username=user, password=pw, tls_ca=ca)


@pytest.mark.slow
def test_acl_roles_and_an_unauthorised_command_has_no_effect(secure_broker, device_id, tmp_path):
    broker, ca = secure_broker
    url = "mqtts://%s:%s@localhost:%d" % (device_id, DEVICE_PASSWORD, broker.port)
    bridge = Bridge(device_id, url, queue_path=str(tmp_path / "q.sqlite"), tls_ca=ca).start()
    dash = Collector("localhost", broker.port, ["bms/#"], username="dashboard", password="dash-pw",
                     tls_ca=ca).start()
    dash_pub = tls_client(broker.port, ca, "dashboard", "dash-pw")
    operator = tls_client(broker.port, ca, "operator", "op-pw")
    try:
        assert bridge.wait_connected(WAIT_S), bridge.last_connect_error
        bridge.publish_frame(telemetry_frame(device_id, 0))
        assert bridge.flush(WAIT_S)
        base = "bms/%s/" % device_id
        # the dashboard reads the device
        assert dash.wait_for(lambda m: all(dash.on(base + k) for k in ("status", "state", "limits", "telemetry")))
        assert bridge.stats().get("rejected_by_broker", 0) == 0

        # the dashboard may not command: MQTT 5 tells it so (135), and nothing reaches the controller
        info = dash_pub.publish(base + "cmd/charge", b'{"current_ua": 100, "request_id": "dash"}', qos=1)
        info.wait_for_publish(WAIT_S)
        refused = []
        dash_pub.on_publish = lambda c, u, mid, rc, props: refused.append(rc)
        info = dash_pub.publish(base + "cmd/discharge", b'{"current_ua": 100}', qos=1)
        info.wait_for_publish(WAIT_S)
        assert wait_until(lambda: refused) and refused[0].is_failure and refused[0].value == 135

        # the operator may
        operator.publish(base + "cmd/stop", b'{"request_id": "op"}', qos=1).wait_for_publish(WAIT_S)
        assert wait_until(lambda: bridge.pending_commands() == 1)
        controller = FakeController()
        bridge.drain_commands(controller)
        assert [c[0] for c in controller.calls] == ["stop"]
        assert dash.wait_for(lambda m: dash.on(base + "cmd/stop/reply"))
        assert not dash.on(base + "cmd/charge/reply") and not dash.on(base + "cmd/charge")
    finally:
        for client in (dash_pub, operator):
            client.disconnect()
            client.loop_stop()
        dash.stop()
        bridge.stop()


def test_a_device_cannot_write_another_devices_topics(secure_broker, device_id):
    broker, ca = secure_broker
    other = "other-" + device_id
    watcher = Collector("localhost", broker.port, ["bms/#"], username="dashboard", password="dash-pw",
                        tls_ca=ca).start()
    device = tls_client(broker.port, ca, device_id, DEVICE_PASSWORD)
    try:
        codes = {}
        device.on_publish = lambda c, u, mid, rc, props: codes.__setitem__(mid, rc)
        own = device.publish("bms/%s/telemetry" % device_id, b"{}", qos=1)
        foreign = device.publish("bms/%s/state" % other, b'{"forged": true}', qos=1)
        cmd = device.publish("bms/%s/cmd/charge" % other, b'{"current_ua": 1}', qos=1)
        assert wait_until(lambda: len(codes) == 3)
        assert not codes[own.mid].is_failure
        assert codes[foreign.mid].value == 135 and codes[cmd.mid].value == 135
        assert watcher.wait_for(lambda m: watcher.on("bms/%s/telemetry" % device_id))
        assert [m for m in watcher.messages if m[0].startswith("bms/%s/" % other)] == []
    finally:
        device.disconnect()
        device.loop_stop()
        watcher.stop()


@pytest.mark.slow
def test_no_anonymous_no_wrong_password_no_plaintext(secure_broker, device_id):
    broker, ca = secure_broker
    with pytest.raises(ConnectionRefusedError):
        tls_client(broker.port, ca, None, None)
    with pytest.raises(ConnectionRefusedError):
        tls_client(broker.port, ca, device_id, "wrong")
    plain = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="plain-" + uuid.uuid4().hex[:6],
                        protocol=mqtt.MQTTv5)
    plain.username_pw_set(device_id, DEVICE_PASSWORD)
    connected = []
    plain.on_connect = lambda c, u, f, rc, p: connected.append(rc)
    try:
        plain.connect("127.0.0.1", broker.port, 5)
        plain.loop_start()
        assert not wait_until(lambda: connected, timeout=1.5)   # a TLS port never CONNACKs plain MQTT
    except OSError:
        pass                                                    # or the broker hangs up at once
    finally:
        plain.loop_stop()


def test_the_acl_grants_a_device_its_reply_tree_and_its_own_topics_only(secure_broker, device_id):
    """docs/acl.example matches reply_to.py: replies under cmd/<name>/reply (one- and two-level
    names, response topics below them); never a command topic or another device's."""
    broker, ca = secure_broker
    device = tls_client(broker.port, ca, device_id, DEVICE_PASSWORD)
    try:
        codes = {}
        device.on_publish = lambda c, u, mid, rc, props: codes.__setitem__(mid, rc)
        base = "bms/%s/cmd/" % device_id
        allowed = [base + "charge/reply", base + "charge/reply/op-1", base + "charge/reply/a/b/c/d",
                   base + "formation/start/reply", base + "formation/start/reply/op-1"]
        denied = [base + "charge", base + "formation/start", "bms/other-%s/cmd/charge/reply" % device_id,
                  "bms/%s/elsewhere" % device_id]
        infos = {topic: device.publish(topic, b"{}", qos=1) for topic in allowed + denied}
        assert wait_until(lambda: len(codes) == len(infos))
        assert [t for t in allowed if codes[infos[t].mid].is_failure] == []
        assert [t for t in denied if codes[infos[t].mid].value != 135] == []
    finally:
        device.disconnect()
        device.loop_stop()
