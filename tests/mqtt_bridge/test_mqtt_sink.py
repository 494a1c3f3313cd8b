"""mqtt_bridge.sink, the MQTT sink of `bms-twin run` and `bms-twin hil`: no bridge
before the first frame (its device id names the topics and the queue), then one
Bridge, a console line saying where it publishes, and frames, events and
commands through that bridge; none at all with --no-mqtt. Real brokers: the
shared mosquitto, and the embedded amqtt.
Run: .venv/bin/python -m pytest tests/mqtt_bridge/test_mqtt_sink.py -q
"""

import argparse
import threading

import pytest

from mqtt_bridge.config import PASSWORD_ENV, parse_broker_url
from mqtt_bridge.sink import MqttSink, mqtt_sinks, telemetry_period_ms, watch_command
from mqtt_helpers import Collector, FakeController, connect_client, event_frame, run_args, telemetry_frame, wait_until


def test_no_sink_with_no_mqtt_and_one_without(device_id):
    assert mqtt_sinks(run_args("--no-mqtt")) == []
    sinks = mqtt_sinks(run_args())
    assert len(sinks) == 1 and isinstance(sinks[0], MqttSink) and sinks[0].bridge is None
    forced = MqttSink(run_args("--no-mqtt"))      # made by hand anyway: says why it cannot publish
    with pytest.raises(ValueError, match="--no-mqtt"):
        forced.frame(telemetry_frame(device_id, 0))
    assert forced.bridge is None


def test_telemetry_period_follows_the_pace_unless_given():
    assert telemetry_period_ms(run_args()) == 60_000                       # flat out
    assert telemetry_period_ms(run_args("--speed", "600")) == 1000         # watched live
    assert telemetry_period_ms(run_args("--speed", "600", "--telemetry-period-ms", "250")) == 250
    assert telemetry_period_ms(argparse.Namespace(telemetry_period_ms=None)) == 60_000   # hil: no --speed


def test_the_bridge_is_made_at_the_first_frame_and_carries_frames_and_commands(shared_broker, device_id, tmp_path,
                                                                               capsys):
    host, port = shared_broker
    sink = MqttSink(run_args("--broker", "mqtt://%s:%d" % (host, port), "--mqtt-queue", str(tmp_path / "q.sqlite"),
                             "--no-discovery"))
    controller = FakeController()
    base = "bms/%s/" % device_id
    col = Collector(host, port, [base + "#"]).start()
    op = None
    try:
        sink.poll(controller)                          # before any frame: nothing to poll, nothing made
        assert sink.bridge is None and not list(tmp_path.iterdir())
        sink.frame(telemetry_frame(device_id, 0))
        bridge = sink.bridge
        assert bridge is not None and bridge.device_id == device_id and bridge.telemetry_period_ms == 60_000
        assert capsys.readouterr().out == (
            "MQTT: publishing bms/%s/# to %s:%d; watch with: bms-twin watch --broker mqtt://%s:%d"
            " (add --speed 600 to follow a run live)\n" % (device_id, host, port, host, port))
        sink.event(event_frame(device_id, 1, 0))
        sink.frame(telemetry_frame(device_id, 1000))   # within the period: no second telemetry
        assert sink.bridge is bridge and capsys.readouterr().out == ""
        assert bridge.wait_connected(10)
        op = connect_client(host, port, protocol=4)
        op.publish(base + "cmd/rest", b'{"request_id": "r1"}', qos=1).wait_for_publish(5)
        assert wait_until(lambda: bridge.pending_commands() == 1)
        sink.poll(controller)
        assert controller.calls == [("rest", {}, threading.get_ident())]
        assert col.wait_for(lambda m: col.on(base + "event") and col.on(base + "cmd/rest/reply"))
        assert [d["seq"] for d in col.json_on(base + "event")] == [1]
        assert [d["t_ms"] for d in col.json_on(base + "telemetry")] == [0]
        sink.close()
        assert not bridge.connected
        assert col.wait_for(lambda m: col.on(base + "status") and col.on(base + "status")[-1][1] == b"offline")
    finally:
        if op is not None:
            op.disconnect()
            op.loop_stop()
        col.stop()
        sink.close()


def test_with_no_broker_given_the_sink_runs_and_stops_an_embedded_one(device_id, tmp_path, capsys):
    sink = MqttSink(run_args("--speed", "600", "--mqtt-queue", str(tmp_path / "q.sqlite"), "--no-discovery"))
    try:
        sink.frame(telemetry_frame(device_id, 0))
        bridge = sink.bridge
        embedded = bridge.owned_broker
        assert embedded is not None and bridge.telemetry_period_ms == 1000
        assert capsys.readouterr().out == (
            "MQTT: publishing bms/%s/# to 127.0.0.1:%d (embedded broker, stops with this run); watch with: "
            "bms-twin watch --broker mqtt://127.0.0.1:%d --mqtt-protocol 3.1.1\n"
            % (device_id, embedded.port, embedded.port))
        assert bridge.wait_connected(10)
    finally:
        sink.close()
    assert bridge.owned_broker is None and not bridge.connected


@pytest.mark.parametrize("url, ca, hint", [
    ("mqtt://h:1883", None, "bms-twin watch --broker mqtt://h:1883"),
    ("mqtt://h:1883?protocol=3.1.1", None, "bms-twin watch --broker mqtt://h:1883 --mqtt-protocol 3.1.1"),
    ("mqtts://h:8883", "/etc/ca dir/ca.crt", "bms-twin watch --broker mqtts://h:8883 --tls-ca '/etc/ca dir/ca.crt'"),
    ("mqtts://dev:pw@h:8883?ca=/ca.crt", None,
     "bms-twin watch --broker mqtts://dev@h:8883 --tls-ca /ca.crt (password from $BMS_TWIN_MQTT_PASSWORD)"),
    ("mqtts://dev@h", None, "bms-twin watch --broker mqtts://dev@h:8883"),
])
def test_the_watch_hint_is_the_same_broker_tls_and_user_without_the_password(url, ca, hint, monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    cfg = parse_broker_url(url)
    if ca is not None:
        cfg.tls_ca = ca
    assert watch_command(cfg) == hint
