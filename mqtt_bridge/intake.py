"""Commands in: checked on arrival, de-duplicated, queued, run on the controller's thread.

Threads and what each owns:
- paho's network thread (``on_command``) judges each command (commands.py),
  answers a refusal at once and puts an accepted one on ``_queue``; it never
  touches the controller and never blocks.
- the caller's thread (``drain``, from the run loop between ticks) takes commands
  off ``_queue``, runs them on the controller and answers each: the only place
  the bridge calls into the controller.
- ``_queue`` (queue.Queue, bounded) is the hand-off between the two. ``_recent``
  (request key -> reply bytes, None while the command waits) is shared by both
  and held under ``_recent_lock``. The network thread writes the
  ``commands_rejected``/``commands_duplicate`` counters, the caller's thread
  ``commands_ok``/``commands_refused``.

A command sent twice (a QoS 1 redelivery, an operator's retry with the same
request id or MQTT 5 correlation data) runs once; the repeat gets the first
answer, or none while the first still waits.
"""

import collections
import queue
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from . import payloads
from .commands import Command, Rejection, check_command
from .topics import Topics

# Request keys remembered for de-duplication (oldest forgotten first).
RECENT_MAX = 256


class CommandIntake:
    def __init__(self, client: mqtt.Client, topics: Topics, mqtt5: bool, queue_max: int,
                 limits_now: Callable[[], dict | None]) -> None:
        self._client = client
        self._topics = topics
        self._mqtt5 = mqtt5
        self._limits_now = limits_now
        self._queue: queue.Queue = queue.Queue(maxsize=queue_max)
        self._recent_lock = threading.Lock()
        self._recent: collections.OrderedDict = collections.OrderedDict()
        self.counters: collections.Counter = collections.Counter()

    # ------------------------------------------------- paho's network thread

    def on_command(self, name: str, msg: mqtt.MQTTMessage) -> None:
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
        result = check_command(name, msg.payload, self._limits_now())
        if isinstance(result, Rejection):
            self.counters["commands_rejected"] += 1
            self._reply_now(result, response_topic, correlation)
            return
        result.response_topic = response_topic
        result.correlation_data = correlation
        key = _dedupe_key(result)
        if key is not None:
            with self._recent_lock:
                if key in self._recent:
                    cached = self._recent[key]
                    if cached is not None:  # answered already: same answer, not a second execution
                        self._publish_reply(name, cached, response_topic, correlation)
                    self.counters["commands_duplicate"] += 1
                    return
                self._recent[key] = None
                while len(self._recent) > RECENT_MAX:
                    self._recent.popitem(last=False)
        try:
            self._queue.put_nowait(result)
        except queue.Full:
            with self._recent_lock:
                self._recent.pop(key, None)
            self._reply_now(Rejection(name, "BUSY", "command queue full; retry later", result.request_id),
                            response_topic, correlation)

    def _reply_now(self, rejection: Rejection, response_topic, correlation) -> None:
        payload = payloads.dumps(payloads.reply_payload(self._topics.device_id, rejection.name, False,
                                                        rejection.code, rejection.message, rejection.request_id))
        self._publish_reply(rejection.name, payload, response_topic, correlation)

    # ------------------------------------------------------- caller's thread

    def pending(self) -> int:
        return self._queue.qsize()

    def drain(self, controller, max_commands: int | None = None) -> list:
        """Run queued commands on the controller; reply to each. Returns [(name, ok, code)]."""
        done: list = []
        while max_commands is None or len(done) < max_commands:
            try:
                cmd = self._queue.get_nowait()
            except queue.Empty:
                break
            ok, code = controller.command(cmd.name, cmd.args)
            code = code or ("OK" if ok else "REJECTED")
            self.counters["commands_ok" if ok else "commands_refused"] += 1
            payload = payloads.dumps(payloads.reply_payload(self._topics.device_id, cmd.name, ok, code, "",
                                                            cmd.request_id))
            key = _dedupe_key(cmd)
            if key is not None:
                with self._recent_lock:
                    if key in self._recent:
                        self._recent[key] = payload
            self._publish_reply(cmd.name, payload, cmd.response_topic, cmd.correlation_data)
            done.append((cmd.name, bool(ok), code))
        return done

    # ------------------------------------------------------------ either

    def _publish_reply(self, name: str, payload: bytes, response_topic, correlation) -> None:
        topic = response_topic or self._topics.reply(name)
        properties = None
        if self._mqtt5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ContentType = "application/json"
            if correlation is not None:
                properties.CorrelationData = correlation
        self._client.publish(topic, payload, qos=1, properties=properties)


def _dedupe_key(cmd: Command) -> tuple | None:
    if cmd.correlation_data is not None:
        return (cmd.name, "c", bytes(cmd.correlation_data))
    if cmd.request_id is not None:
        return (cmd.name, "r", cmd.request_id)
    return None
