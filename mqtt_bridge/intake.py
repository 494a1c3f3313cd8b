"""Commands in: checked on arrival, de-duplicated, queued, run on the controller's thread.

Threads and what each owns:
- paho's network thread (``on_command``) decides where the answer goes
  (reply_to.py), judges the command (commands.py), answers a refusal at once and
  puts an accepted command on ``_queue``; it never touches the controller and
  never blocks.
- the caller's thread (``drain``, from the run loop between ticks) takes commands
  off ``_queue``, runs them on the controller and answers each: the only place
  the bridge calls into the controller. It runs no more of them than the
  controller has room to record as events (``room_for_command``), so a flood of
  valid commands waits in the bounded queue (and the rest is answered BUSY)
  instead of pushing the controller's events out.
- ``_queue`` (queue.Queue, bounded) is the hand-off between the two. ``_recent``
  (request key -> reply bytes, None while the command waits) is shared by both
  and held under ``_recent_lock``. ``_replies`` (replies handed to paho and not
  yet acknowledged) is shared by both and held under ``_reply_lock``, a leaf lock
  (paho is called outside it), with the reply counters. The network thread
  writes the refusal counters, the caller's thread ``commands_ok``/``commands_refused``.

A command sent twice (a QoS 1 redelivery, an operator's retry with the same
request id or MQTT 5 correlation data) runs once; the repeat gets the first
answer, or none while the first still waits. "The same" is the same name,
arguments, request id, correlation data and reply topic: two clients that both
number their requests from 1 do not swallow each other's commands.

Replies are bounded: with ``reply_window`` replies not yet acknowledged by the
broker, ``drain`` runs no further command (they wait, then are answered BUSY) and
a further refusal is not answered but counted (``replies_dropped``), so no flood,
of good commands or bad, can queue an unbounded number of replies in front of
the device's events. Every refusal is counted by
its code and logged at the 1st, 10th, 100th … of each code.
"""

import collections
import json
import logging
import queue
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from bmsfw.telemetry import COMMAND_EVENTS_MAX, MAX_PENDING, TICK_EVENTS_MAX

from . import payloads
from .commands import Command, Rejection, check_command, request_id_in
from .numbering import Numbering
from .reply_to import correlation_error, own_reply_topic, response_topic_error, shown
from .topics import Topics

log = logging.getLogger("mqtt_bridge")

# Request keys remembered for de-duplication (oldest forgotten first).
RECENT_MAX = 256
# Commands one drain runs on a controller that cannot say how much room its event
# queue has (over HIL, a test double): as many as a bmsfw controller's queue surely
# holds beside one tick's events, each command recording the most it can.
BLIND_COMMANDS_PER_DRAIN = max(1, (MAX_PENDING - TICK_EVENTS_MAX) // COMMAND_EVENTS_MAX)


class CommandIntake:
    def __init__(self, client: mqtt.Client, topics: Topics, mqtt5: bool, queue_max: int,
                 limits_now: Callable[[], dict | None], numbering: Numbering, reply_window: int) -> None:
        self._client = client
        self._topics = topics
        self._mqtt5 = mqtt5
        self._limits_now = limits_now
        self._numbering = numbering
        self._queue: queue.Queue = queue.Queue(maxsize=queue_max)
        self._recent_lock = threading.Lock()
        self._recent: collections.OrderedDict = collections.OrderedDict()
        self._reply_window = reply_window
        self._reply_lock = threading.Lock()
        self._replies: collections.deque = collections.deque()   # MQTTMessageInfo, oldest first
        self._replies_reserved = 0
        self.replies_outstanding_max = 0
        self.counters: collections.Counter = collections.Counter()

    # ------------------------------------------------- paho's network thread

    def on_command(self, name: str, msg: mqtt.MQTTMessage) -> None:
        response_topic = correlation = None
        props = getattr(msg, "properties", None)
        if props is not None:
            response_topic = getattr(props, "ResponseTopic", None)
            correlation = getattr(props, "CorrelationData", None)
        reply_topic = own_reply_topic(self._topics, name)
        if reply_topic is None:
            self.counters["commands_unanswerable"] += 1
            self._note("UNANSWERABLE", "a command on %s: no reply topic can be made of its name"
                       % shown(msg.topic))
            return
        if response_topic is not None:
            why = response_topic_error(self._topics, name, response_topic)
            if why is not None:
                self._refuse(Rejection(name, "BAD_RESPONSE_TOPIC", why, request_id_in(msg.payload)),
                             reply_topic, correlation)
                return
            reply_topic = response_topic
        why = correlation_error(correlation)
        if why is not None:
            self._refuse(Rejection(name, "BAD_CORRELATION_DATA", why, request_id_in(msg.payload)), reply_topic, None)
            return
        if msg.retain:
            # Retained, it would run again on every reconnect. Live, a retained command
            # shows its flag only through the Retain As Published subscription (MQTT 5).
            self._refuse(Rejection(name, "RETAINED_IGNORED", "retained commands are not executed; "
                                   "publish with retain=false", request_id_in(msg.payload)), reply_topic, correlation)
            return
        result = check_command(name, msg.payload, self._limits_now())
        if isinstance(result, Rejection):
            self._refuse(result, reply_topic, correlation)
            return
        result.reply_topic = reply_topic
        result.correlation_data = correlation
        key = _dedupe_key(result)
        if key is not None:
            with self._recent_lock:
                cached = self._recent.get(key, False)
                if cached is False:
                    self._recent[key] = None
                    while len(self._recent) > RECENT_MAX:
                        self._recent.popitem(last=False)
            if cached is not False:
                self.counters["commands_duplicate"] += 1
                if cached is not None:  # answered already: same answer, not a second execution
                    self._publish_reply(cached, reply_topic, correlation, bounded=True)
                return
        try:
            self._queue.put_nowait(result)
        except queue.Full:
            with self._recent_lock:
                self._recent.pop(key, None)
            self._refuse(Rejection(name, "BUSY", "command queue full; retry later", result.request_id),
                         reply_topic, correlation)

    def _refuse(self, rejection: Rejection, reply_topic: str, correlation: bytes | None) -> None:
        self.counters["commands_rejected"] += 1
        self._note(rejection.code, "%s refused: %s" % (shown(rejection.name), rejection.message))
        payload = payloads.dumps(payloads.reply_payload(self._topics.device_id, rejection.name, False,
                                                        rejection.code, rejection.message, rejection.request_id,
                                                        self._numbering.run))
        self._publish_reply(payload, reply_topic, correlation, bounded=True)

    def _note(self, code: str, text: str) -> None:
        """Log the 1st, 10th, 100th … refusal of each code: a flood makes a few lines, not one per command."""
        key = "refused_" + code
        self.counters[key] += 1
        n = self.counters[key]
        if str(n).rstrip("0") == "1":
            log.warning("%s: command %s (%s #%d)", self._topics.device_id, text, code, n)

    # ------------------------------------------------------- caller's thread

    def pending(self) -> int:
        return self._queue.qsize()

    def drain(self, controller, max_commands: int | None = None) -> list:
        """Run queued commands on the controller; reply to each. Returns [(name, ok, code)].

        As many as the controller's event queue has room for (``events.room_for_command()``
        of a bmsfw controller), or BLIND_COMMANDS_PER_DRAIN for one that cannot say.
        """
        room_for_command = getattr(getattr(controller, "events", None), "room_for_command", None)
        done: list = []
        while max_commands is None or len(done) < max_commands:
            if room_for_command is not None:
                if not room_for_command():
                    break
            elif len(done) >= BLIND_COMMANDS_PER_DRAIN:
                break
            with self._reply_lock:
                reply_room = self._reply_room()
            if not reply_room:
                break       # the broker has not taken the last replies yet: commands wait
            try:
                cmd = self._queue.get_nowait()
            except queue.Empty:
                break
            ok, code = controller.command(cmd.name, cmd.args)
            code = code or ("OK" if ok else "REJECTED")
            self.counters["commands_ok" if ok else "commands_refused"] += 1
            payload = payloads.dumps(payloads.reply_payload(self._topics.device_id, cmd.name, ok, code, "",
                                                            cmd.request_id, self._numbering.run))
            key = _dedupe_key(cmd)
            if key is not None:
                with self._recent_lock:
                    if key in self._recent:
                        self._recent[key] = payload
            self._publish_reply(payload, cmd.reply_topic, cmd.correlation_data, bounded=False)
            done.append((cmd.name, bool(ok), code))
        return done

    # ------------------------------------------------------------ either

    def _reply_room(self) -> bool:
        """Fewer than ``reply_window`` replies handed to paho wait for their PUBACK (reply lock held)."""
        replies = self._replies
        while replies and replies[0].is_published():
            replies.popleft()
        return len(replies) + self._replies_reserved < self._reply_window

    def _publish_reply(self, payload: bytes, topic: str, correlation: bytes | None, bounded: bool) -> None:
        """Hand one reply to paho; a ``bounded`` one (a refusal) is dropped when the window is full."""
        with self._reply_lock:
            if bounded and not self._reply_room():
                self.counters["replies_dropped"] += 1
                return
            self._replies_reserved += 1
        properties = None
        if self._mqtt5:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ContentType = "application/json"
            if correlation is not None:
                properties.CorrelationData = correlation
        info = None
        try:
            info = self._client.publish(topic, payload, qos=1, properties=properties)
        finally:
            with self._reply_lock:
                self._replies_reserved -= 1
                if info is not None:
                    self.counters["replies_sent"] += 1
                    if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                        self._replies.append(info)
                        self.replies_outstanding_max = max(self.replies_outstanding_max, len(self._replies))


def _dedupe_key(cmd: Command) -> tuple | None:
    if cmd.correlation_data is None and cmd.request_id is None:
        return None
    correlation = bytes(cmd.correlation_data) if cmd.correlation_data is not None else None
    return (cmd.name, cmd.reply_topic, correlation, repr(cmd.request_id),
            json.dumps(cmd.args, sort_keys=True))
