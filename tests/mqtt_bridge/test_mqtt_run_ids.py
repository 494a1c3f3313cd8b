"""Event numbers start again with each run; the run id (mqtt_bridge/numbering.py)
that goes with every payload tells the runs apart, so a consumer that
de-duplicates on (device, run, seq), as docs/mqtt.md advises, keeps every event
of a second run with the same device id. Real firmware runs (twin.run) and a real
Mosquitto; the queue replay of a killed bridge keeps each event's own run id.
Run: .venv/bin/python -m pytest tests/mqtt_bridge/test_mqtt_run_ids.py -q
"""

import json
import re

import pytest

from mqtt_bridge import Bridge
from mqtt_bridge.numbering import RUN_ID_PATTERN
from mqtt_bridge.schemas import validator
from mqtt_helpers import WAIT_S, Collector, event_frame, telemetry_frame
from twin.parameters import load_parameter_set
from twin.run import run_closed_loop


def dedupe(docs: list) -> dict:
    """What a consumer keeps, de-duplicating on (device, run, seq)."""
    return {(d["device"], d["run"], d["seq"]): d for d in docs}


@pytest.mark.slow
def test_two_runs_with_one_device_id_are_told_apart(shared_broker, device_id, tmp_path):
    params = load_parameter_set("d111")
    topic = "bms/%s/event" % device_id
    col = Collector(*shared_broker, [topic, "bms/%s/state" % device_id]).start()
    runs = []
    try:
        for i in range(2):
            bridge = Bridge(device_id, queue_path=str(tmp_path / ("q%d.sqlite" % i)), discovery=False,
                            telemetry_period_ms=60_000).start()
            assert bridge.wait_connected(WAIT_S)
            result = run_closed_loop(params, stop_after_formation=True, sinks=[bridge], device_id=device_id)
            assert bridge.flush(20)
            bridge.stop()
            runs.append((bridge.numbering.runs, len(result.events)))
        (first, n1), (second, n2) = runs
        assert len(first) == len(second) == 1 and first != second
        assert col.wait_for(lambda m: len(dedupe(col.json_on(topic))) == n1 + n2, timeout=30)
        docs = col.json_on(topic)
        for doc in docs:
            assert not list(validator("event").iter_errors(doc)), doc
        by_run = {}
        for doc in dedupe(docs).values():
            by_run.setdefault(doc["run"], []).append(doc["seq"])
        assert sorted(by_run) == sorted(first + second)
        assert sorted(by_run[first[0]]) == list(range(1, n1 + 1))
        assert sorted(by_run[second[0]]) == list(range(1, n2 + 1))
        # on (device, seq) alone, as before, the second run's events would have been thrown away
        assert len({(d["device"], d["seq"]) for d in docs}) < n1 + n2
        assert {json.loads(p)["run"] for _t, p, *_ in col.on("bms/%s/state" % device_id)} == set(first + second)
    finally:
        col.stop()


def test_a_count_that_goes_back_starts_a_new_run_within_one_bridge(shared_broker, device_id, tmp_path):
    topic = "bms/%s/event" % device_id
    col = Collector(*shared_broker, [topic]).start()
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery=False).start()
    try:
        assert bridge.wait_connected(WAIT_S)
        for seq in (1, 2, 3):
            bridge.publish_frame(event_frame(device_id, seq, seq))
        # a reflashed board: the telemetry says its count is back at 1, then event 1 again
        bridge.publish_frame(telemetry_frame(device_id, 0, event_seq=0))
        bridge.publish_frames([event_frame(device_id, 1, 5), event_frame(device_id, 2, 6)])
        bridge.publish_frame(event_frame(device_id, 1, 7))     # and once more, seen only from the events
        assert bridge.flush(WAIT_S)
        assert col.wait_for(lambda m: len(col.on(topic)) >= 6)
        docs = col.json_on(topic)
        runs = bridge.numbering.runs
        assert len(runs) == 3 and all(re.match(RUN_ID_PATTERN, r) for r in runs)
        assert [(d["run"], d["seq"]) for d in docs] == [(runs[0], 1), (runs[0], 2), (runs[0], 3),
                                                        (runs[1], 1), (runs[1], 2), (runs[2], 1)]
        assert len(dedupe(docs)) == 6 and bridge.stats()["events_lost"] == 0
    finally:
        col.stop()
        bridge.stop()


def test_a_replayed_queue_keeps_each_events_own_run(mosquitto_factory, device_id, tmp_path):
    """Events stored by one process, sent by the next: they keep the run they were made in."""
    queue_path = str(tmp_path / "q.sqlite")
    offline = Bridge(device_id, "mqtt://127.0.0.1:1", queue_path=queue_path, discovery=False)   # never connects
    for seq in (1, 2):
        offline.publish_frame(event_frame(device_id, seq, seq))
    old_run = offline.numbering.run
    offline.stop()
    broker = mosquitto_factory().start()
    topic = "bms/%s/event" % device_id
    col = Collector("127.0.0.1", broker.port, [topic]).start()
    bridge = Bridge(device_id, broker.url, queue_path=queue_path, discovery=False).start()
    try:
        assert bridge.wait_connected(WAIT_S)
        bridge.publish_frame(event_frame(device_id, 1, 10))      # the new process's own run starts at 1 too
        assert bridge.flush(WAIT_S)
        assert col.wait_for(lambda m: len(col.on(topic)) >= 3)
        pairs = [(d["run"], d["seq"]) for d in col.json_on(topic)]
        assert pairs == [(old_run, 1), (old_run, 2), (bridge.numbering.run, 1)] and old_run != bridge.numbering.run
        assert bridge.delivery()["replayed"] == 2
    finally:
        col.stop()
        bridge.stop()
