"""Nothing lost: broker killed and restarted mid-run, publisher killed.

A fake controller process (mqtt_fake_device.py) drives a real Bridge against a
private mosquitto (persistence off). The subscriber must end up with every
event seq exactly once after de-duplication, in order; killing the publisher
with SIGKILL must leave `offline` on the status topic (Last Will).

Mosquitto here keeps no state across its own restart (persistence off), so the
test lets the subscriber resubscribe before the publisher reconnects (the
publisher is paused with SIGSTOP while the broker comes back); with a
persistent broker and session that ordering is not needed (docs/mqtt.md).
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from mqtt_helpers import WAIT_S, Collector, event_seqs, first_arrivals, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "mqtt_fake_device.py")


class DeviceProcess:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, SCRIPT, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.last_seq = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_line(self, predicate, timeout: float = WAIT_S) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("device process: no matching line; rc=%s" % self.proc.poll())
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line.startswith("SEQ "):
                self.last_seq = int(line.split()[1])
            if predicate(line):
                return line

    def wait_seq(self, n: int, timeout: float = WAIT_S) -> None:
        if self.last_seq < n:
            self.wait_line(lambda line: line == "SEQ %d" % n, timeout)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT_S)


@pytest.mark.slow
def test_broker_restart_loses_no_event_and_last_will_says_offline(mosquitto_factory, device_id, tmp_path):
    broker = mosquitto_factory().start()
    event_topic = "bms/%s/event" % device_id
    status_topic = "bms/%s/status" % device_id
    col = Collector("127.0.0.1", broker.port, [event_topic, status_topic], protocol=5,
                    clean=False, client_id="col-" + device_id).start()
    n_events = 240
    dev = DeviceProcess("--broker", broker.url, "--device", device_id, "--queue", str(tmp_path / "q.sqlite"),
                        "--events", str(n_events), "--interval-ms", "10")
    try:
        dev.wait_line(lambda line: line == "CONNECTED")
        dev.wait_seq(60)
        broker.kill()                      # outage begins, no clean shutdown
        seq_at_kill = dev.last_seq
        dev.wait_seq(seq_at_kill + 60)     # events keep coming while the broker is gone
        assert wait_until(lambda: not col.subscribed.is_set())
        dev.signal(signal.SIGSTOP)         # let the subscriber resubscribe first (module docstring)
        try:
            broker.start()
            assert col.subscribed.wait(WAIT_S), "subscriber did not resubscribe"
        finally:
            dev.signal(signal.SIGCONT)
        dev.wait_line(lambda line: line == "DONE", timeout=30)
        assert col.wait_for(lambda msgs: set(range(1, n_events + 1)) <= set(event_seqs(col, event_topic)),
                            timeout=30), "missing: %s" % sorted(set(range(1, n_events + 1))
                                                                 - set(event_seqs(col, event_topic)))
        seqs = event_seqs(col, event_topic)
        assert first_arrivals(seqs) == list(range(1, n_events + 1))
        assert seq_at_kill < n_events  # the outage really was mid-run
        # Payloads stayed intact through the store: each matches the synthetic frame.
        first = json.loads(col.on(event_topic)[0][1])
        assert first["schema"] == "bms-event/1" and first["device"] == device_id and first["event"] == "STATE"

        n_status = len(col.on(status_topic))
        dev.signal(signal.SIGKILL)
        assert col.wait_for(lambda msgs: len(col.on(status_topic)) > n_status, timeout=WAIT_S)
        assert col.on(status_topic)[-1][1] == b"offline"
    finally:
        dev.close()
        col.stop()


def test_events_stored_by_a_killed_process_are_sent_by_the_next(mosquitto_factory, device_id, tmp_path):
    broker = mosquitto_factory()           # configured, not started: the first process never connects
    queue_path = str(tmp_path / "q.sqlite")
    first = DeviceProcess("--broker", broker.url, "--device", device_id, "--queue", queue_path,
                          "--events", "50", "--interval-ms", "1")
    try:
        first.wait_line(lambda line: line == "DONE")
        first.signal(signal.SIGKILL)
    finally:
        first.close()
    broker.start()
    event_topic = "bms/%s/event" % device_id
    col = Collector("127.0.0.1", broker.port, [event_topic]).start()
    second = DeviceProcess("--broker", broker.url, "--device", device_id, "--queue", queue_path,
                           "--events", "10", "--start-seq", "51", "--exit")
    try:
        assert second.wait_line(lambda line: line.startswith("FLUSHED"), timeout=30) == "FLUSHED True"
        assert col.wait_for(lambda msgs: len(set(event_seqs(col, event_topic))) >= 60, timeout=WAIT_S)
        assert first_arrivals(event_seqs(col, event_topic)) == list(range(1, 61))
    finally:
        second.close()
        col.stop()
