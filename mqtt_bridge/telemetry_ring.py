"""Telemetry out: QoS 0, rate-limited by the controller's clock, ring-buffered offline.

At most one message per ``period_ms`` of the frame's ``t_ms`` (a clock that goes
backwards is a controller reboot: publish at once). While the broker is away a
ring buffer keeps the newest ``buffer`` payloads; the next message sent carries
in ``dropped`` how many were lost (evicted, or refused by paho) since the last one.

Threads: ``offer`` runs on the caller's thread, ``flush`` on the sender thread
after a reconnect. The rate limit (``_last_t``) is the caller's alone; the ring,
the dropped count and the counters are shared and held under ``_lock``, which is
also held while handing a payload to paho, so messages leave in ring order.
"""

import collections
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from . import payloads
from .numbering import Numbering


class TelemetryRing:
    def __init__(self, client: mqtt.Client, topic: str, device_id: str, period_ms: int, buffer: int,
                 connected: threading.Event, wake_sender: threading.Event, numbering: Numbering) -> None:
        self._client = client
        self._topic = topic
        self._device_id = device_id
        self.period_ms = period_ms
        self._connected = connected
        self._wake_sender = wake_sender
        self._numbering = numbering
        self._last_t: int | None = None
        self._lock = threading.Lock()
        self._ring: collections.deque = collections.deque(maxlen=buffer)
        self._dropped = 0          # since the last message sent
        self._last_info: mqtt.MQTTMessageInfo | None = None
        self.sent = 0
        self.counters: collections.Counter = collections.Counter()   # "telemetry_dropped"

    def offer(self, frame: dict) -> None:
        """A checked telemetry frame: publish (or buffer) it if a period has passed."""
        t_ms = frame["t_ms"]
        last = self._last_t
        if last is not None and 0 <= t_ms - last < self.period_ms:
            return
        self._last_t = t_ms
        payload = payloads.telemetry_payload(frame, self._device_id, 0, self._numbering.run)
        with self._lock:
            if self._connected.is_set() and not self._ring:
                self._publish_locked(payload)
                return
            if len(self._ring) == self._ring.maxlen:
                self._dropped += 1  # the deque evicts the oldest
                self.counters["telemetry_dropped"] += 1
            self._ring.append(payload)
        self._wake_sender.set()

    def flush(self) -> None:
        """Send what the ring holds, oldest first, while connected (sender thread)."""
        with self._lock:
            while self._ring and self._connected.is_set():
                if not self._publish_locked(self._ring.popleft()):
                    break

    def idle(self) -> bool:
        """Nothing buffered, and the last message sent has left paho."""
        with self._lock:
            info = self._last_info
            return not self._ring and (info is None or info.is_published())

    def buffered(self) -> int:
        return len(self._ring)

    def _publish_locked(self, payload: dict) -> bool:
        payload["dropped"] = self._dropped
        info = self._client.publish(self._topic, payloads.dumps(payload), qos=0)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            # QoS 0 while the link is down: paho drops it; count it for the next message.
            self._dropped += 1
            self.counters["telemetry_dropped"] += 1
            return False
        self._dropped = 0
        self._last_info = info
        self.sent += 1
        return True
