"""Zero-setup pieces: the embedded amqtt broker (127.0.0.1 only, clean stop),
a bridge and the watch view over it, and the watch view on the shared mosquitto."""

import socket
import threading

import pytest

from mqtt_bridge import Bridge
from mqtt_bridge.embedded import start_embedded_broker
from mqtt_bridge.errors import EmbeddedBrokerError
from mqtt_bridge.watch import apply_message, main as watch_main, render
from mqtt_helpers import Collector, event_frame, free_port, telemetry_frame, wait_until


def test_embedded_broker_binds_loopback_on_a_free_port_and_stops_cleanly(device_id, tmp_path):
    handle = start_embedded_broker(port=0)
    try:
        assert handle.port > 0 and handle.url == "mqtt://127.0.0.1:%d?protocol=3.1.1" % handle.port
        bridge = Bridge(device_id, handle.url, queue_path=str(tmp_path / "q.sqlite")).start()
        col = Collector("127.0.0.1", handle.port, ["bms/%s/event" % device_id], protocol=4).start()
        try:
            assert bridge.wait_connected(10)
            bridge.publish_frame(event_frame(device_id, 1, 0))
            assert col.wait_for(lambda m: len(m) == 1)
        finally:
            col.stop()
            bridge.stop()
        # not reachable on a non-loopback address of this host, if it has one
        addrs = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
        for addr in addrs - {"127.0.0.1"}:
            if addr.startswith("127."):
                continue
            with pytest.raises(OSError):
                socket.create_connection((addr, handle.port), timeout=1).close()
    finally:
        handle.stop()
    assert not handle.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", handle.port), timeout=1).close()


def test_embedded_broker_on_a_taken_port_fails_clearly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        with pytest.raises(EmbeddedBrokerError, match=str(s.getsockname()[1])):
            start_embedded_broker(port=s.getsockname()[1])
    with pytest.raises(ValueError):
        start_embedded_broker(port=70000)


def test_watch_prints_count_updates_over_the_embedded_broker(device_id, tmp_path, capsys):
    handle = start_embedded_broker(port=free_port())
    bridge = Bridge(device_id, handle.url, queue_path=str(tmp_path / "q.sqlite"), discovery=False).start()
    try:
        assert bridge.wait_connected(10)
        bridge.publish_frame(telemetry_frame(device_id, 0, state="READY", substate="RESTING", soc_pm=500))
        assert bridge.flush(10)
        # status, state, limits are retained: a watcher that joins now sees three updates at once
        rc = watch_main(["--broker", handle.url, "--device", device_id, "--count", "3", "--timeout", "10"])
        out = capsys.readouterr().out
        assert rc == 0
        last_table = out.strip().split("\n\n")[-1]
        assert device_id in last_table and "READY/RESTING" in last_table and "50.0" in last_table
        assert "online" in last_table
    finally:
        bridge.stop()
        handle.stop()


def test_watch_on_mosquitto_follows_live_telemetry_and_events(shared_broker, device_id, tmp_path, capsys):
    bridge = Bridge(device_id, queue_path=str(tmp_path / "q.sqlite"), discovery=False).start()
    result = {}

    def run_watch():
        result["rc"] = watch_main(["--device", device_id, "--count", "6", "--timeout", "15"])

    try:
        assert bridge.wait_connected(10)
        bridge.publish_frame(telemetry_frame(device_id, 0))
        assert bridge.flush(10)
        watcher = threading.Thread(target=run_watch)
        watcher.start()
        t_ms = 1000
        while watcher.is_alive() and t_ms < 60_000:
            bridge.publish_frame(telemetry_frame(device_id, t_ms, cell_mv=2345))
            bridge.publish_frame(event_frame(device_id, t_ms // 1000, t_ms))
            wait_until(lambda: not watcher.is_alive(), timeout=0.2)
            t_ms += 1000
        watcher.join(20)
        assert result.get("rc") == 0
        table = capsys.readouterr().out.strip().split("\n\n")[-1]
        assert "2.345" in table and "STATE" in table
    finally:
        bridge.stop()


def test_watch_times_out_with_exit_1_and_rejects_bad_urls(capsys):
    handle = start_embedded_broker(port=0)
    try:
        assert watch_main(["--broker", handle.url, "--device", "nobody-here", "--once", "--timeout", "0.5"]) == 1
    finally:
        handle.stop()
    with pytest.raises(SystemExit):
        watch_main(["--broker", "http://example.com"])
    assert "scheme" in capsys.readouterr().err


def test_render_folds_messages_into_one_row_per_device():
    devices = {}
    assert apply_message(devices, "bms/a/telemetry", b'{"cell_mv": 2100, "current_ua": -500, "temp_dc": 250}')
    assert apply_message(devices, "bms/a/status", b"offline")
    assert apply_message(devices, "bms/b/state", b'{"state": "FAULT", "substate": "", "faults": ["SHORT"]}')
    assert apply_message(devices, "bms/b/event", b"{not json")
    assert not apply_message(devices, "bms/a/cmd/charge", b"{}")
    lines = render(devices).splitlines()
    assert lines[0].startswith("DEVICE") and len(lines) == 3
    assert "2.100" in lines[1] and "-0.500" in lines[1] and "25.0" in lines[1] and "offline" in lines[1]
    assert "FAULT !SHORT" in lines[2] and "bad-json" in lines[2]
