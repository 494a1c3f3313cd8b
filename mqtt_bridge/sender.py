"""Stored rows to paho in id order, and PUBACKs back to row deletions.

Who runs what:
- the caller's thread (``Bridge.publish_frame``) stores rows in the outbox, then,
  when connected, hands them to paho itself (``hand_one`` for an event, whose
  fast path skips a thread switch, ``hand_rows`` for a batch);
- the sender thread (``_loop``, started by ``start``) deletes acknowledged rows
  (SQLite, in batches), hands the stored rows that waited (an outage, a full
  in-flight window, a restart's replay) and, while connected, the ``each_wake``
  job it was started with (the telemetry ring's flush);
- paho's network thread calls ``on_publish`` for every PUBACK (and for every
  QoS 0 message sent, which is not ours to match).

Who owns what:
- ``_hand_lock`` makes one thread at a time the hander: the holder (caller or
  sender) is the only one calling ``client.publish`` for stored rows, so rows
  reach paho in id order. It is held across ``client.publish``, which takes
  paho's own locks, so the network thread never takes it.
- ``_ack_lock`` owns the hand-off between the hander and the network thread:
  ``_mid_to_row`` (handed, awaiting PUBACK), ``_acked`` (PUBACK came, row to
  delete), ``_early`` (PUBACKs that came while a hander was between
  ``client.publish`` returning a mid and recording it), ``_handing``,
  ``_backlog`` and the ``refused_other`` count. It is a leaf lock: nothing is
  called while it is held (no paho, no SQLite, no other lock, no Event.set, no
  logging), so the network thread may take it inside paho's callback, where paho
  holds its own locks.
- the outbox serialises its own SQLite connection; ``counters`` are written
  by the sender thread only.
"""

import collections
import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt

from .outbox import Outbox

log = logging.getLogger("mqtt_bridge")

# Acked rows are deleted in batches: at this many, or at the sender's next wake.
ACK_BATCH = 256
# The sender's wake timeout bounds how long acked rows linger; it keeps idle fleets cheap.
SENDER_IDLE_S = 2.0


class Sender:
    def __init__(self, client: mqtt.Client, outbox: Outbox, connected: threading.Event, wake: threading.Event,
                 window: int, device_id: str, each_wake: Callable[[], None]) -> None:
        self._client = client
        self._outbox = outbox
        self._connected = connected
        self._window = window
        self._device_id = device_id
        self._hand_lock = threading.Lock()
        self._ack_lock = threading.Lock()
        self._mid_to_row: dict[int, int] = {}
        self._acked: list = []        # (row id, refused by the broker)
        self._early: dict[int, bool] = {}   # mid -> refused
        self._handing = False
        self._backlog = False         # stored rows wait for window room: come back on acks
        self._wake = wake             # set by anyone with work for the sender thread
        self._each_wake = each_wake
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.counters: collections.Counter = collections.Counter()
        # Messages not from the queue (status, discovery, replies) the broker refused
        # (MQTT 5 PUBACK >= 0x80, e.g. 135 Not authorized); written under _ack_lock.
        self.refused_other = 0
        self._said_refused_other = False

    # ------------------------------------------------------- caller's thread

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="mqtt-bridge-sender-" + self._device_id,
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """End the sender thread (after paho's loop has stopped)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def hand_one(self, row_id: int, topic: str, payload: bytes) -> None:
        """An event just stored as ``row_id``: hand it to paho now if nothing older waits."""
        if self._connected.is_set():
            with self._hand_lock:
                with self._ack_lock:
                    room = len(self._mid_to_row) < self._window
                if room and self._outbox.mark_handed(row_id):
                    self._publish_rows(((row_id, topic, payload, 1, False),))
                    return
        with self._ack_lock:
            self._backlog = True
        self._wake.set()

    def rows_stored(self) -> None:
        """Rows were stored: hand them on this thread when connected, else leave them to the sender."""
        if self._connected.is_set():
            self.hand_rows()
        else:
            self._wake.set()

    def idle(self) -> bool:
        """Nothing handed awaits its PUBACK, and no acked row awaits deletion."""
        with self._ack_lock:
            return not self._mid_to_row and not self._acked

    # ------------------------------------------------------- caller or sender

    def hand_rows(self) -> None:
        """Hand stored rows to paho in id order, as many as the in-flight window has room for."""
        with self._hand_lock:
            with self._ack_lock:
                room = self._window - len(self._mid_to_row)
                if room <= 0:
                    self._backlog = True
                    return
            rows = self._outbox.next_rows(room)
            more = len(rows) == room     # maybe more stored rows than room: come back on acks
            with self._ack_lock:
                self._backlog = more
            if rows:
                self._publish_rows(rows)
        if more:
            self._wake.set()

    def _publish_rows(self, rows) -> None:
        """``client.publish`` each row and record its mid (hand lock held)."""
        with self._ack_lock:
            self._handing = True   # on_publish keeps acks for mids not yet recorded
        try:
            for row_id, topic, payload, qos, retain in rows:
                mid = self._client.publish(topic, payload, qos=qos, retain=bool(retain)).mid
                with self._ack_lock:
                    refused = self._early.pop(mid, None)
                    if refused is None:
                        self._mid_to_row[mid] = row_id
                    else:                          # its PUBACK beat publish() returning
                        self._acked.append((row_id, refused))
        finally:
            with self._ack_lock:
                self._handing = False
                # Every mid handed is recorded: what is left acked other messages
                # (status, discovery, replies, telemetry).
                refused_other = sum(1 for refused in self._early.values() if refused)
                self.refused_other += refused_other
                self._early.clear()
            if refused_other:
                self._say_refused_other()

    # -------------------------------------------------------- sender thread

    def _loop(self) -> None:
        while not self._stopping:
            # Woken by work (connect, a full ack batch, window room, an offline frame, flush).
            self._wake.wait(SENDER_IDLE_S)
            self._wake.clear()
            self._delete_acked()
            if not self._connected.is_set():
                continue
            self._each_wake()
            self.hand_rows()

    def _delete_acked(self) -> None:
        """Delete acknowledged rows, in one transaction per batch."""
        with self._ack_lock:
            if not self._acked:
                return
            acked, self._acked = self._acked, []
        ids = []
        for row, refused in acked:
            ids.append(row)
            if refused:
                # The broker refused it (MQTT 5, e.g. 135 Not authorized): resending won't help.
                self.counters["rejected_by_broker"] += 1
                log.warning("%s: broker refused a stored message (row %d)", self._device_id, row)
        self._outbox.ack(ids)
        self.counters["stored_acked"] += len(ids)

    # ------------------------------------------------- paho's network thread

    def on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        refused = bool(getattr(reason_code, "is_failure", False))
        with self._ack_lock:
            row = self._mid_to_row.pop(mid, None)
            if row is None:
                if self._handing:
                    self._early[mid] = refused   # maybe ours, its mid not recorded yet
                    return
                if not refused:
                    return                       # status, discovery, a reply, telemetry: delivered
                self.refused_other += 1
            else:
                self._acked.append((row, refused))
                wake = len(self._acked) >= ACK_BATCH or (self._backlog and len(self._mid_to_row) <= self._window // 2)
        if row is None:
            self._say_refused_other()
        elif wake:
            self._wake.set()   # rows to delete, or room to hand stored rows that wait

    def _say_refused_other(self) -> None:
        """Log the first refusal of a message that is not a stored row (outside the ack lock)."""
        if not self._said_refused_other:
            self._said_refused_other = True
            log.warning("%s: the broker refused a message (status, discovery or a reply; not authorized?)",
                        self._device_id)
