"""The telemetry bridge: controller frames in, MQTT out, commands back.

Threads (none of them the controller's):
- paho's network thread (``loop_start``) runs the callbacks. They never touch
  the controller and never block: acks go to a deque, commands are checked and
  queued, rejections are answered at once.
- the bridge's sender thread owns the store-and-forward queue's read side: it
  hands stored rows to paho in order while connected, deletes them on PUBACK and
  flushes the telemetry ring buffer after an outage.
- the caller's thread (the run loop) calls ``publish_frame`` and
  ``drain_commands``; the latter is the only place the controller is called.

What goes where (docs/mqtt.md):
- event frames -> outbox (SQLite) -> ``event`` QoS 1, in order, at least once;
- state and limits -> outbox, retained, QoS 1, coalesced, only when they change;
- telemetry -> ``telemetry`` QoS 0 at most once per ``telemetry_period_ms`` of the
  controller's clock; during an outage a ring buffer keeps the newest ones and
  the next message sent carries how many were dropped.
"""

import collections
import copy
import json
import logging
import os
import queue
import threading
import time

from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from . import payloads
from .commands import Command, Rejection, check_command
from .config import DEFAULT_BROKER_URL, BrokerConfig, BrokerUrlError, normalise_protocol, parse_broker_url
from .discovery import discovery_configs
from .errors import FrameError, SettingError
from .outbox import Outbox
from .topics import STATUS_OFFLINE, STATUS_ONLINE, Topics

if TYPE_CHECKING:
    from .embedded import EmbeddedBroker

log = logging.getLogger("mqtt_bridge")

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
HA_STATUS_TOPIC_SUFFIX = "/status"
# Acked rows are deleted in batches: at this many, or at the sender's next wake.
ACK_BATCH = 256
SENDER_IDLE_S = 2.0  # <discovery_prefix>/status carries HA's birth message


class _QuietDisconnectRace(logging.Filter):
    """paho 2.2 logs an ERROR when its loop wakes after our own disconnect(); it is harmless."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Client is not connected" not in str(record.msg)


logging.getLogger("mqtt_bridge.paho").addFilter(_QuietDisconnectRace())


def dumps(payload: dict) -> bytes:
    return _encode(payload).encode("utf-8")


def default_queue_path(device_id: str) -> str:
    """$XDG_STATE_HOME/bms-twin/mqtt/<device>.sqlite (~/.local/state if unset)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "bms-twin", "mqtt", device_id + ".sqlite")


def _positive_int(name: str, value: object) -> int:
    if type(value) is not int or value < 1:
        raise SettingError(name, value, "must be an int >= 1")
    return value


class Bridge:
    """Publish one device's frames; take its commands. See the module docstring."""

    def __init__(self, device_id: str, broker_url: str = DEFAULT_BROKER_URL, queue_path: str | None = None,
                 telemetry_period_ms: int = 1000, username: str | None = None, password: str | None = None,
                 tls_ca: str | None = None, protocol: int | str | None = None, *,
                 state_period_ms: int | None = None, discovery: bool = True, discovery_prefix: str = "homeassistant",
                 client_id: str | None = None, queue_max_rows: int = 100_000, telemetry_buffer: int = 100,
                 keepalive_s: int = 30, reconnect_min_s: float = 1, reconnect_max_s: float = 30,
                 inflight_window: int = 200, command_queue_max: int = 64, synchronous: str = "NORMAL") -> None:
        self.topics = Topics(device_id)
        self.device_id = device_id
        cfg = copy.copy(broker_url) if isinstance(broker_url, BrokerConfig) else parse_broker_url(broker_url)
        if protocol is not None:
            cfg.protocol = normalise_protocol(protocol)
        if username is not None:
            cfg.username, cfg.password = username, password
        if tls_ca is not None:
            cfg.tls_ca = tls_ca
        if cfg.tls_ca is not None and not cfg.tls:
            raise BrokerUrlError("scheme", "mqtt", "a TLS CA was given for a plain broker; use mqtts://")
        self.config = cfg
        self.telemetry_period_ms = _positive_int("telemetry_period_ms", telemetry_period_ms)
        # Inventory drift refreshes the retained state at most this often (controller
        # time); by default never more often than telemetry, and at least 10 s apart.
        if state_period_ms is None:
            state_period_ms = max(10_000, self.telemetry_period_ms)
        self.state_period_ms = _positive_int("state_period_ms", state_period_ms)
        self.discovery = discovery
        self.discovery_prefix = discovery_prefix
        self._window = _positive_int("inflight_window", inflight_window)
        _positive_int("telemetry_buffer", telemetry_buffer)
        _positive_int("command_queue_max", command_queue_max)
        self.queue_path = queue_path or default_queue_path(device_id)
        # Opened last among the checks: a refused setting leaves no open file behind.
        self.outbox = Outbox(self.queue_path, max_rows=queue_max_rows, synchronous=synchronous)
        self.owned_broker: EmbeddedBroker | None = None  # an embedded broker this bridge started (from_args) and stops

        # Caller-thread state (publish_frame).
        self._last_tel_t: int | None = None
        self._last_state_key: tuple | None = None
        self._last_state_full: tuple | None = None
        self._last_state_t: int | None = None
        self._last_limits_key: tuple | None = None
        # Read by the network thread for the set_limits pre-check; replaced, never mutated.
        self._limits_now: dict | None = None

        # Telemetry ring buffer (caller thread appends, sender thread flushes).
        self._tel_lock = threading.Lock()
        self._tel_ring: collections.deque = collections.deque(maxlen=_positive_int("telemetry_buffer", telemetry_buffer))
        self._tel_dropped = 0
        self._last_tel_info: mqtt.MQTTMessageInfo | None = None

        # Sender thread state.
        self._acked_rows: collections.deque = collections.deque()   # (row id, refused) whose PUBACK came
        self._early_acks: collections.deque = collections.deque()   # (mid, refused) acked before publish() returned
        self._mid_to_row: dict[int, int] = {}
        self._handing = False
        self._backlog = False   # stored rows wait for window room (sender hands them on acks)
        self._hand_lock = threading.Lock()  # keeps hand-over to paho in row order across threads
        self._wake = threading.Event()
        self._stopping = False
        self._sender: threading.Thread | None = None

        # Commands.
        self._commands: queue.Queue = queue.Queue(maxsize=_positive_int("command_queue_max", command_queue_max))
        self._recent_lock = threading.Lock()
        self._recent: collections.OrderedDict = collections.OrderedDict()  # (name, request key) -> reply bytes, or None while pending

        self._connected = threading.Event()
        self.last_connect_error: str | None = None
        self.counters: collections.Counter = collections.Counter()   # rare events; the hot counts are plain ints
        self._events_stored = 0
        self._telemetry_sent = 0

        try:
            self._client = self._make_client(client_id or "bms-twin-" + device_id, keepalive_s,
                                             reconnect_min_s, reconnect_max_s)
        except BaseException:
            self.outbox.close()   # e.g. an unreadable CA file: leave nothing open
            raise

    # ------------------------------------------------------------------ setup

    def _make_client(self, client_id: str, keepalive_s: int, reconnect_min_s: float,
                     reconnect_max_s: float) -> mqtt.Client:
        cfg = self.config
        v5 = cfg.protocol == 5
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                             clean_session=None if v5 else True)
        # A bug in a callback must not silently kill the network thread (paho's default).
        client.suppress_exceptions = True
        client.enable_logger(logging.getLogger("mqtt_bridge.paho"))
        # paho's own offline queue stays unbounded: a bounded one rejects the *newest*
        # messages, including the "online" and discovery configs sent on reconnect.
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)  # type: ignore[arg-type]  # floats work
        client.will_set(self.topics.status, STATUS_OFFLINE, qos=1, retain=True)
        if cfg.username is not None:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls:
            client.tls_set(ca_certs=cfg.tls_ca)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._keepalive_s = keepalive_s
        return client

    def start(self) -> "Bridge":
        """Connect in the background (retrying with backoff) and start the sender."""
        self._stopping = False
        self._sender = threading.Thread(target=self._sender_loop, name="mqtt-bridge-sender-" + self.device_id,
                                        daemon=True)
        self._sender.start()
        kwargs: dict = {}
        if self.config.protocol == 5:
            # Commands are not queued for an offline device: a late "charge" is unsafe.
            kwargs["clean_start"] = True
        self._client.connect_async(self.config.host, self.config.port, self._keepalive_s, **kwargs)
        self._client.loop_start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self, timeout: float = 5.0, flush: bool = True) -> None:
        """Flush what can be flushed, publish ``offline`` (retained), disconnect, close."""
        if self._sender is None:      # never started (or stopped already)
            self.outbox.close()
            self._stop_owned_broker()
            return
        if flush and self.connected:
            self.flush(timeout)
        if self.connected:
            info = self._client.publish(self.topics.status, STATUS_OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as exc:
                log.warning("%s: offline status not confirmed: %s", self.device_id, exc)
        self._stopping = True
        self._client.disconnect()
        self._client.loop_stop()
        self._wake.set()
        self._sender.join(timeout)
        self._sender = None
        self._connected.clear()
        self.outbox.close()
        self._stop_owned_broker()

    def _stop_owned_broker(self) -> None:
        if self.owned_broker is not None:
            self.owned_broker.stop()
            self.owned_broker = None

    def flush(self, timeout: float) -> bool:
        """Wait until every stored message is acknowledged and buffered telemetry sent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.outbox) == 0 and not self._mid_to_row and not self._tel_ring and not self._acked_rows:
                info = self._last_tel_info
                if info is None or info.is_published():
                    return True
            self._wake.set()
            time.sleep(0.005)
        return False

    def stats(self) -> dict:
        out = dict(self.counters)
        out["events_stored"] = self._events_stored
        out["telemetry_sent"] = self._telemetry_sent
        out["outbox_rows"] = len(self.outbox)
        out["outbox_evicted"] = self.outbox.evicted
        out["telemetry_buffered"] = len(self._tel_ring)
        out["commands_queued"] = self._commands.qsize()
        return out

    # ---------------------------------------------------------- frames in

    def publish_frame(self, frame: dict) -> None:
        """Route one controller frame (docs/frames.md). Cheap when nothing is due."""
        kind = frame.get("kind")
        if kind == "telemetry":
            self._telemetry_frame(frame)
        elif kind == "event":
            self._event_frame(frame)
        else:
            raise FrameError("kind", kind, "expected 'telemetry' or 'event'")

    def publish_frames(self, frames: list) -> None:
        """``publish_frame`` for a tick's worth of frames; their events share one commit.

        All frames are checked before anything is stored: one bad frame refuses the lot.
        """
        events = [f for f in frames if f.get("kind") == "event"]
        blobs = [dumps(payloads.event_payload(f, self.device_id)) for f in events]
        for frame in frames:
            if frame.get("kind") == "telemetry":
                payloads.check_telemetry_frame(frame)
            elif frame.get("kind") != "event":
                raise FrameError("kind", frame.get("kind"), "expected 'telemetry' or 'event'")
        if len(blobs) == 1:
            self._store_event(blobs[0])
        elif blobs:
            self.outbox.put_many([(self.topics.event, blob, 1, False, False) for blob in blobs])
            self._events_stored += len(blobs)
            if self._connected.is_set():
                self._hand_rows()
            else:
                self._wake.set()
        for frame in frames:
            if frame.get("kind") == "telemetry":
                self._telemetry_frame(frame)

    def _event_frame(self, frame: dict) -> None:
        self._store_event(dumps(payloads.event_payload(frame, self.device_id)))

    def _store_event(self, blob: bytes) -> None:
        topic = self.topics.event
        row_id = self.outbox.put_one(topic, blob, 1, False)   # durable before anything else
        self._events_stored += 1
        if self._connected.is_set():
            # Fast path: nothing older is waiting, so hand it to paho right here, in order.
            with self._hand_lock:
                if len(self._mid_to_row) < self._window and self.outbox.mark_handed(row_id):
                    self._handing = True
                    try:
                        self._mid_to_row[self._client.publish(topic, blob, qos=1).mid] = row_id
                    finally:
                        self._handing = False
                    if self._early_acks:
                        self._resolve_early_acks()
                    return
        self._backlog = True
        self._wake.set()

    def _telemetry_frame(self, frame: dict) -> None:
        payloads.check_telemetry_frame(frame)
        t_ms = frame["t_ms"]
        rows = []
        limits_key = payloads.limits_key(frame)   # frame already checked: plain lookups
        if limits_key != self._last_limits_key:
            self._limits_now = dict(zip(payloads.LIMIT_KEYS, limits_key))
            rows.append((self.topics.limits, dumps(payloads.limits_payload(frame, self.device_id)), 1, True, True))
            self._last_limits_key = limits_key
        state_key = payloads.state_key(frame)
        last_t = self._last_state_t
        if state_key != self._last_state_key or last_t is None or t_ms < last_t:
            due = True
        elif t_ms - last_t >= self.state_period_ms:
            # Periodic refresh, only if something (inventory, plated charge, CE) moved.
            due = self._state_full(frame) != self._last_state_full
        else:
            due = False
        if due:
            payload = payloads.state_payload(frame, self.device_id)
            rows.append((self.topics.state, dumps(payload), 1, True, True))
            self._last_state_key = state_key
            self._last_state_full = self._state_full(frame)
            self._last_state_t = t_ms
        if rows:
            self.outbox.put_many(rows)
            if self._connected.is_set():
                self._hand_rows()      # on this thread: no hand-off latency when all is well
            else:
                self._wake.set()
        last_tel = self._last_tel_t
        # A clock that goes backwards is a controller reboot: publish at once.
        if last_tel is None or t_ms - last_tel >= self.telemetry_period_ms or t_ms < last_tel:
            self._last_tel_t = t_ms
            self._send_telemetry(payloads.telemetry_payload(frame, self.device_id))

    @staticmethod
    def _state_full(frame: dict) -> tuple:
        return tuple(frame.get(k) for k in payloads.STATE_INT_FIELDS)

    def _send_telemetry(self, payload: dict) -> None:
        with self._tel_lock:
            if self._connected.is_set() and not self._tel_ring:
                self._publish_telemetry_locked(payload)
                return
            if len(self._tel_ring) == self._tel_ring.maxlen:
                self._tel_dropped += 1  # the deque evicts the oldest
                self.counters["telemetry_dropped"] += 1
            self._tel_ring.append(payload)
        self._wake.set()

    def _publish_telemetry_locked(self, payload: dict) -> bool:
        payload["dropped"] = self._tel_dropped
        info = self._client.publish(self.topics.telemetry, dumps(payload), qos=0)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            # QoS 0 while the link is down: paho drops it; count it for the next message.
            self._tel_dropped += 1
            self.counters["telemetry_dropped"] += 1
            return False
        self._tel_dropped = 0
        self._last_tel_info = info
        self._telemetry_sent += 1
        return True

    # ----------------------------------------------------------- sender

    def _sender_loop(self) -> None:
        while not self._stopping:
            # Woken by work (connect, a full ack batch, an offline frame, flush); the
            # timeout only bounds how long acked rows linger, and keeps idle fleets cheap.
            self._wake.wait(SENDER_IDLE_S)
            self._wake.clear()
            if self._early_acks:
                with self._hand_lock:   # no hander is between publish() and recording its mid
                    self._resolve_early_acks()
            self._process_acks()
            if not self._connected.is_set():
                continue
            self._flush_telemetry()
            self._hand_rows()

    def _process_acks(self) -> None:
        """Delete acknowledged rows, in one transaction per batch (sender thread)."""
        ids = []
        acked = self._acked_rows
        while acked:
            row, failed = acked.popleft()
            ids.append(row)
            if failed:
                # The broker refused it (MQTT 5, e.g. 135 Not authorized): resending won't help.
                self.counters["rejected_by_broker"] += 1
                log.warning("%s: broker refused a stored message (row %d)", self.device_id, row)
        if ids:
            self.outbox.ack(ids)
            self.counters["stored_acked"] += len(ids)

    def _resolve_early_acks(self) -> None:
        """PUBACKs that beat publish() returning: match them now that the mids are recorded."""
        early = self._early_acks
        while early:
            mid, failed = early.popleft()
            row = self._mid_to_row.pop(mid, None)
            if row is not None:
                self._acked_rows.append((row, failed))

    def _hand_rows(self) -> None:
        """Hand stored rows to paho in id order (caller or sender thread, never both at once)."""
        with self._hand_lock:
            room = self._window - len(self._mid_to_row)
            if room <= 0:
                self._backlog = True
                return
            rows = self.outbox.next_rows(room)
            self._backlog = len(rows) == room   # maybe more stored rows than room: come back on acks
            if not rows:
                return
            self._handing = True  # on_publish keeps acks for mids not yet recorded
            try:
                for row_id, topic, payload, qos, retain in rows:
                    info = self._client.publish(topic, payload, qos=qos, retain=bool(retain))
                    self._mid_to_row[info.mid] = row_id
            finally:
                self._handing = False
            if self._early_acks:
                self._resolve_early_acks()
        if len(rows) == room:
            self._wake.set()

    def _flush_telemetry(self) -> None:
        with self._tel_lock:
            while self._tel_ring and self._connected.is_set():
                if not self._publish_telemetry_locked(self._tel_ring.popleft()):
                    break

    # ------------------------------------------------------ paho callbacks

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_connect_error = str(reason_code)
            log.warning("%s: broker refused connection: %s", self.device_id, reason_code)
            return
        self.last_connect_error = None
        if self.config.protocol == 5:
            # noLocal: do not hear our own replies on cmd/#.
            client.subscribe(self.topics.cmd_filter, options=SubscribeOptions(qos=1, noLocal=True))
        else:
            client.subscribe(self.topics.cmd_filter, qos=1)
        if self.discovery:
            client.subscribe(self.discovery_prefix + HA_STATUS_TOPIC_SUFFIX, qos=1)
            self._publish_discovery(client)
        client.publish(self.topics.status, STATUS_ONLINE, qos=1, retain=True)
        self.counters["connects"] += 1
        self._connected.set()
        self._wake.set()

    def _publish_discovery(self, client: mqtt.Client) -> None:
        for topic, config in discovery_configs(self.device_id, self.discovery_prefix):
            client.publish(topic, dumps(config), qos=1, retain=True)

    def remove_discovery(self) -> None:
        """Delete this device's Home Assistant entities (empty retained configs)."""
        for topic, _config in discovery_configs(self.device_id, self.discovery_prefix):
            self._client.publish(topic, b"", qos=1, retain=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set() and not self._stopping:
            log.info("%s: disconnected (%s); will reconnect", self.device_id, reason_code)
        self._connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # Network thread: only deque/dict operations (atomic under the GIL), no SQLite, no locks.
        # Read the flag *before* looking the mid up: a hander records the mid before it
        # clears the flag, so "not found and flag was clear" means "not ours" (QoS 0 telemetry).
        handing = self._handing
        row = self._mid_to_row.pop(mid, None)
        if row is not None:
            self._acked_rows.append((row, bool(getattr(reason_code, "is_failure", False))))
            if len(self._acked_rows) >= ACK_BATCH or (self._backlog and len(self._mid_to_row) <= self._window // 2):
                self._wake.set()   # rows to delete, or room to hand stored rows that wait
        elif handing:
            self._early_acks.append((mid, bool(getattr(reason_code, "is_failure", False))))

    def _on_message(self, client, userdata, msg) -> None:
        if self.discovery and msg.topic == self.discovery_prefix + HA_STATUS_TOPIC_SUFFIX:
            if msg.payload == b"online":
                self._publish_discovery(client)  # HA restarted: re-announce (its birth message)
            return
        name = self.topics.command_name(msg.topic)
        if name is None:
            return
        response_topic = correlation = None
        props = getattr(msg, "properties", None)
        if props is not None:
            response_topic = getattr(props, "ResponseTopic", None)
            correlation = getattr(props, "CorrelationData", None)
        if msg.retain:
            # A retained command would re-run on every reconnect; refuse it.
            self._reply_now(Rejection(name, "RETAINED_IGNORED", "retained commands are not executed; "
                                      "publish with retain=false"), response_topic, correlation)
            return
        result = check_command(name, msg.payload, self._limits_now)
        if isinstance(result, Rejection):
            self.counters["commands_rejected"] += 1
            self._reply_now(result, response_topic, correlation)
            return
        result.response_topic = response_topic
        result.correlation_data = correlation
        key = self._dedupe_key(result)
        if key is not None:
            with self._recent_lock:
                if key in self._recent:
                    cached = self._recent[key]
                    if cached is not None:  # answered already: same answer, not a second execution
                        self._publish_reply(name, cached, response_topic, correlation)
                    self.counters["commands_duplicate"] += 1
                    return
                self._recent[key] = None
                while len(self._recent) > 256:
                    self._recent.popitem(last=False)
        try:
            self._commands.put_nowait(result)
        except queue.Full:
            with self._recent_lock:
                self._recent.pop(key, None)
            self._reply_now(Rejection(name, "BUSY", "command queue full; retry later", result.request_id),
                            response_topic, correlation)

    @staticmethod
    def _dedupe_key(cmd: Command) -> tuple | None:
        if cmd.correlation_data is not None:
            return (cmd.name, "c", bytes(cmd.correlation_data))
        if cmd.request_id is not None:
            return (cmd.name, "r", cmd.request_id)
        return None

    # ---------------------------------------------------------- commands

    def _reply_now(self, rejection: Rejection, response_topic, correlation) -> None:
        payload = dumps(payloads.reply_payload(self.device_id, rejection.name, False, rejection.code,
                                               rejection.message, rejection.request_id))
        self._publish_reply(rejection.name, payload, response_topic, correlation)

    def _publish_reply(self, name: str, payload: bytes, response_topic, correlation) -> None:
        topic = response_topic or self.topics.reply(name)
        properties = None
        if self.config.protocol == 5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ContentType = "application/json"
            if correlation is not None:
                properties.CorrelationData = correlation
        self._client.publish(topic, payload, qos=1, properties=properties)

    def pending_commands(self) -> int:
        return self._commands.qsize()

    def drain_commands(self, controller, max_commands: int | None = None) -> list:
        """Run queued commands on the caller's thread; reply to each. Returns [(name, ok, code)].

        Call this from the controller's run loop between ticks: it is the only
        place the bridge calls into the controller.
        """
        done: list = []
        while max_commands is None or len(done) < max_commands:
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                break
            ok, code = controller.command(cmd.name, cmd.args)
            code = code or ("OK" if ok else "REJECTED")
            self.counters["commands_ok" if ok else "commands_refused"] += 1
            payload = dumps(payloads.reply_payload(self.device_id, cmd.name, ok, code, "", cmd.request_id))
            key = self._dedupe_key(cmd)
            if key is not None:
                with self._recent_lock:
                    if key in self._recent:
                        self._recent[key] = payload
            self._publish_reply(cmd.name, payload, cmd.response_topic, cmd.correlation_data)
            done.append((cmd.name, bool(ok), code))
        return done

    # ------------------------------------------- run-loop sink (twin/run.py)

    def frame(self, frame: dict) -> None:
        """Sink interface of twin.run.run_closed_loop: one telemetry frame."""
        self.publish_frame(frame)

    def event(self, frame: dict) -> None:
        """Sink interface: one event frame."""
        self.publish_frame(frame)

    def poll(self, controller) -> None:
        """Sink interface: called by the run loop between ticks, on its own thread."""
        self.drain_commands(controller)

    # ------------------------------------------------------------- CLI

    @classmethod
    def from_args(cls, args, device_id: str, **overrides) -> "Bridge | None":
        """Build (not start) a bridge from ``add_broker_arguments`` options; None if --no-mqtt."""
        from .cli_options import bridge_from_args
        return bridge_from_args(cls, args, device_id, **overrides)
