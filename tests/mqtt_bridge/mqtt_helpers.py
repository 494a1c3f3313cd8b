"""Shared helpers for the MQTT bridge tests: a real Mosquitto process per test
that needs restarts/TLS/ACL, a collecting subscriber, synthetic frames
(docs/frames.md) and a fake controller that records what reached it.

Imported by the tests and by mqtt_fake_device.py (run as a separate process).
"""

import argparse
import getpass
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_bridge.cli_options import add_broker_arguments

MOSQUITTO = "/usr/sbin/mosquitto"
# The users of the secure broker (conftest.secure_broker, docs/acl.example's roles).
# The device's password is distinctive: the secret tests look for it in every output.
DEVICE_PASSWORD = "dev-Pw9-zQx7-secret"
PASSWORDS = {"dashboard": "dash-pw", "operator": "op-pw"}
SHARED_BROKER = ("127.0.0.1", 1883)
WAIT_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_device(prefix: str = "t") -> str:
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class Mosquitto:
    """A private mosquitto on a free port; config text is ours, persistence off.

    ``defaults=False`` leaves out persistence and max_queued_messages, for a test
    of those settings themselves (``extra_conf`` then gives them, or Mosquitto's own apply).
    """

    def __init__(self, workdir: str, extra_conf: str = "", port: int | None = None, listener_conf: str = "",
                 defaults: bool = True) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.conf_path = os.path.join(workdir, "mosquitto-%d.conf" % self.port)
        self.log_path = os.path.join(workdir, "mosquitto-%d.log" % self.port)
        base = listener_conf or "listener %d 127.0.0.1\nallow_anonymous true\n" % self.port
        with open(self.conf_path, "w") as f:
            f.write(base)
            # Stay the current user: run as root, mosquitto would switch to "mosquitto",
            # which cannot write our temp dir or read our key files.
            f.write("user %s\n" % getpass.getuser())
            if defaults:
                f.write("persistence false\n")
                # Above the 1000 default so a briefly slow QoS 1 subscriber loses nothing.
                f.write("max_queued_messages 100000\n")
            f.write("log_dest file %s\nlog_type all\n" % self.log_path)
            f.write(extra_conf)
        self.proc = None

    def start(self) -> "Mosquitto":
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf_path], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + WAIT_S
        while not wait_port("127.0.0.1", self.port, 0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError("mosquitto did not listen on %d: %s %s" % (self.port, err, self.log()))
        return self

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, like a crash or a pulled plug."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(WAIT_S)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT_S)

    def log(self) -> str:
        try:
            with open(self.log_path) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    @property
    def url(self) -> str:
        return "mqtt://127.0.0.1:%d" % self.port


class Collector:
    """A subscriber that records every message and can wait for a condition.

    Resubscribes on every (re)connect, so it survives a broker restart even
    without broker persistence; reconnects quickly (0.05 s polling).
    """

    def __init__(self, host: str, port: int, topics: list, protocol: int = 5, username=None, password=None,
                 tls_ca=None, client_id=None, clean=True, qos=1) -> None:
        self.messages = []
        self.cond = threading.Condition()
        self.subscribed = threading.Event()
        self.topics = topics
        self.qos = qos
        v5 = protocol == 5
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or "col-" + uuid.uuid4().hex[:8],
                                  protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                                  clean_session=None if v5 else clean)
        self.client.suppress_exceptions = True
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=tls_ca)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *a: self.subscribed.clear()
        self.host, self.port, self.v5, self.clean = host, port, v5, clean

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if not reason_code.is_failure:
            client.subscribe([(t, self.qos) for t in self.topics])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self.subscribed.set()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain), getattr(msg, "properties", None)))
            self.cond.notify_all()

    def start(self, timeout: float = WAIT_S) -> "Collector":
        kwargs = {"clean_start": self.clean} if self.v5 else {}
        if self.v5 and not self.clean:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 600
            kwargs["properties"] = props
        self.client.connect_async(self.host, self.port, 30, **kwargs)
        self.client.loop_start()
        if not self.subscribed.wait(timeout):
            self.stop()
            raise TimeoutError("subscriber did not get SUBACK")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_for(self, predicate, timeout: float = WAIT_S) -> bool:
        """True once ``predicate(messages)`` holds, False after ``timeout`` s.

        The predicate runs under the lock that ``_on_message`` needs, and a flood's
        predicate costs O(messages): run on every arrival it is quadratic and holds
        off the network thread, so the messages it waits for arrive too late. Between
        two failed tries the messages get at least 50 ms to come in.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self.cond:
                if predicate(self.messages):
                    return True
                seen = len(self.messages)
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.05, left))
            with self.cond:
                if len(self.messages) == seen:
                    self.cond.wait(max(0.0, deadline - time.monotonic()))

    def on(self, topic: str) -> list:
        with self.cond:
            return [m for m in self.messages if m[0] == topic]

    def json_on(self, topic: str) -> list:
        return [json.loads(m[1]) for m in self.on(topic)]


def connect_client(host: str, port: int, protocol: int = 5, username=None, password=None, tls_ca=None,
                   timeout: float = WAIT_S) -> mqtt.Client:
    """A connected publishing client with its loop running; raises on refusal."""
    v5 = protocol == 5
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="pub-" + uuid.uuid4().hex[:8],
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)
    if tls_ca is not None:
        client.tls_set(ca_certs=tls_ca)
    result = {}
    done = threading.Event()

    def on_connect(c, u, flags, reason_code, properties):
        result["rc"] = reason_code
        done.set()

    client.on_connect = on_connect
    client.connect(host, port, 30)
    client.loop_start()
    if not done.wait(timeout):
        client.loop_stop()
        raise TimeoutError("no CONNACK")
    if result["rc"].is_failure:
        client.loop_stop()
        raise ConnectionRefusedError(str(result["rc"]))
    return client


def run_args(*argv: str) -> argparse.Namespace:
    """Options as `bms-twin run` parses them (its telemetry period default is None)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", type=float, default=None)
    add_broker_arguments(parser)
    parser.set_defaults(telemetry_period_ms=None)
    return parser.parse_args(list(argv))


def publish_properties(**values) -> Properties:
    """MQTT 5 PUBLISH properties, e.g. publish_properties(ResponseTopic="x", CorrelationData=b"1")."""
    props = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    return props


def telemetry_frame(device: str, t_ms: int, **over) -> dict:
    frame = {"kind": "telemetry", "device": device, "t_ms": t_ms, "state": "FORMING", "substate": "PLATE",
             "cell_mv": 2105, "current_ua": 100, "temp_dc": 251, "setpoint_ua": 100,
             "cvl_mv": 2800, "dvl_mv": 1800, "ccl_ua": 500, "dcl_ua": 400,
             "plated_uas": 100 * t_ms, "inventory_uas": 100 * t_ms, "target_uas": 720_000_000,
             "soc_pm": min(1000, t_ms // 7200), "soc_bound_pm": 2, "li_uah": 100 * t_ms // 3600,
             "li_bound_uah": 300, "catholyte_x_pm": 200, "loss_ppm": 5000,
             "formation_pm": min(1000, t_ms // 7200), "ce_ppm": 0,
             "faults": [], "event_seq": 0}
    frame.update(over)
    return frame


def event_frame(device: str, seq: int, t_ms: int, **over) -> dict:
    states = ("SHIPPED", "FORMING", "READY")
    frame = {"kind": "event", "device": device, "seq": seq, "t_ms": t_ms, "event": "STATE",
             "from": states[seq % 3], "to": states[(seq + 1) % 3], "detail": "synthetic"}
    frame.update(over)
    return frame


class FakeController:
    """Records every command that reaches it, with the calling thread's id.

    Validates like the controller contract says (returns (ok, code)) so the bridge's
    own checks and the controller's can be told apart.
    """

    def __init__(self) -> None:
        self.calls = []
        self.limits = {"cvl_mv": 2800, "dvl_mv": 1800, "ccl_ua": 500, "dcl_ua": 400}

    def command(self, name: str, args: dict):
        self.calls.append((name, dict(args), threading.get_ident()))
        if name == "set_limits":
            self.limits.update(args)
        return True, "OK"


def wait_until(predicate, timeout: float = WAIT_S, poll_s: float = 0.01) -> bool:
    """Poll a condition that no message announces (a connection flag, a queue length)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def event_seqs(col: "Collector", topic: str) -> list:
    """The seq of every event message the collector saw on topic, in arrival order."""
    return [json.loads(m[1])["seq"] for m in col.on(topic)]


def first_arrivals(seqs: list) -> list:
    """seqs with repeats removed (a QoS 1 redelivery), first arrival kept."""
    seen, out = set(), []
    for s in seqs:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out
