"""The SQLite store-and-forward queue (real files), and the telemetry ring
buffer's `dropped` count across a real broker outage."""

import sqlite3

import pytest

from mqtt_bridge import Bridge
from mqtt_bridge.errors import OutboxError
from mqtt_bridge.outbox import Outbox
from mqtt_helpers import WAIT_S, Collector, event_frame, telemetry_frame, wait_until


def rows(n, topic="e", start=0):
    return [(topic, b"p%d" % i, 1, False, False) for i in range(start, start + n)]


def test_rows_come_back_in_order_and_leave_only_when_acked(tmp_path):
    box = Outbox(str(tmp_path / "q.sqlite"))
    box.put_many(rows(5))
    first = box.next_rows(3)
    assert [r[2] for r in first] == [b"p0", b"p1", b"p2"]
    assert [r[2] for r in box.next_rows(10)] == [b"p3", b"p4"]
    assert box.next_rows(10) == []
    box.ack([first[1][0]])
    assert len(box) == 4
    box.close()
    reopened = Outbox(str(tmp_path / "q.sqlite"))   # a new process: everything unacked is replayed
    assert [r[2] for r in reopened.next_rows(10)] == [b"p0", b"p2", b"p3", b"p4"]
    reopened.close()


def test_retained_rows_coalesce_until_handed(tmp_path):
    box = Outbox(str(tmp_path / "q.sqlite"))
    box.put_many([("state", b"s1", 1, True, True), ("e", b"e1", 1, False, False)])
    box.put_many([("state", b"s2", 1, True, True)])
    assert [r[2] for r in box.next_rows(10)] == [b"e1", b"s2"]      # s1 superseded, order kept
    box.put_many([("state", b"s3", 1, True, True)])                 # s2 is in flight: not touched
    assert [r[2] for r in box.next_rows(10)] == [b"s3"]
    assert len(box) == 3
    box.close()


def test_bounded_queue_evicts_oldest_and_counts(tmp_path):
    box = Outbox(str(tmp_path / "q.sqlite"), max_rows=10)
    box.put_many(rows(7))
    box.put_many(rows(7, start=7))
    assert len(box) == 10 and box.evicted == 4
    assert [r[2] for r in box.next_rows(100)][0] == b"p4"
    box.close()


def test_queue_file_is_wal_and_refuses_foreign_files(tmp_path):
    path = tmp_path / "q.sqlite"
    Outbox(str(path)).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute("UPDATE meta SET value='something-else'")
    with pytest.raises(OutboxError):
        Outbox(str(path))
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError):
        Outbox(str(junk))
    with pytest.raises(ValueError):
        Outbox(str(tmp_path / "x.sqlite"), max_rows=0)


def test_one_process_per_queue_file(tmp_path):
    path = str(tmp_path / "q.sqlite")
    first = Outbox(path)
    try:
        with pytest.raises(OutboxError, match="in use"):
            Outbox(path)
    finally:
        first.close()
    Outbox(path).close()   # free again once the owner closed it


def test_ids_keep_increasing_after_the_queue_empties(tmp_path):
    """An emptied table must not hand out an id at or below what was already handed."""
    box = Outbox(str(tmp_path / "q.sqlite"))
    box.put_many(rows(3))
    handed = box.next_rows(10)
    box.ack([r[0] for r in handed])
    assert len(box) == 0
    new_id = box.put_one("e", b"late", 1, False)
    assert new_id > handed[-1][0]
    assert [r[2] for r in box.next_rows(10)] == [b"late"]
    box.close()


@pytest.mark.slow
def test_outage_drops_oldest_telemetry_and_the_next_message_says_how_many(mosquitto_factory, device_id, tmp_path):
    broker = mosquitto_factory().start()
    topic = "bms/%s/telemetry" % device_id
    col = Collector("127.0.0.1", broker.port, [topic, "bms/%s/event" % device_id]).start()
    bridge = Bridge(device_id, broker.url, queue_path=str(tmp_path / "q.sqlite"), telemetry_period_ms=1000,
                    telemetry_buffer=5, reconnect_min_s=1, reconnect_max_s=1, discovery=False).start()
    try:
        assert bridge.wait_connected(WAIT_S)
        bridge.publish_frame(telemetry_frame(device_id, 0))
        assert col.wait_for(lambda m: len(col.on(topic)) == 1)
        broker.kill()
        assert wait_until(lambda: not bridge.connected and not col.subscribed.is_set())
        # Hold the bridge's network thread so our subscriber (no broker persistence) is
        # back before the bridge replays; the bridge itself keeps taking frames.
        bridge._client.loop_stop()
        for i in range(1, 13):                                # 12 frames while offline, buffer of 5
            bridge.publish_frame(telemetry_frame(device_id, i * 1000))
        bridge.publish_frame(event_frame(device_id, 1, 12_000))
        broker.start()
        assert col.subscribed.wait(WAIT_S)
        bridge._client.loop_start()
        assert bridge.wait_connected(WAIT_S)
        assert bridge.flush(WAIT_S)
        assert col.wait_for(lambda m: len(col.on(topic)) >= 6 and col.on("bms/%s/event" % device_id))
        docs = col.json_on(topic)
        assert [d["t_ms"] for d in docs] == [0, 8000, 9000, 10000, 11000, 12000]   # newest 5 kept
        assert [d["dropped"] for d in docs] == [0, 7, 0, 0, 0, 0]                 # first after outage says 7
        assert bridge.stats()["telemetry_dropped"] == 7
    finally:
        bridge.stop()
        col.stop()
