"""``bms-twin watch``: a live terminal table of every BMS on a broker.

Subscribes to bms/<device>/{status,state,limits,telemetry,event} and redraws a
compact table (plain ANSI, no dependencies). For scripts and tests,
``--count N`` prints the table after each of N updates and exits (``--once`` is
``--count 1``); ``--timeout S`` bounds the wait (exit 1 if it runs out).
"""

import argparse
import json
import os
import queue
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bmsfw.states import EV_STATE

from .cli_options import add_broker_arguments
from .config import DEFAULT_BROKER_URL, BrokerUrlError, parse_broker_url
from .errors import connect_failure_text

KINDS = ("status", "state", "limits", "telemetry", "event")
CLEAR = "\x1b[H\x1b[2J"
COLUMNS = ("DEVICE", "LINK", "STATE", "V", "mA", "°C", "SOC%", "Li µAh", "CVL/DVL V", "CCL/DCL mA", "LAST EVENT")
REDRAW_MIN_S = 0.1


def _num(value: object, scale: float, digits: int) -> str:
    if type(value) is not int:
        return "-"
    return "%.*f" % (digits, value / scale)


def row_for(device: str, info: dict) -> tuple:
    state = info.get("state", {})
    tel = info.get("telemetry", {})
    lim = info.get("limits", {})
    ev = info.get("event", {})
    st = state.get("state") or tel.get("state") or "-"
    sub = state.get("substate") or tel.get("substate") or ""
    faults = state.get("faults") or []
    label = st + ("/" + sub if sub else "") + (" !" + ",".join(faults) if faults else "")
    soc = state.get("soc_pm", tel.get("soc_pm"))
    inv = state.get("inventory_uas", tel.get("inventory_uas"))
    last = "-"
    if ev:
        last = "#%s %s" % (ev.get("seq", "?"), ev.get("event", "?"))
        if ev.get("event") == EV_STATE:
            last += " %s>%s" % (ev.get("from", "?"), ev.get("to", "?"))
        elif ev.get("fault"):
            last += " " + str(ev.get("fault"))
    return (device, info.get("status", "?"), label,
            _num(tel.get("cell_mv"), 1000, 3), _num(tel.get("current_ua"), 1000, 3),
            _num(tel.get("temp_dc"), 10, 1), _num(soc, 10, 1), _num(inv, 3_600_000, 2),
            "%s/%s" % (_num(lim.get("cvl_mv"), 1000, 2), _num(lim.get("dvl_mv"), 1000, 2)),
            "%s/%s" % (_num(lim.get("ccl_ua"), 1000, 2), _num(lim.get("dcl_ua"), 1000, 2)),
            last)


def render(devices: dict) -> str:
    """The table as text, one line per device, sorted by device id."""
    rows = [COLUMNS] + [row_for(d, devices[d]) for d in sorted(devices)]
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def apply_message(devices: dict, topic: str, payload: bytes) -> bool:
    """Fold one message into the table; False if it is not a BMS topic we show."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "bms" or parts[2] not in KINDS:
        return False
    device, kind = parts[1], parts[2]
    info = devices.setdefault(device, {})
    if kind == "status":
        info["status"] = payload.decode("utf-8", "replace")[:16] or "?"
        return True
    try:
        doc = json.loads(payload)
    except ValueError:
        info[kind] = {}
        info["status"] = "bad-json"
        return True
    info[kind] = doc if isinstance(doc, dict) else {}
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bms-twin watch", description="live table of BMS devices on an MQTT broker")
    add_broker_arguments(parser, for_run=False)
    parser.add_argument("--device", default="+", help="device id to watch (default: all)")
    parser.add_argument("--count", type=int, default=None, metavar="N", help="print N updates, then exit")
    parser.add_argument("--once", action="store_true", help="same as --count 1")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="give up after S seconds (exit 1); default: forever, or 30 s with --count")
    return parser


def main(argv: list | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    count = 1 if args.once else args.count
    if count is not None and count < 1:
        parser.error("--count must be >= 1")
    if args.device != "+" and not all(c.isalnum() or c in "_-" for c in args.device):
        parser.error("--device: use [A-Za-z0-9_-] or leave it out for all devices")
    try:
        cfg = parse_broker_url(args.broker or DEFAULT_BROKER_URL, protocol=args.mqtt_protocol)
    except BrokerUrlError as exc:
        parser.error(str(exc))
    if args.tls_ca is not None and not cfg.tls:
        parser.error("--tls-ca %s was given for a plain broker URL; use mqtts://" % args.tls_ca)
    timeout = args.timeout if args.timeout is not None else (30.0 if count is not None else None)
    inbox: queue.Queue = queue.Queue()
    v5 = cfg.protocol == 5
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bms-watch-%d-%d" % (os.getpid(), time.time_ns() % 100000),
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else True)
    client.suppress_exceptions = True
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.tls:
        client.tls_set(ca_certs=args.tls_ca or cfg.tls_ca)

    def on_connect(c, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            inbox.put(("!error", str(reason_code).encode()))
            return
        c.subscribe([("bms/%s/%s" % (args.device, kind), 0) for kind in KINDS])

    said: set = set()

    def on_connect_fail(c, userdata):
        # inside paho's "except OSError": the exception is the one being handled (paho_client.py)
        why = connect_failure_text(sys.exc_info()[1])
        if why not in said:
            said.add(why)
            print("watch: cannot connect to %s:%d: %s; retrying" % (cfg.host, cfg.port, why), file=sys.stderr,
                  flush=True)

    client.on_connect = on_connect
    client.on_connect_fail = on_connect_fail
    client.on_message = lambda c, u, msg: inbox.put((msg.topic, msg.payload))
    client.connect_async(cfg.host, cfg.port, 30)
    client.loop_start()
    devices: dict = {}
    shown = 0
    live = count is None and sys.stdout.isatty()
    deadline = None if timeout is None else time.monotonic() + timeout
    last_draw = 0.0
    try:
        while True:
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                got = "%d of %d updates" % (shown, count) if count is not None else "%d updates" % shown
                print("watch: timed out after %s s (%s)" % (timeout, got), file=sys.stderr)
                return 1
            try:
                topic, payload = inbox.get(timeout=wait if wait is not None else 1.0)
            except queue.Empty:
                continue
            if topic == "!error":
                # the command was well formed; the broker said no (credentials, ACL): exit 1,
                # as a run that could not deliver does
                print("watch: broker refused connection: %s" % payload.decode(), file=sys.stderr)
                return 1
            if not apply_message(devices, topic, payload):
                continue
            shown += 1
            if live:
                now = time.monotonic()
                if now - last_draw >= REDRAW_MIN_S or inbox.empty():
                    sys.stdout.write(CLEAR + render(devices) + "\n")
                    sys.stdout.flush()
                    last_draw = now
            else:
                print(render(devices), flush=True)
                print(flush=True)
            if count is not None and shown >= count:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        client.disconnect()
        client.loop_stop()


if __name__ == "__main__":
    sys.exit(main())
