"""The broker settings docs/mosquitto.example.conf recommends, as written there, on a
real Mosquitto: its persistence lines keep the events queued for an offline
subscriber through a broker crash (SIGKILL), where "autosave_interval 60" lost
them; its max_queued_messages lets a flood's command replies all reach their
sender, where Mosquitto's default drops most of them.
Run: .venv/bin/python -m pytest tests/mqtt_bridge/test_mqtt_broker_conf.py -q
"""

import json
import os
import time

import pytest

from mqtt_bridge import Bridge
from mqtt_helpers import WAIT_S, Collector, connect_client, event_frame, event_seqs, wait_until

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "mosquitto.example.conf")
PERSISTENCE = ("persistence", "autosave_on_changes", "autosave_interval")


def example_lines(*keys: str) -> str:
    """The example file's lines setting these options, as written there."""
    with open(EXAMPLE, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    chosen = [line for line in lines if line.split()[0] in keys]
    assert sorted({line.split()[0] for line in chosen}) == sorted(keys), chosen
    return "".join(line + "\n" for line in chosen)


def _events_through_a_crash(mosquitto_factory, device_id, tmp_path, persistence_conf: str, wait_s: float) -> list:
    """A subscriber's session is offline while 100 events are acknowledged; the broker is killed and
    restarted; the subscriber comes back. The event seqs it gets."""
    store = tmp_path / "store"
    store.mkdir()
    broker = mosquitto_factory(defaults=False, extra_conf=persistence_conf + "persistence_location %s/\n"
                               "max_queued_messages 100000\n" % store).start()
    topic = "bms/%s/event" % device_id
    late = Collector("127.0.0.1", broker.port, [topic], clean=False, client_id="late-" + device_id)
    late.start()
    late.stop()                                           # gone, its session kept by the broker
    bridge = Bridge(device_id, broker.url, queue_path=str(tmp_path / "q.sqlite"), discovery=False).start()
    try:
        assert bridge.wait_connected(WAIT_S)
        for seq in range(1, 101):
            bridge.publish_frame(event_frame(device_id, seq, seq))
        assert bridge.flush(WAIT_S) and len(bridge.outbox) == 0     # every one acknowledged by the broker
    finally:
        bridge.stop()
    time.sleep(1.0)        # the broker's main loop saves after the PUBACK it sent: give it that turn
    broker.kill()
    broker.start()
    back = Collector("127.0.0.1", broker.port, [topic], clean=False, client_id="late-" + device_id).start()
    try:
        back.wait_for(lambda m: len(set(event_seqs(back, topic))) >= 100, timeout=wait_s)
        return sorted(set(event_seqs(back, topic)))
    finally:
        back.stop()


@pytest.mark.slow
def test_the_recommended_persistence_keeps_queued_events_through_a_broker_crash(mosquitto_factory, device_id,
                                                                                 tmp_path):
    got = _events_through_a_crash(mosquitto_factory, device_id, tmp_path, example_lines(*PERSISTENCE), WAIT_S)
    assert got == list(range(1, 101))


@pytest.mark.slow
def test_saving_once_a_minute_loses_them(mosquitto_factory, device_id, tmp_path):
    """The setting the example file had: the control that shows the crash test can fail."""
    got = _events_through_a_crash(mosquitto_factory, device_id, tmp_path,
                                  "persistence true\nautosave_interval 60\n", wait_s=3)
    assert len(got) < 100


def _replies_to_a_flood(mosquitto_factory, device_id, tmp_path, queue_conf: str, wait_s: float) -> tuple:
    """An operator's session is offline while 3000 commands are answered; what it gets when it is back."""
    broker = mosquitto_factory(defaults=False, extra_conf="persistence false\n" + queue_conf).start()
    replies = "bms/%s/cmd/rest/reply" % device_id
    operator = Collector("127.0.0.1", broker.port, [replies], clean=False, client_id="op-" + device_id)
    operator.start()
    operator.stop()
    bridge = Bridge(device_id, broker.url, queue_path=str(tmp_path / "q.sqlite"), discovery=False,
                    reply_window=100_000).start()
    sender = connect_client("127.0.0.1", broker.port, protocol=5)
    try:
        assert bridge.wait_connected(WAIT_S)
        # in batches the device keeps up with: the broker's queue *to the device* is not this test's subject
        for batch in range(1, 7):
            infos = [sender.publish("bms/%s/cmd/rest" % device_id, b"not json", qos=1) for _ in range(500)]
            for info in infos:
                info.wait_for_publish(WAIT_S)
            assert wait_until(lambda: bridge.stats().get("commands_rejected", 0) == 500 * batch, timeout=30)
        assert bridge.flush(WAIT_S)
        sent = bridge.stats()["replies_sent"]
        assert sent == 3000 and bridge.stats().get("replies_dropped", 0) == 0
    finally:
        sender.disconnect()
        sender.loop_stop()
        bridge.stop()
    back = Collector("127.0.0.1", broker.port, [replies], clean=False, client_id="op-" + device_id).start()
    try:
        back.wait_for(lambda m: len(back.on(replies)) >= sent, timeout=wait_s)
        codes = {json.loads(p)["code"] for _t, p, *_ in back.on(replies)}
        return sent, len(back.on(replies)), codes
    finally:
        back.stop()


@pytest.mark.slow
def test_the_recommended_queue_length_delivers_every_reply_of_a_flood(mosquitto_factory, device_id, tmp_path):
    sent, got, codes = _replies_to_a_flood(mosquitto_factory, device_id, tmp_path,
                                           example_lines("max_queued_messages"), WAIT_S)
    assert got == sent and codes == {"BAD_JSON"}


@pytest.mark.slow
def test_mosquittos_default_queue_drops_replies(mosquitto_factory, device_id, tmp_path):
    sent, got, _codes = _replies_to_a_flood(mosquitto_factory, device_id, tmp_path, "", wait_s=3)
    assert got < sent
