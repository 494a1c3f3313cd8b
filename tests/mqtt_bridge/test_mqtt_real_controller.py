"""The real firmware controller on the twin (twin.run.run_closed_loop), with a
Bridge as its MQTT sink on the shared mosquitto: every published payload of a
whole formation matches its schema, events arrive complete and in order, and
commands sent over MQTT reach the real controller on the run loop's thread."""

import threading

import pytest

from mqtt_bridge import Bridge
from mqtt_bridge.schemas import validator
from mqtt_helpers import Collector, connect_client, wait_until

from twin.parameters import load_parameter_set
from twin.bench import Bench
from twin.run import run_closed_loop


class ThreadRecordingBridge(Bridge):
    """Notes the thread that hands commands to the controller."""

    poll_threads: set

    def poll(self, controller) -> None:
        if self.pending_commands():
            self.poll_threads.add(threading.get_ident())
        super().poll(controller)


@pytest.mark.slow
def test_a_real_formation_published_through_the_bridge(shared_broker, device_id, tmp_path):
    params = load_parameter_set("d111")
    bench = Bench.build(params)
    bridge = ThreadRecordingBridge(device_id, queue_path=str(tmp_path / "q.sqlite"), telemetry_period_ms=60_000,
                                   discovery=False)
    bridge.poll_threads = set()
    col = Collector(*shared_broker, ["bms/%s/#" % device_id]).start()
    op = connect_client(*shared_broker, protocol=4)
    try:
        bridge.start()
        assert bridge.wait_connected(10)
        base = "bms/%s/" % device_id
        # queued before the run: the first poll of the run loop hands them over
        op.publish(base + "cmd/rest", b'{"request_id": "too-early"}', qos=1).wait_for_publish(5)
        op.publish(base + "cmd/charge", b'{"current_ua": 0, "request_id": "zero"}', qos=1).wait_for_publish(5)
        assert wait_until(lambda: bridge.pending_commands() == 1)   # the zero-current charge is refused at once
        result = run_closed_loop(params, bench=bench, stop_after_formation=True, sinks=[bridge],
                                 device_id=device_id)
        assert result.summary  # the formation ran
        assert bridge.poll_threads == {threading.get_ident()}       # commands ran on the run loop's thread
        # formed and READY: now "rest" is accepted; one more tick of the same loop by hand
        op.publish(base + "cmd/rest", b'{"request_id": "after"}', qos=1).wait_for_publish(5)
        assert wait_until(lambda: bridge.pending_commands() == 1)
        bridge.poll(bench.controller)
        bench.board.advance(bench.controller.config.tick_ms)
        bench.controller.tick()
        bridge.publish_frames([bench.controller.telemetry(), *bench.controller.pop_events()])
        assert bridge.flush(20)
        last_frame = bench.controller.telemetry()
        assert col.wait_for(lambda m: len(col.on(base + "event")) >= last_frame["event_seq"]
                            and len(col.on(base + "cmd/rest/reply")) == 2
                            and len(col.on(base + "cmd/charge/reply")) == 1, timeout=20)
        for kind in ("state", "limits", "telemetry", "event"):
            docs = col.json_on(base + kind)
            assert docs, kind
            for doc in docs:
                errors = list(validator(kind).iter_errors(doc))
                assert not errors, (kind, errors[0].message, doc)
        seqs = [d["seq"] for d in col.json_on(base + "event")]
        assert seqs == list(range(1, last_frame["event_seq"] + 1)), seqs
        states = [d["to"] for d in col.json_on(base + "event") if d["event"] == "STATE"]
        assert states[:2] == ["SHIPPED", "FORMING"]
        assert col.json_on(base + "state")[-1]["formation_pm"] == last_frame["formation_pm"]
        replies = {d["request_id"]: d["code"] for topic in ("cmd/rest/reply", "cmd/charge/reply")
                   for d in col.json_on(base + topic)}
        assert replies == {"too-early": "NOT_ALLOWED_IN_STATE", "zero": "OUT_OF_RANGE", "after": "OK"}
        assert last_frame["state"] == "READY"
        commands = [d for d in col.json_on(base + "event") if d["event"] == "COMMAND"]
        assert [c.get("command") for c in commands] == ["rest"]   # only the accepted one
    finally:
        op.disconnect()
        op.loop_stop()
        col.stop()
        bridge.stop()
