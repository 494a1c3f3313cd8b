"""Bad input to the bridge raises a named error of bms-twin's one shape: a
bmsfw.errors.FieldError (field, value, why) that is also a BridgeError and a
ValueError, with the bridge's message text as it has always read. No broker needed.
Run: .venv/bin/python -m pytest tests/mqtt_bridge/test_mqtt_errors.py -q
"""

import pytest

from bmsfw.errors import FieldError
from mqtt_bridge import Bridge, payloads
from mqtt_bridge.config import parse_broker_url
from mqtt_bridge.embedded import start_embedded_broker
from mqtt_bridge.errors import BridgeError, BrokerUrlError, DeviceIdError, FrameError, SettingError, TlsCaError
from mqtt_bridge.outbox import Outbox
from mqtt_bridge.topics import Topics


@pytest.mark.parametrize("make, cls, field, value, message", [
    (lambda tmp: parse_broker_url("http://h"), BrokerUrlError, "scheme", "http",
     "broker URL: bad scheme 'http': use mqtt:// (plain) or mqtts:// (TLS)"),
    (lambda tmp: parse_broker_url("mqtt://h:0"), BrokerUrlError, "port", 0,
     "broker URL: bad port 0: must be 1..65535"),
    (lambda tmp: Topics("a b"), DeviceIdError, "device_id", "a b",
     "device_id 'a b': use 1-64 characters from [A-Za-z0-9_-] (it becomes an MQTT topic level and a Home "
     "Assistant id)"),
    (lambda tmp: payloads.get_int({"cell_mv": 2.1}, "cell_mv"), FrameError, "cell_mv", 2.1,
     "frame field 'cell_mv' = 2.1: must be an int"),
    (lambda tmp: payloads.get_str({}, "state"), FrameError, "state", None,
     "frame field 'state' = None: missing"),
    (lambda tmp: Bridge("d-1", queue_path=str(tmp / "q.sqlite"), telemetry_period_ms=0), SettingError,
     "telemetry_period_ms", 0, "telemetry_period_ms must be an int >= 1, got 0"),
    (lambda tmp: Outbox(str(tmp / "q.sqlite"), max_rows=True), SettingError, "max_rows", True,
     "max_rows must be an int >= 1, got True"),
    (lambda tmp: Outbox(str(tmp / "q.sqlite"), synchronous="SOMETIMES"), SettingError, "synchronous", "SOMETIMES",
     "synchronous must be one of ('OFF', 'NORMAL', 'FULL'), got 'SOMETIMES'"),
    (lambda tmp: start_embedded_broker(70000), SettingError, "port", 70000,
     "port must be an int 0..65535, got 70000"),
    (lambda tmp: Bridge("d-1", queue_path=str(tmp / "q.sqlite"), reply_window=0), SettingError,
     "reply_window", 0, "reply_window must be an int >= 1, got 0"),
    (lambda tmp: Bridge("d-1", queue_path=str(tmp / "q.sqlite"), rediscovery_min_s=-1), SettingError,
     "rediscovery_min_s", -1, "rediscovery_min_s must be a number of seconds >= 0, got -1"),
    (lambda tmp: Bridge("d-1", "mqtts://h", queue_path=str(tmp / "q.sqlite"), tls_ca="/no/such/ca.pem"), TlsCaError,
     "tls_ca", "/no/such/ca.pem",
     "tls_ca '/no/such/ca.pem': not a readable PEM file of CA certificates (No such file or directory)"),
])
def test_each_bad_input_gets_its_field_error_with_its_message(tmp_path, make, cls, field, value, message):
    with pytest.raises(cls) as info:
        make(tmp_path)
    err = info.value
    assert isinstance(err, FieldError) and isinstance(err, BridgeError) and isinstance(err, ValueError)
    assert (err.field, err.value) == (field, value)
    assert str(err) == message and err.args == (message,)
    assert err.why in message
    assert not list(tmp_path.iterdir())      # refused before any queue file was made
