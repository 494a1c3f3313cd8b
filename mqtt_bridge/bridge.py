"""The telemetry bridge: controller frames in, MQTT out, commands back.

``Bridge`` is the public entry. It checks its settings, builds the paho client
and the parts that do the work, routes frames to them and starts and stops the
threads. One job per part:

- ``paho_client.py``: the paho client, and why connecting failed;
- ``numbering.py``: the run id every payload carries, events lost before the bridge;
- ``retained.py``: when the retained state and limits are due (coalescing);
- ``telemetry_ring.py``: telemetry at QoS 0, its rate limit, its outage ring buffer;
- ``outbox.py``: the SQLite store-and-forward queue;
- ``sender.py``: stored rows to paho in order, PUBACKs back (the sender thread);
- ``intake.py``: commands checked (``reply_to.py``: where their replies may go),
  de-duplicated, queued and run between ticks as the controller has room;
- ``delivery.py``: what was delivered, for the run's summary;
- ``sink.py``: the run loop's sink that makes the bridge at the first frame.

This module (~410 lines) is the routing and the thread start/stop between them.

Threads (none of them the controller's), and what each owns:
- paho's network thread (``loop_start``) runs the callbacks: ``_on_connect`` and
  ``_on_disconnect`` here set and clear ``_connected`` (an Event the parts read),
  and write ``counters``; failed attempts go to paho_client.ConnectFailures
  (``last_connect_error``); ``_on_message`` answers Home Assistant's birth message
  here (``_rediscovered_at``) and passes commands to intake.py; ``on_publish`` is
  sender.py's. None of them touches the controller or blocks.
- the sender thread: see sender.py.
- the caller's thread (the run loop) calls ``publish_frame(s)`` and
  ``drain_commands`` (or the sink methods); it alone writes ``_events_stored``,
  ``_rows_stored``, the numbering, retained.py's last keys and the ring's rate
  limit, and only it calls the controller (in ``drain_commands``).

What goes where (docs/mqtt.md):
- event frames -> outbox (SQLite) -> ``event`` QoS 1, in order, at least once;
- state and limits -> outbox, retained, QoS 1, coalesced, only when they change;
- telemetry -> ``telemetry`` QoS 0 at most once per ``telemetry_period_ms`` of the
  controller's clock; during an outage a ring buffer keeps the newest ones and
  the next message sent carries how many were dropped.
"""

import collections
import copy
import logging
import os
import threading
import time

from typing import TYPE_CHECKING

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from . import payloads
from .config import DEFAULT_BROKER_URL, BrokerConfig, BrokerUrlError, normalise_protocol, parse_broker_url
from .discovery import discovery_configs
from .delivery import delivery_report
from .errors import FrameError, SettingError
from .intake import CommandIntake
from .numbering import Numbering
from .outbox import Outbox
from .paho_client import ConnectFailures, make_client
from .retained import RetainedTopics
from .sender import Sender
from .telemetry_ring import TelemetryRing
from .topics import STATUS_OFFLINE, STATUS_ONLINE, Topics

if TYPE_CHECKING:
    from .embedded import EmbeddedBroker

log = logging.getLogger("mqtt_bridge")

HA_STATUS_TOPIC_SUFFIX = "/status"   # <discovery_prefix>/status carries HA's birth message


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
                 inflight_window: int = 200, command_queue_max: int = 64, synchronous: str = "NORMAL",
                 reply_window: int = 1000, rediscovery_min_s: float = 10.0) -> None:
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
        _positive_int("telemetry_period_ms", telemetry_period_ms)
        # Inventory drift refreshes the retained state at most this often (controller
        # time); by default never more often than telemetry, and at least 10 s apart.
        if state_period_ms is None:
            state_period_ms = max(10_000, telemetry_period_ms)
        _positive_int("state_period_ms", state_period_ms)
        self.discovery = discovery
        self.discovery_prefix = discovery_prefix
        _positive_int("inflight_window", inflight_window)
        _positive_int("telemetry_buffer", telemetry_buffer)
        _positive_int("command_queue_max", command_queue_max)
        _positive_int("reply_window", reply_window)
        if not isinstance(rediscovery_min_s, (int, float)) or isinstance(rediscovery_min_s, bool) \
                or not rediscovery_min_s >= 0:
            raise SettingError("rediscovery_min_s", rediscovery_min_s, "must be a number of seconds >= 0")
        # Home Assistant's birth message re-announces discovery, the first at once and
        # then at most once per rediscovery_min_s: a flood of "online" on its status
        # topic must not make a flood of configs (they are retained on the broker anyway).
        self._rediscovery_min_s = rediscovery_min_s
        self._rediscovered_at: float | None = None     # network thread
        self.queue_path = queue_path or default_queue_path(device_id)
        self.owned_broker: EmbeddedBroker | None = None  # an embedded broker this bridge started (from_args) and stops

        self._connected = threading.Event()
        # Set when the broker has acknowledged the command subscription: until then a
        # command published to us is not delivered, so "ready" waits for it too.
        self._subscribed = threading.Event()
        self._cmd_sub_mid: int | None = None
        self._failures = ConnectFailures(device_id, cfg, self.queue_path)
        self.counters: collections.Counter = collections.Counter()   # connects; the parts keep their own
        self._events_stored = 0
        self._rows_stored = 0     # events, state and limits; caller's thread
        self._keepalive_s = keepalive_s
        # The client before the queue file: a CA file TLS cannot load (TlsCaError) leaves no file.
        client = self._client = self._make_client(client_id or "bms-twin-" + device_id,
                                                  reconnect_min_s, reconnect_max_s)
        # Opened last among the checks: a refused setting leaves no open file behind.
        self.outbox = Outbox(self.queue_path, max_rows=queue_max_rows, synchronous=synchronous)
        wake_sender = self._wake_sender = threading.Event()   # work for the sender thread
        numbering = self.numbering = Numbering(device_id)
        self._retained = RetainedTopics(self.topics, state_period_ms, numbering)
        self._ring = TelemetryRing(client, self.topics.telemetry, device_id, telemetry_period_ms, telemetry_buffer,
                                   self._connected, wake_sender, numbering)
        self._sender = Sender(client, self.outbox, self._connected, wake_sender, inflight_window, device_id,
                              each_wake=self._ring.flush)
        self._intake = CommandIntake(client, self.topics, cfg.protocol == 5, command_queue_max,
                                     limits_now=lambda: self._retained.limits_now, numbering=numbering,
                                     reply_window=reply_window)
        client.on_publish = self._sender.on_publish
        self._started = False
        self._stopping = False

    @property
    def telemetry_period_ms(self) -> int:
        return self._ring.period_ms

    @property
    def state_period_ms(self) -> int:
        return self._retained.state_period_ms

    # ------------------------------------------------------------------ setup

    def _make_client(self, client_id: str, reconnect_min_s: float, reconnect_max_s: float) -> mqtt.Client:
        client = make_client(self.config, client_id, self.topics.status, STATUS_OFFLINE,
                             reconnect_min_s, reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._failures.on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def start(self) -> "Bridge":
        """Connect in the background (retrying with backoff) and start the sender."""
        self._stopping = False
        self._sender.start()
        self._started = True
        kwargs: dict = {}
        if self.config.protocol == 5:
            # Commands are not queued for an offline device: a late "charge" is unsafe.
            kwargs["clean_start"] = True
        self._client.connect_async(self.config.host, self.config.port, self._keepalive_s, **kwargs)
        self._client.loop_start()
        return self

    def wait_connected(self, timeout: float) -> bool:
        """Connected and subscribed to our command topics (so a command sent now arrives)."""
        deadline = time.monotonic() + timeout
        return self._connected.wait(timeout) and self._subscribed.wait(max(0.0, deadline - time.monotonic()))

    @property
    def last_connect_error(self) -> str | None:
        """Why the last connection attempt failed; None once connected."""
        return self._failures.last

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self, timeout: float = 5.0, flush: bool = True) -> None:
        """Flush what can be flushed, publish ``offline`` (retained), disconnect, close."""
        if not self._started:      # never started (or stopped already)
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
        self._stopping = True   # before disconnect(): on_disconnect then stays quiet
        self._client.disconnect()
        self._client.loop_stop()
        self._sender.stop(timeout)
        self._started = False
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
            if len(self.outbox) == 0 and self._sender.idle() and self._ring.idle():
                return True
            self._wake_sender.set()
            time.sleep(0.005)
        return False

    def stats(self) -> dict:
        out = dict(self.counters + self._sender.counters + self._ring.counters + self._intake.counters)
        out["events_stored"] = self._events_stored
        out["rows_stored"] = self._rows_stored
        out["outbox_replayed"] = self.outbox.replayed
        out["outbox_coalesced"] = self.outbox.coalesced
        out["connect_failures"] = self._failures.count
        out["refused_other"] = self._sender.refused_other
        out["events_lost"] = self.numbering.lost
        out["replies_outstanding_max"] = self._intake.replies_outstanding_max
        out["telemetry_sent"] = self._ring.sent
        out["outbox_rows"] = len(self.outbox)
        out["outbox_evicted"] = self.outbox.evicted
        out["telemetry_buffered"] = self._ring.buffered()
        out["commands_queued"] = self._intake.pending()
        return out

    def delivery(self) -> dict:
        """What this bridge delivered, for a run's summary (delivery.py); ``why`` is None if all of it."""
        return delivery_report(self)

    # ---------------------------------------------------------- frames in

    def publish_frame(self, frame: dict) -> None:
        """Route one controller frame (docs/frames.md). Cheap when nothing is due."""
        kind = frame.get("kind")
        if kind == "telemetry":
            self._telemetry_frame(frame)
        elif kind == "event":
            payload = payloads.event_payload(frame, self.device_id)
            payload["run"] = self.numbering.event(payload["seq"])
            self._store_event(payloads.dumps(payload))
        else:
            raise FrameError("kind", kind, "expected 'telemetry' or 'event'")

    def publish_frames(self, frames: list) -> None:
        """``publish_frame`` for a tick's worth of frames; their events share one commit.

        All frames are checked before anything is stored: one bad frame refuses the lot.
        """
        events = [payloads.event_payload(f, self.device_id) for f in frames if f.get("kind") == "event"]
        for frame in frames:
            if frame.get("kind") == "telemetry":
                payloads.check_telemetry_frame(frame)
            elif frame.get("kind") != "event":
                raise FrameError("kind", frame.get("kind"), "expected 'telemetry' or 'event'")
        for payload in events:
            payload["run"] = self.numbering.event(payload["seq"])
        blobs = [payloads.dumps(payload) for payload in events]
        if len(blobs) == 1:
            self._store_event(blobs[0])
        elif blobs:
            self.outbox.put_many([(self.topics.event, blob, 1, False, False) for blob in blobs])
            self._events_stored += len(blobs)
            self._rows_stored += len(blobs)
            self._sender.rows_stored()
        for frame in frames:
            if frame.get("kind") == "telemetry":
                self._telemetry_frame(frame)

    def _store_event(self, blob: bytes) -> None:
        topic = self.topics.event
        row_id = self.outbox.put_one(topic, blob, 1, False)   # durable before anything else
        self._events_stored += 1
        self._rows_stored += 1
        self._sender.hand_one(row_id, topic, blob)

    def _telemetry_frame(self, frame: dict) -> None:
        payloads.check_telemetry_frame(frame)
        last_seq = self.numbering.last_seq
        if last_seq is not None and frame["event_seq"] < last_seq:
            self.numbering.frame(frame["event_seq"])    # the controller's count went back: a new run
        rows = self._retained.due_rows(frame)
        if rows:
            self.outbox.put_many(rows)
            self._rows_stored += len(rows)
            self._sender.rows_stored()
        self._ring.offer(frame)

    # ------------------------------------------------------ paho callbacks

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._failures.failed("broker refused the connection: %s" % reason_code)
            return
        self._failures.connected()
        if self.config.protocol == 5:
            # noLocal: do not hear our own replies on cmd/#. retainAsPublished: a command
            # published retained while we are online arrives with its retain flag (the
            # broker clears it otherwise), so intake.py refuses it as it does on reconnect.
            _, self._cmd_sub_mid = client.subscribe(
                self.topics.cmd_filter, options=SubscribeOptions(qos=1, noLocal=True, retainAsPublished=True))
        else:
            _, self._cmd_sub_mid = client.subscribe(self.topics.cmd_filter, qos=1)
        if self.discovery:
            client.subscribe(self.discovery_prefix + HA_STATUS_TOPIC_SUFFIX, qos=1)
            self._publish_discovery(client)
        client.publish(self.topics.status, STATUS_ONLINE, qos=1, retain=True)
        self.counters["connects"] += 1
        self._connected.set()
        self._wake_sender.set()

    def _publish_discovery(self, client: mqtt.Client) -> None:
        for topic, config in discovery_configs(self.device_id, self.discovery_prefix):
            client.publish(topic, payloads.dumps(config), qos=1, retain=True)

    def remove_discovery(self) -> None:
        """Delete this device's Home Assistant entities (empty retained configs)."""
        for topic, _config in discovery_configs(self.device_id, self.discovery_prefix):
            self._client.publish(topic, b"", qos=1, retain=True)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid == self._cmd_sub_mid:
            self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set() and not self._stopping:
            log.info("%s: disconnected (%s); will reconnect", self.device_id, reason_code)
        self._subscribed.clear()
        self._connected.clear()

    def _on_message(self, client, userdata, msg) -> None:
        if self.discovery and msg.topic == self.discovery_prefix + HA_STATUS_TOPIC_SUFFIX:
            last, now = self._rediscovered_at, time.monotonic()
            if msg.payload == b"online" and (last is None or now - last >= self._rediscovery_min_s):
                self._rediscovered_at = now
                self._publish_discovery(client)  # HA restarted: re-announce (its birth message)
            else:
                self.counters["rediscovery_skipped"] += 1
            return
        name = self.topics.command_name(msg.topic)
        if name is not None:
            self._intake.on_command(name, msg)

    # ---------------------------------------------------------- commands

    def pending_commands(self) -> int:
        return self._intake.pending()

    def drain_commands(self, controller, max_commands: int | None = None) -> list:
        """Run queued commands on the caller's thread; reply to each. Returns [(name, ok, code)].

        Call this from the controller's run loop between ticks: it is the only
        place the bridge calls into the controller.
        """
        return self._intake.drain(controller, max_commands)

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
