"""Floods: no event is lost to a flood of valid commands (the bridge runs a command
only while the controller's event queue has room for it: bmsfw.telemetry
Events.room_for_command), and a loss that does happen is counted and published;
a flood of refused commands, of repeated ones or of Home Assistant birth messages
makes a bounded number of replies (reply_window) or configs (rediscovery_min_s),
logs a few lines, and the device's events still flow. Real firmware controller,
real Mosquitto (a private one: its queue for a slow subscriber is not the test's
subject here), MQTT 5.
Run: .venv/bin/python -m pytest tests/mqtt_bridge/test_mqtt_floods.py -q
"""

import json
import logging
import time

import pytest

from bmsfw.telemetry import COMMAND_EVENTS_MAX, MAX_PENDING, TICK_EVENTS_MAX, Events
from mqtt_bridge import Bridge
from mqtt_bridge.discovery import OBJECT_IDS
from mqtt_bridge.intake import BLIND_COMMANDS_PER_DRAIN
from mqtt_bridge.schemas import validator
from mqtt_helpers import (WAIT_S, Collector, FakeController, connect_client, event_frame, first_arrivals,
                          telemetry_frame, wait_until)
from twin.bench import Bench
from twin.parameters import load_parameter_set
from twin.run import run_closed_loop

FLOOD = 10_000


def test_the_event_queue_says_when_one_more_command_fits():
    events = Events("room-0001")
    fits = MAX_PENDING - TICK_EVENTS_MAX - COMMAND_EVENTS_MAX
    assert fits >= 1
    for _ in range(fits):
        assert events.room_for_command()
        events.emit(0, "COMMAND", "rest", "rest")
    assert events.room_for_command()            # exactly `fits` pending: one more command and a tick still fit
    events.emit(0, "COMMAND", "rest", "rest")
    assert not events.room_for_command()
    events.pop()
    assert events.room_for_command() and events.dropped == 0


def test_a_controller_that_cannot_say_gets_a_few_commands_per_drain(shared_broker, device_id, tmp_path):
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery=False).start()
    op = connect_client(*shared_broker, protocol=5)
    try:
        assert bridge.wait_connected(WAIT_S)
        for i in range(5):
            op.publish("bms/%s/cmd/rest" % device_id, b'{"request_id": %d}' % i, qos=1).wait_for_publish(WAIT_S)
        assert wait_until(lambda: bridge.pending_commands() == 5)
        controller = FakeController()
        assert len(bridge.drain_commands(controller)) == BLIND_COMMANDS_PER_DRAIN
        assert bridge.pending_commands() == 5 - BLIND_COMMANDS_PER_DRAIN
    finally:
        op.disconnect()
        op.loop_stop()
        bridge.stop()


@pytest.fixture
def ready_bench(device_id):
    """A real controller that formed its cell and is READY (run_closed_loop, no sink)."""
    params = load_parameter_set("d111")
    bench = Bench.build(params)
    run_closed_loop(params, bench=bench, stop_after_formation=True, device_id=device_id)
    assert bench.controller.state == "READY"
    return bench


def one_tick(bench, bridge) -> None:
    """The run loop's order (twin.run): commands between ticks, then the tick and its frames."""
    c = bench.controller
    bridge.poll(c)
    bench.board.advance(c.config.tick_ms)
    c.tick()
    bridge.publish_frames([c.telemetry(), *c.pop_events()])


@pytest.mark.slow
def test_a_flood_of_valid_commands_loses_no_event(mosquitto_factory, device_id, tmp_path, ready_bench):
    broker = mosquitto_factory().start()
    bench = ready_bench
    c = bench.controller
    base = "bms/%s/" % device_id
    bridge = Bridge(device_id, broker.url, queue_path=str(tmp_path / "q.sqlite"), discovery=False,
                    telemetry_period_ms=60_000).start()
    col = Collector("127.0.0.1", broker.port, [base + "event", base + "cmd/set_limits/reply"]).start()
    op = connect_client("127.0.0.1", broker.port, protocol=5)
    try:
        assert bridge.wait_connected(WAIT_S)
        one_tick(bench, bridge)                       # the bridge knows the limits now
        first_seq = c.events.seq + 1
        ccl_ua = c.telemetry()["ccl_ua"]
        payload = json.dumps({"ccl_ua": ccl_ua}).encode()   # valid, tightens nothing: accepted every time
        for _ in range(FLOOD):
            op.publish(base + "cmd/set_limits", payload, qos=1)

        def answered():
            # every way a command is answered or dropped: a refusal by the controller or a
            # duplicate counts too, or a flood that met one would never be "all answered"
            stats = bridge.stats()
            return sum(stats.get(k, 0) for k in ("commands_ok", "commands_rejected", "commands_refused",
                                                 "commands_duplicate", "commands_unanswerable"))

        deadline = time.monotonic() + 600     # ~10 s alone; inside the full suite it has taken 2 min
        while answered() < FLOOD or bridge.pending_commands():
            assert time.monotonic() < deadline, "flood not answered: %s, %d pending" % (
                bridge.stats(), bridge.pending_commands())
            pending = bridge.pending_commands()
            if pending:
                one_tick(bench, bridge)
                if bridge.pending_commands() >= pending:
                    # the controller took none: the replies wait for their PUBACKs, which
                    # paho's network thread reads; spinning here would starve it of the GIL
                    time.sleep(0.002)
            else:
                # the network thread's turn: commands arrive in bursts, as in a flood. No
                # tick meanwhile: on a slow machine idle ticks would add hours in READY,
                # and the cell's state (so its limits) would not be the one the flood met.
                time.sleep(0.002)
        assert bridge.flush(30)
        stats = bridge.stats()
        assert c.events.dropped == 0 and stats["events_lost"] == 0
        last_seq = c.events.seq
        assert stats["commands_ok"] == last_seq - first_seq + 1        # each accepted one is an event
        assert col.wait_for(lambda m: set(range(first_seq, last_seq + 1)) <= {
            json.loads(p)["seq"] for t, p, *_ in col.on(base + "event")}, timeout=120)
        events = [json.loads(p) for _t, p, *_ in col.on(base + "event")]
        assert first_arrivals([e["seq"] for e in events]) == list(range(first_seq, last_seq + 1))
        assert {e["event"] for e in events} == {"COMMAND"}
        # every command answered, or its refusal counted as not sent
        assert col.wait_for(lambda m: len(col.on(base + "cmd/set_limits/reply")) + stats.get("replies_dropped", 0)
                            == FLOOD, timeout=120)
        codes = [json.loads(p)["code"] for _t, p, *_ in col.on(base + "cmd/set_limits/reply")]
        assert codes.count("OK") == stats["commands_ok"] and set(codes) <= {"OK", "BUSY"}
    finally:
        op.disconnect()
        op.loop_stop()
        col.stop()
        bridge.stop()


def test_events_lost_before_the_bridge_are_counted_and_published(shared_broker, device_id, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mqtt_bridge")
    base = "bms/%s/" % device_id
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery=False).start()
    col = Collector(*shared_broker, [base + "state", base + "event"]).start()
    try:
        assert bridge.wait_connected(WAIT_S)
        for seq in (1, 2, 6, 7, 10):                  # 3-5 and 8-9 never came
            bridge.publish_frame(event_frame(device_id, seq, seq * 1000))
        bridge.publish_frame(telemetry_frame(device_id, 10_000, event_seq=10))
        assert bridge.flush(WAIT_S)
        assert bridge.stats()["events_lost"] == 5
        assert col.wait_for(lambda m: col.on(base + "state"))
        state = json.loads(col.on(base + "state")[-1][1])
        assert not list(validator("state").iter_errors(state)) and state["events_lost"] == 5
        assert sum("lost before event" in r.getMessage() for r in caplog.records) == 2
    finally:
        col.stop()
        bridge.stop()
    delivery = bridge.delivery()
    assert delivery["events_lost"] == 5 and "5 event(s) lost" in delivery["why"]


@pytest.mark.parametrize("kind", ["refused", "repeated"])
def test_a_storm_of_commands_makes_a_bounded_number_of_replies_and_events_still_flow(mosquitto_factory, device_id,
                                                                                    tmp_path, kind, caplog):
    caplog.set_level(logging.WARNING, logger="mqtt_bridge")
    broker = mosquitto_factory().start()
    base = "bms/%s/" % device_id
    window = 20
    bridge = Bridge(device_id, broker.url, queue_path=str(tmp_path / "q.sqlite"), discovery=False,
                    reply_window=window).start()
    col = Collector("127.0.0.1", broker.port, [base + "event", base + "cmd/+/reply"]).start()
    op = connect_client("127.0.0.1", broker.port, protocol=5)
    storm = 3000
    try:
        assert bridge.wait_connected(WAIT_S)
        if kind == "refused":
            payload = b"not json"
        else:                                          # answered once, then the same again and again
            payload = b'{"request_id": "again"}'
            op.publish(base + "cmd/rest", payload, qos=1).wait_for_publish(WAIT_S)
            assert wait_until(lambda: bridge.pending_commands() == 1)
            assert bridge.drain_commands(FakeController()) == [("rest", True, "OK")]
        infos = [op.publish(base + "cmd/rest", payload, qos=1) for _ in range(storm)]
        for seq in range(1, 51):                       # the device's events, during the storm
            bridge.publish_frame(event_frame(device_id, seq, seq))
        for info in infos:
            info.wait_for_publish(WAIT_S)
        counter = "commands_rejected" if kind == "refused" else "commands_duplicate"
        assert wait_until(lambda: bridge.stats().get(counter, 0) == storm, timeout=30)
        assert bridge.flush(30)
        stats = bridge.stats()
        assert stats["replies_outstanding_max"] <= window
        already = 0 if kind == "refused" else 1
        assert col.wait_for(lambda m: len(col.on(base + "cmd/rest/reply")) + stats.get("replies_dropped", 0)
                            == storm + already, timeout=30)
        assert col.wait_for(lambda m: set(range(1, 51)) <= {json.loads(p)["seq"] for _t, p, *_ in
                                                            col.on(base + "event")}, timeout=30)
        assert bridge.connected and stats["connects"] == 1
        if kind == "refused":
            assert sum("BAD_JSON" in r.getMessage() for r in caplog.records) == 4    # 1st, 10th, 100th, 1000th
        assert bridge.drain_commands(FakeController()) == []
    finally:
        op.disconnect()
        op.loop_stop()
        col.stop()
        bridge.stop()


def test_a_flood_of_home_assistant_birth_messages_re_announces_once(shared_broker, device_id, tmp_path):
    prefix = "ha-" + device_id
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery_prefix=prefix,
                    rediscovery_min_s=3600).start()
    col = Collector(*shared_broker, ["%s/sensor/%s/+/config" % (prefix, device_id)]).start()
    ha = connect_client(*shared_broker, protocol=5)
    try:
        assert bridge.wait_connected(WAIT_S)
        assert col.wait_for(lambda m: len(m) >= len(OBJECT_IDS))
        infos = [ha.publish(prefix + "/status", b"online", qos=1) for _ in range(500)]
        for info in infos:
            info.wait_for_publish(WAIT_S)
        assert wait_until(lambda: bridge.stats().get("rediscovery_skipped", 0) == 499)
        assert bridge.flush(WAIT_S)
        assert col.wait_for(lambda m: len(m) >= 2 * len(OBJECT_IDS))
        ha.publish(prefix + "/status", b"online", qos=1).wait_for_publish(WAIT_S)   # still within the hour
        assert wait_until(lambda: bridge.stats().get("rediscovery_skipped", 0) == 500)
        assert bridge.flush(WAIT_S)
        assert len(col.messages) == 2 * len(OBJECT_IDS)    # the connect's and one re-announcement
    finally:
        ha.disconnect()
        ha.loop_stop()
        col.stop()
        bridge.stop()
