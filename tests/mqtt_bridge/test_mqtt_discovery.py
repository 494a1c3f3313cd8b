"""Home Assistant discovery, seen the way a dashboard sees it: subscribe to the
discovery prefix, read every retained config, follow its state topic and render
its value_template with Jinja2 (the engine HA uses) on the first value."""

import json
import time

import jinja2

from bmsfw.states import STATES
from mqtt_bridge import Bridge
from mqtt_bridge.discovery import OBJECT_IDS
from mqtt_bridge.schemas import validator
from mqtt_helpers import Collector, connect_client, telemetry_frame

HA_UNITS = {"voltage": {"V", "mV"}, "current": {"A", "mA"}, "temperature": {"°C", "°F", "K"}, "battery": {"%"}}


def render(template: str, payload: bytes):
    return jinja2.Environment().from_string(template).render(value_json=json.loads(payload))


def test_dashboard_finds_every_entity_and_its_first_value(shared_broker, device_id, tmp_path):
    prefix = "ha-" + device_id  # own discovery prefix: other tests' devices stay out of view
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery_prefix=prefix).start()
    dash = None
    try:
        assert bridge.wait_connected(10)
        frame = telemetry_frame(device_id, 0, state="READY", substate="CHARGING", cell_mv=2105, current_ua=-1250,
                                temp_dc=251, soc_pm=637, formation_pm=1000, inventory_uas=2_525_760_000,
                                cvl_mv=2800, dvl_mv=1800, ccl_ua=500, dcl_ua=400)
        bridge.publish_frame(frame)
        assert bridge.flush(10)
        configs_col = Collector(*shared_broker, ["%s/sensor/%s/+/config" % (prefix, device_id)]).start()
        try:
            assert configs_col.wait_for(lambda m: len(m) >= len(OBJECT_IDS), timeout=10)
            configs = {m[0]: json.loads(m[1]) for m in configs_col.messages}
            assert all(m[2] for m in configs_col.messages)  # retained
        finally:
            configs_col.stop()
        assert sorted(t.split("/")[3] for t in configs) == sorted(OBJECT_IDS)
        for cfg in configs.values():
            assert not list(validator("ha_sensor_config").iter_errors(cfg)), cfg
            assert cfg["availability_topic"] == "bms/%s/status" % device_id
            if cfg.get("device_class") in HA_UNITS:
                assert cfg["unit_of_measurement"] in HA_UNITS[cfg["device_class"]]
                assert cfg["state_class"] == "measurement"
        assert len({c["unique_id"] for c in configs.values()}) == len(configs)
        assert len({json.dumps(c["device"], sort_keys=True) for c in configs.values()}) == 1

        state_topics = sorted({c["state_topic"] for c in configs.values()} | {"bms/%s/status" % device_id})
        dash = Collector(*shared_broker, state_topics).start()
        # telemetry is not retained: the dashboard sees the next one (the run loop keeps publishing)
        deadline = time.monotonic() + 10
        t_ms = 1000
        while not all(dash.on(t) for t in state_topics) and time.monotonic() < deadline:
            bridge.publish_frame(dict(frame, t_ms=t_ms))
            t_ms += 1000
            dash.wait_for(lambda m: all(dash.on(t) for t in state_topics), timeout=0.2)
        assert all(dash.on(t) for t in state_topics), [t for t in state_topics if not dash.on(t)]
        assert dash.on("bms/%s/status" % device_id)[0][1] == b"online"
        values = {}
        for topic, cfg in configs.items():
            values[topic.split("/")[3]] = render(cfg["value_template"], dash.on(cfg["state_topic"])[0][1])
        assert values == {"voltage": "2.105", "current": "-1.25", "temperature": "25.1", "soc": "63.7",
                          "lithium_inventory": "701.6", "formation_progress": "100.0", "state": "READY",
                          "cvl": "2.8", "dvl": "1.8", "ccl": "0.5", "dcl": "0.4"}
        assert values["state"] in STATES
    finally:
        if dash is not None:
            dash.stop()
        bridge.stop()


def test_home_assistant_birth_message_republishes_configs(shared_broker, device_id, tmp_path):
    prefix = "ha-" + device_id
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery_prefix=prefix).start()
    col = Collector(*shared_broker, ["%s/sensor/%s/voltage/config" % (prefix, device_id)]).start()
    try:
        assert bridge.wait_connected(10)
        assert col.wait_for(lambda m: len(m) >= 1)
        before = len(col.messages)
        ha = connect_client(*shared_broker)
        ha.publish(prefix + "/status", "online", qos=1).wait_for_publish(5)
        ha.disconnect()
        ha.loop_stop()
        assert col.wait_for(lambda m: len(m) > before)
        assert col.messages[-1][2] is False  # a live re-announcement, not the stored retained copy
    finally:
        col.stop()
        bridge.stop()


def test_remove_discovery_deletes_retained_configs(shared_broker, device_id, tmp_path):
    prefix = "ha-" + device_id
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery_prefix=prefix).start()
    try:
        assert bridge.wait_connected(10)
        bridge.remove_discovery()
        assert bridge.flush(5)
    finally:
        bridge.stop()
    time.sleep(0.2)
    late = Collector(*shared_broker, ["%s/#" % prefix]).start()
    try:
        assert not late.wait_for(lambda m: len(m) > 0, timeout=1.0)
    finally:
        late.stop()
