"""The broker password is printed nowhere: not in a URL error (whatever part of the
URL is wrong, whatever characters the password holds), not by the CLI's usage
errors, not in repr/str of the settings or the bridge, not in the log (paho's
included, at DEBUG), not on the run's console line or in its watch hint, not in
the delivery figures of summary.json. Real Mosquitto with TLS and passwords
(conftest.secure_broker) where a connection is made.
Run: .venv/bin/python -m pytest tests/mqtt_bridge/test_mqtt_secrets.py -q
"""

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mqtt_bridge import Bridge, parse_broker_url
from mqtt_bridge.errors import BrokerUrlError
from mqtt_bridge.sink import MqttSink
from mqtt_helpers import DEVICE_PASSWORD, WAIT_S, run_args, telemetry_frame, wait_until

BMS_TWIN = shutil.which("bms-twin", path=str(Path(sys.executable).parent))
SECRETS = ("s3cr3t-Hunter2", "pa/ss?w#rd@x9", "p%40ss:w0rd", "ab:cd@ef/gh")


def leaks(text: str, secret: str) -> list:
    """Pieces of the secret (4 characters or more) that appear in text."""
    pieces = {secret[i:j] for i in range(len(secret)) for j in range(i + 4, len(secret) + 1)}
    return sorted(p for p in pieces if p in text)


BAD_URLS = ("user:{pw}@:8883", "mqtts://user:{pw}@:8883", "user:{pw}@host", "user:{pw}@host:1883",
            "mqtt://user:{pw}@host:abc", "mqtt://user:{pw}@host:99999", "mqtt://user:{pw}@host/path",
            "mqtt://user:{pw}@host?x=1", "mqtt://user:{pw}@host#frag", "ftp://user:{pw}@host",
            "mqtt://user:{pw}@host?protocol=9", "mqtt://:{pw}@host", "mqtt://user:{pw}@",
            "mqtts//user:{pw}@host", "mqtt:/user:{pw}@host", "x:{pw}@mqtt://host")


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("template", BAD_URLS)
def test_no_url_error_quotes_the_password(template, secret):
    url = template.format(pw=secret)
    with pytest.raises(BrokerUrlError) as info:
        parse_broker_url(url)
    exc = info.value
    said = " ".join([str(exc), repr(exc), repr(exc.value), str(exc.why), repr(exc.args)])
    assert leaks(said, secret) == [], said


@pytest.mark.parametrize("secret", SECRETS)
def test_a_good_url_with_any_password_parses_and_never_shows_it(secret):
    cfg = parse_broker_url("mqtts://dev:%s@broker.example:8884?protocol=3.1.1" % secret)
    assert (cfg.host, cfg.port, cfg.username, cfg.protocol) == ("broker.example", 8884, "dev", 4)
    assert cfg.password == secret.replace("%40", "@")
    for text in (repr(cfg), str(cfg), cfg.url(), cfg.url(password_as=None)):
        assert leaks(text, cfg.password) == [], text


@pytest.mark.parametrize("command", ["run", "watch"])
def test_the_cli_refuses_a_bad_url_without_printing_the_password(command, tmp_path):
    secret = SECRETS[1]
    argv = [BMS_TWIN, command, "--broker", "mqtts://user:%s@:8883" % secret]
    if command == "run":
        argv += ["--out", str(tmp_path / "run")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "bad host" in proc.stderr and "user:***@" in proc.stderr
    assert leaks(proc.stdout + proc.stderr, secret) == []
    assert not (tmp_path / "run").exists()


def test_console_log_repr_and_delivery_never_show_the_password(secure_broker, wrong_ca, device_id, tmp_path,
                                                               capsys, caplog):
    broker, ca = secure_broker
    caplog.set_level(logging.DEBUG)                 # every logger, paho's too
    url = "mqtts://%s:%s@localhost:%d" % (device_id, DEVICE_PASSWORD, broker.port)
    good = MqttSink(run_args("--broker", url, "--tls-ca", ca, "--mqtt-queue", str(tmp_path / "a.sqlite"),
                             "--no-discovery"))
    try:
        good.frame(telemetry_frame(device_id, 0))
        assert good.bridge.wait_connected(WAIT_S)
        texts = [repr(good.bridge), repr(good.bridge.config), str(good.bridge.config), str(good.bridge.stats())]
    finally:
        good.close()
    # and a bridge that cannot connect (wrong CA), which logs why
    bad = Bridge(device_id, url, tls_ca=wrong_ca, queue_path=str(tmp_path / "b.sqlite"), discovery=False,
                 reconnect_min_s=0.2, reconnect_max_s=0.2).start()
    try:
        assert wait_until(lambda: bad.stats()["connect_failures"] >= 2, timeout=20)
    finally:
        bad.stop()
    printed = capsys.readouterr()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "cannot connect" in logged and "MQTT: publishing" in printed.out
    texts += [printed.out, printed.err, logged, json.dumps(good.delivery), json.dumps(bad.delivery())]
    for text in texts:
        assert leaks(text, DEVICE_PASSWORD) == [], text
    assert good.delivery["why"] is None and "***" in good.delivery["broker"]
