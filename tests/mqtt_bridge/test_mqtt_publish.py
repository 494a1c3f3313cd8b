"""What the bridge publishes, checked on the shared mosquitto (127.0.0.1:1883):
topics, QoS, retain flags, the JSON Schemas of real payloads, telemetry rate
limiting on the controller's clock, and retained updates only on change."""

import json

import pytest

from mqtt_bridge import Bridge
from mqtt_bridge.errors import FrameError
from mqtt_bridge.numbering import new_run_id
from mqtt_bridge.schemas import validator
from mqtt_helpers import Collector, event_frame, telemetry_frame


def validate(kind: str, payload: bytes) -> dict:
    doc = json.loads(payload)
    errors = list(validator(kind).iter_errors(doc))
    assert not errors, "%s payload breaks its schema: %s\n%s" % (kind, errors[0].message, doc)
    return doc


@pytest.fixture
def live(shared_broker, device_id, tmp_path):
    """A started bridge and a subscriber to all of its topics (QoS 1)."""
    col = Collector(*shared_broker, ["bms/%s/#" % device_id]).start()
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), telemetry_period_ms=1000,
                    state_period_ms=5000, discovery=False).start()
    assert bridge.wait_connected(10)
    yield bridge, col
    bridge.stop()
    col.stop()


def test_every_payload_kind_matches_its_schema_and_carries_units(live, device_id):
    bridge, col = live
    base = "bms/%s/" % device_id
    bridge.publish_frame(telemetry_frame(device_id, 0))
    bridge.publish_frame(event_frame(device_id, 1, 0))
    bridge.publish_frame(event_frame(device_id, 2, 5, event="FAULT", fault="OVERVOLTAGE", cell_mv=2901,
                                     detail="cell above CVL"))
    assert bridge.flush(10)
    assert col.wait_for(lambda m: all(col.on(base + k) for k in ("status", "state", "limits", "telemetry"))
                        and len(col.on(base + "event")) == 2)
    assert col.on(base + "status")[-1][1] == b"online"
    state = validate("state", col.on(base + "state")[-1][1])
    assert (state["state"], state["substate"], state["target_uas"]) == ("FORMING", "PLATE", 720_000_000)
    limits = validate("limits", col.on(base + "limits")[-1][1])
    assert (limits["cvl_mv"], limits["dvl_mv"], limits["ccl_ua"], limits["dcl_ua"]) == (2800, 1800, 500, 400)
    tel = validate("telemetry", col.on(base + "telemetry")[-1][1])
    assert (tel["cell_mv"], tel["current_ua"], tel["temp_dc"], tel["dropped"]) == (2105, 100, 251, 0)
    events = [validate("event", m[1]) for m in col.on(base + "event")]
    assert [e["seq"] for e in events] == [1, 2]
    assert events[1]["fault"] == "OVERVOLTAGE" and events[1]["cell_mv"] == 2901  # extra figures pass through
    for doc in (state, limits, tel, *events):
        assert doc["schema"].startswith("bms-") and doc["device"] == device_id


def test_schemas_reject_what_they_should(device_id):
    """The payload schemas are not vacuous: a wrong state, a missing unit field, a float fail."""
    run = new_run_id()
    tel = {"schema": "bms-telemetry/1", "device": device_id, "run": run, "t_ms": 0, "state": "FORMING", "substate": "",
           "cell_mv": 2100, "current_ua": 1, "temp_dc": 250, "setpoint_ua": 0, "inventory_uas": 0,
           "soc_pm": 0, "dropped": 0}
    assert not list(validator("telemetry").iter_errors(tel))
    for bad in ({"state": "MELTING"}, {"cell_mv": 2.1}, {"soc_pm": 1001}, {"dropped": True}, {"run": "1"}):
        assert list(validator("telemetry").iter_errors(dict(tel, **bad))), bad
    assert list(validator("telemetry").iter_errors({k: v for k, v in tel.items() if k != "temp_dc"}))
    event = {"schema": "bms-event/1", "device": device_id, "run": run, "seq": 1, "t_ms": 0, "event": "STATE"}
    assert list(validator("event").iter_errors(event))  # STATE needs from/to
    assert not list(validator("event").iter_errors(dict(event, **{"from": "SHIPPED", "to": "FORMING"})))


def test_qos_and_retain_flags_per_topic(shared_broker, device_id, tmp_path):
    """Retained topics are retained on the broker; telemetry and events are not."""
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery=False).start()
    try:
        assert bridge.wait_connected(10)
        bridge.publish_frame(telemetry_frame(device_id, 0))
        bridge.publish_frame(event_frame(device_id, 1, 0))
        assert bridge.flush(10)
        late = Collector(*shared_broker, ["bms/%s/#" % device_id]).start()  # joins after publishing
        try:
            assert late.wait_for(lambda m: len(m) >= 3, timeout=5)
            retained = {m[0].rsplit("/", 1)[1] for m in late.messages if m[2]}
            assert retained == {"status", "state", "limits"}
        finally:
            late.stop()
    finally:
        bridge.stop()


def test_telemetry_is_rate_limited_by_controller_clock(live, device_id):
    bridge, col = live
    topic = "bms/%s/telemetry" % device_id
    for t_ms in range(0, 10_001, 100):     # 101 frames over 10 s of controller time
        bridge.publish_frame(telemetry_frame(device_id, t_ms))
    bridge.publish_frame(telemetry_frame(device_id, 50))  # clock went back: a reboot, publish at once
    assert bridge.flush(10)
    assert col.wait_for(lambda m: len(col.on(topic)) >= 12)
    assert [d["t_ms"] for d in col.json_on(topic)] == list(range(0, 10_001, 1000)) + [50]


def test_retained_state_and_limits_only_when_they_change(live, device_id):
    bridge, col = live
    base = "bms/%s/" % device_id
    # flush between phases: an unsent retained value is superseded by a newer one (coalescing),
    # and this test counts every update
    for t_ms in range(0, 4000, 100):       # inventory drifts, nothing significant changes
        bridge.publish_frame(telemetry_frame(device_id, t_ms, soc_pm=10, formation_pm=10))
    assert bridge.flush(10)
    bridge.publish_frame(telemetry_frame(device_id, 4000, soc_pm=10, formation_pm=10, substate="VERIFY"))
    assert bridge.flush(10)
    bridge.publish_frame(telemetry_frame(device_id, 4100, soc_pm=10, formation_pm=10, substate="VERIFY",
                                         ccl_ua=300))
    assert bridge.flush(10)
    for t_ms in range(4200, 9200, 100):    # 5 s later the drifting inventory earns one refresh
        bridge.publish_frame(telemetry_frame(device_id, t_ms, soc_pm=10, formation_pm=10, substate="VERIFY",
                                             ccl_ua=300))
    assert bridge.flush(10)
    assert col.wait_for(lambda m: len(col.on(base + "state")) >= 3 and len(col.on(base + "limits")) >= 2)
    states = col.json_on(base + "state")
    assert [(s["t_ms"], s["substate"]) for s in states] == [(0, "PLATE"), (4000, "VERIFY"), (9000, "VERIFY")]
    assert [lim["ccl_ua"] for lim in col.json_on(base + "limits")] == [500, 300]


def test_bad_frames_raise_named_errors_and_publish_nothing(live, device_id):
    bridge, col = live
    with pytest.raises(FrameError) as info:
        bridge.publish_frame(dict(telemetry_frame(device_id, 0), cell_mv=2.1))
    assert info.value.field == "cell_mv"
    with pytest.raises(FrameError):
        bridge.publish_frame({"kind": "bogus"})
    with pytest.raises(FrameError) as info:
        bridge.publish_frame({k: v for k, v in event_frame(device_id, 1, 0).items() if k != "seq"})
    assert info.value.field == "seq"
    assert len(bridge.outbox) == 0
    assert bridge.stats().get("events_stored", 0) == 0


def test_a_burst_of_events_arrives_complete_in_order_and_leaves_the_queue_empty(live, device_id):
    """Hundreds of QoS 1 events through the fast path and the batched path: every
    PUBACK is matched to its row (flush() would time out on a lost one). Kept under
    the shared broker's default max_queued_messages (1000) for our subscriber."""
    bridge, col = live
    topic = "bms/%s/event" % device_id
    for seq in range(1, 601):
        bridge.publish_frame(event_frame(device_id, seq, seq))
    bridge.publish_frames([event_frame(device_id, seq, seq) for seq in range(601, 901)]
                          + [telemetry_frame(device_id, 0)])
    assert bridge.flush(30)
    assert len(bridge.outbox) == 0
    assert col.wait_for(lambda m: len(col.on(topic)) >= 900, timeout=30)
    assert [d["seq"] for d in col.json_on(topic)] == list(range(1, 901))


def test_publish_frames_refuses_the_whole_tick_on_one_bad_frame(live, device_id):
    bridge, _col = live
    with pytest.raises(FrameError):
        bridge.publish_frames([event_frame(device_id, 1, 0), dict(telemetry_frame(device_id, 0), soc_pm="x")])
    with pytest.raises(FrameError):
        bridge.publish_frames([event_frame(device_id, 1, 0), {"kind": "nope"}])
    assert len(bridge.outbox) == 0 and bridge.stats()["events_stored"] == 0
