"""Nothing lost from a real `bms-twin run`: the broker process is killed and
restarted in the middle of the run, and the subscriber still gets every event
sequence number exactly once (after de-duplication), in order. Killing the
`bms-twin run` process leaves `offline` on the status topic by the Last Will.

The run is paced (--speed) so the outage falls inside it. As in
test_mqtt_outage.py, the private Mosquitto keeps no state across its restart, so
the publisher is paused (SIGSTOP) until the subscriber has resubscribed.
Run: .venv/bin/python -m pytest tests/mqtt_bridge/test_mqtt_run_outage.py
"""
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mqtt_helpers import WAIT_S, Collector, event_seqs, first_arrivals, wait_until

BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))
# formation (~2.7 h) then six 30-minute cycles: one CYCLE event each
DUTY = "Repeat 6 times:\n    Discharge at 100 uA for 15 minutes\n    Charge at 100 uA for 15 minutes\n"


class RunProcess:
    def __init__(self, *args):
        self.proc = subprocess.Popen([BMS_TWIN, "run", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def wait_line(self, prefix, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith(prefix):
                return line
        raise TimeoutError(f"bms-twin run: no line starting {prefix!r}; rc={self.proc.poll()}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT_S)


@pytest.mark.slow
def test_broker_restart_mid_run_loses_no_event(mosquitto_factory, device_id, tmp_path):
    broker = mosquitto_factory().start()
    event_topic = f"bms/{device_id}/event"
    col = Collector("127.0.0.1", broker.port, [event_topic], protocol=5, clean=False,
                    client_id="col-" + device_id).start()
    duty = tmp_path / "duty.txt"
    duty.write_text(DUTY)
    out = tmp_path / "run"
    run = RunProcess("--protocol", str(duty), "--out", str(out), "--device-id", device_id,
                     "--broker", broker.url, "--mqtt-queue", str(tmp_path / "q.sqlite"),
                     "--no-discovery", "--speed", "2500")
    try:
        run.wait_line("MQTT: publishing")
        assert col.wait_for(lambda m: len(event_seqs(col, event_topic)) >= 3, timeout=30)
        broker.kill()                                  # mid-formation, no clean shutdown
        time.sleep(1.5)                                # the run goes on: events pile up in its queue
        run.proc.send_signal(signal.SIGSTOP)
        try:
            broker.start()
            assert col.subscribed.wait(WAIT_S), "subscriber did not resubscribe"
        finally:
            run.proc.send_signal(signal.SIGCONT)
        assert run.proc.wait(120) == 0, run.proc.stderr.read()
        n_events = len((out / "events.jsonl").read_text().splitlines())
        assert n_events >= 10
        assert col.wait_for(lambda m: set(range(1, n_events + 1)) <= set(event_seqs(col, event_topic)),
                            timeout=30), sorted(set(range(1, n_events + 1)) - set(event_seqs(col, event_topic)))
        assert first_arrivals(event_seqs(col, event_topic)) == list(range(1, n_events + 1))
    finally:
        run.close()
        col.stop()


def test_killing_the_run_process_publishes_offline_by_last_will(mosquitto_factory, device_id, tmp_path):
    broker = mosquitto_factory().start()
    status_topic = f"bms/{device_id}/status"
    col = Collector("127.0.0.1", broker.port, [status_topic]).start()
    run = RunProcess("--out", str(tmp_path / "run"), "--device-id", device_id, "--broker", broker.url,
                     "--mqtt-queue", str(tmp_path / "q.sqlite"), "--no-discovery", "--speed", "100")
    try:
        run.wait_line("MQTT: publishing")
        assert col.wait_for(lambda m: any(p == b"online" for _, p, *_ in col.on(status_topic)), timeout=30)
        run.proc.send_signal(signal.SIGKILL)
        assert col.wait_for(lambda m: col.on(status_topic)[-1][1] == b"offline", timeout=WAIT_S)
    finally:
        run.close()
        col.stop()
    assert wait_until(lambda: run.proc.poll() is not None)
