"""--broker URL parsing, CLI options, Bridge.from_args, device ids, constructor checks."""

import argparse

import pytest

from mqtt_bridge import Bridge, parse_broker_url
from mqtt_bridge.cli_options import add_broker_arguments
from mqtt_bridge.config import PASSWORD_ENV
from mqtt_bridge.errors import BrokerUrlError, DeviceIdError, TlsCaError
from mqtt_bridge.topics import Topics


@pytest.mark.parametrize("url, host, port, tls, user, pw, protocol", [
    ("mqtt://127.0.0.1:1883", "127.0.0.1", 1883, False, None, None, 5),
    ("mqtt://broker.local", "broker.local", 1883, False, None, None, 5),
    ("mqtts://broker.local", "broker.local", 8883, True, None, None, 5),
    ("mqtts://bms1:s%40cret@host:8884", "host", 8884, True, "bms1", "s@cret", 5),
    ("mqtt://[::1]:1884?protocol=3.1.1", "::1", 1884, False, None, None, 4),
    ("  MQTT://h:1/  ", "h", 1, False, None, None, 5),
])
def test_good_urls(url, host, port, tls, user, pw, protocol):
    cfg = parse_broker_url(url)
    assert (cfg.host, cfg.port, cfg.tls, cfg.username, cfg.password, cfg.protocol) == (host, port, tls, user, pw,
                                                                                      protocol)


@pytest.mark.parametrize("url, field", [
    ("", "url"), ("127.0.0.1:1883", "scheme"), ("http://h:1", "scheme"), ("mqtt://", "host"),
    ("mqtt://h:99999", "port"), ("mqtt://h:abc", "port"), ("mqtt://h:0", "port"), ("mqtt://h/topic", "path"),
    ("mqtt://h?qos=1", "query"), ("mqtt://h?protocol=4.0", "protocol"), ("mqtt://:pw@h", "username"),
])
def test_bad_urls_name_the_bad_part(url, field):
    with pytest.raises(BrokerUrlError) as info:
        parse_broker_url(url)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_password_never_shown_and_may_come_from_the_environment(monkeypatch):
    cfg = parse_broker_url("mqtts://u:topsecret@h")
    assert "topsecret" not in repr(cfg) and "topsecret" not in cfg.url()
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    assert parse_broker_url("mqtts://u@h").password == "from-env"


def test_cli_options_and_from_args(tmp_path, device_id):
    parser = argparse.ArgumentParser()
    add_broker_arguments(parser)
    assert Bridge.from_args(parser.parse_args(["--no-mqtt"]), device_id) is None
    args = parser.parse_args(["--broker", "mqtt://127.0.0.1:1883", "--telemetry-period-ms", "60000",
                              "--mqtt-queue", str(tmp_path / "q.sqlite"), "--mqtt-protocol", "3.1.1"])
    bridge = Bridge.from_args(args, device_id)
    try:
        assert bridge.telemetry_period_ms == 60000 and bridge.config.protocol == 4
        assert bridge.owned_broker is None and bridge.queue_path == str(tmp_path / "q.sqlite")
    finally:
        bridge.stop()
    with pytest.raises(SystemExit):
        parser.parse_args(["--broker", "ftp://x"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--telemetry-period-ms", "0"])


def test_from_args_without_broker_starts_and_stops_an_embedded_one(tmp_path, device_id):
    parser = argparse.ArgumentParser()
    add_broker_arguments(parser)
    bridge = Bridge.from_args(parser.parse_args(["--mqtt-queue", str(tmp_path / "q.sqlite")]), device_id)
    handle = bridge.owned_broker
    assert handle is not None and handle.running and bridge.config.protocol == 4
    bridge.start()
    assert bridge.wait_connected(10)
    bridge.stop()
    assert not handle.running
    # a bridge that is never started still stops the broker it owns
    unused = Bridge.from_args(parser.parse_args(["--mqtt-queue", str(tmp_path / "q2.sqlite")]), device_id)
    handle = unused.owned_broker
    assert handle.running
    unused.stop()
    assert not handle.running


@pytest.mark.parametrize("bad", ["", "a/b", "a+b", "#", "x" * 65, "dev 1", None, 7])
def test_device_ids_must_be_topic_and_ha_safe(bad):
    with pytest.raises(DeviceIdError):
        Topics(bad)


def test_topics_and_command_names():
    t = Topics("d111-0001")
    assert (t.status, t.cmd("formation/start"), t.reply("charge")) == (
        "bms/d111-0001/status", "bms/d111-0001/cmd/formation/start", "bms/d111-0001/cmd/charge/reply")
    assert t.command_name("bms/d111-0001/cmd/formation/start") == "formation/start"
    assert t.command_name("bms/d111-0001/cmd/formation/start/reply") is None
    assert t.command_name("bms/d111-0001/cmd/charge/reply/op-7") is None
    assert t.command_name("bms/other/cmd/charge") is None


@pytest.mark.parametrize("kwargs", [{"telemetry_period_ms": 0}, {"telemetry_period_ms": 1.5},
                                    {"inflight_window": 0}, {"telemetry_buffer": -1}, {"protocol": "6"}])
def test_bridge_constructor_refuses_bad_settings(kwargs, tmp_path, device_id):
    with pytest.raises(ValueError):
        Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), **kwargs)


def test_tls_settings_must_match_the_scheme(tmp_path, device_id):
    with pytest.raises(BrokerUrlError, match="mqtts"):
        Bridge(device_id, "mqtt://127.0.0.1:1883", queue_path=str(tmp_path / "q.sqlite"), tls_ca="/some/ca.pem")
    with pytest.raises(OSError):   # a missing CA file is reported, and the queue file is released
        Bridge(device_id, "mqtts://127.0.0.1:8883", queue_path=str(tmp_path / "q.sqlite"),
               tls_ca=str(tmp_path / "missing-ca.pem"))
    Bridge(device_id, queue_path=str(tmp_path / "q.sqlite")).stop()   # not left locked


def test_a_ca_file_tls_cannot_load_is_refused_naming_it(tmp_path, device_id, capsys):
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    parser = argparse.ArgumentParser()
    add_broker_arguments(parser)
    for path in (str(not_pem), str(tmp_path / "missing.pem")):
        with pytest.raises(SystemExit):
            parser.parse_args(["--broker", "mqtts://h", "--tls-ca", path])
        assert "--tls-ca: %r is not a readable PEM file of CA certificates" % path in capsys.readouterr().err
    queue = tmp_path / "q.sqlite"
    with pytest.raises(TlsCaError) as info:
        Bridge(device_id, "mqtts://h", tls_ca=str(not_pem), queue_path=str(queue))
    assert (info.value.field, info.value.value) == ("tls_ca", str(not_pem))
    assert isinstance(info.value, OSError) and isinstance(info.value, ValueError)
    assert "not a readable PEM file" in str(info.value)
    Bridge(device_id, "mqtt://h", queue_path=str(queue)).stop()    # the refused one left the queue file free
