"""Fixtures for tests/mqtt_bridge. Real brokers only: the shared mosquitto on
127.0.0.1:1883, and private mosquitto processes (free port, persistence off)
for restarts, TLS and ACL. Run: .venv/bin/python -m pytest tests/mqtt_bridge -q
"""

import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mqtt_helpers import (DEVICE_PASSWORD, PASSWORDS, SHARED_BROKER, Mosquitto, connect_client,  # noqa: E402
                          free_port, unique_device, wait_port)

ACL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "acl.example")


@pytest.fixture
def device_id():
    """A fresh device id; afterwards its retained messages on the shared broker are
    cleared (that broker persists them to disk, and tests must not pile them up)."""
    dev = unique_device()
    yield dev
    clear_retained(dev)


def clear_retained(dev: str) -> None:
    from mqtt_bridge.discovery import OBJECT_IDS

    topics = ["bms/%s/%s" % (dev, k) for k in ("status", "state", "limits")]
    for prefix in ("homeassistant", "ha-" + dev):
        topics += ["%s/sensor/%s/%s/config" % (prefix, dev, obj) for obj in OBJECT_IDS]
    try:
        client = connect_client(*SHARED_BROKER, protocol=4, timeout=2.0)
    except (OSError, TimeoutError):
        return  # no shared broker (a test that needed it has failed already)
    try:
        infos = [client.publish(t, b"", qos=1, retain=True) for t in topics]
        for info in infos:
            info.wait_for_publish(2.0)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def shared_broker():
    """The broker every test may use; tests keep to their own device ids."""
    if not wait_port(*SHARED_BROKER, timeout=2.0):
        pytest.fail("the shared mosquitto on 127.0.0.1:1883 is not running")
    return SHARED_BROKER


@pytest.fixture
def mosquitto_factory(tmp_path):
    started = []

    def make(**kwargs) -> Mosquitto:
        broker = Mosquitto(str(tmp_path), **kwargs)
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory):
    """A throw-away CA and a server certificate for localhost/127.0.0.1 (openssl CLI)."""
    d = tmp_path_factory.mktemp("tls")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bms-twin test CA",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr")
    with open(d / "san.ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.crt")
    os.chmod(d / "server.key", 0o644)  # mosquitto may drop privileges before reading it
    return {"ca": str(d / "ca.crt"), "cert": str(d / "server.crt"), "key": str(d / "server.key")}


@pytest.fixture
def secure_broker(mosquitto_factory, tls_material, device_id, tmp_path):
    """A private mosquitto with TLS, a password file and docs/acl.example as-is: (broker, CA path).
    Users: dashboard, operator (PASSWORDS), the device (DEVICE_PASSWORD) and other-<device>."""
    passwd = str(tmp_path / "passwd")
    users = dict(PASSWORDS, **{device_id: DEVICE_PASSWORD, "other-" + device_id: "other-pw"})
    for i, (user, pw) in enumerate(users.items()):
        args = ["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [passwd, user, pw]
        subprocess.run(args, check=True, capture_output=True, timeout=30)
    os.chmod(passwd, 0o644)
    port = free_port()
    listener = ("per_listener_settings false\nlistener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n"
                "allow_anonymous false\npassword_file %s\nacl_file %s\n"
                % (port, tls_material["ca"], tls_material["cert"], tls_material["key"], passwd, os.path.abspath(ACL)))
    broker = mosquitto_factory(port=port, listener_conf=listener).start()
    return broker, tls_material["ca"]


@pytest.fixture(scope="session")
def wrong_ca(tmp_path_factory):
    """A CA that did not sign the test broker's certificate."""
    d = tmp_path_factory.mktemp("wrong-ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=some other CA", "-keyout", "ca.key", "-out", "ca.crt"], cwd=d, check=True,
                   capture_output=True, timeout=60)
    return str(d / "ca.crt")
