"""argparse options shared by ``bms-twin run`` and ``bms-twin watch``.

The lead wires these into twin/cli.py:

    add_broker_arguments(parser)              # run: --broker, --no-mqtt, ...
    bridge = Bridge.from_args(args, device)   # None with --no-mqtt
"""

import argparse
import ssl

from .config import BrokerUrlError, parse_broker_url
from .errors import connect_failure_text


def _broker_url(text: str) -> str:
    try:
        parse_broker_url(text)
    except BrokerUrlError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _ca_file(text: str) -> str:
    """A CA file TLS can load, checked before anything runs."""
    try:
        ssl.create_default_context(cafile=text)
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError("%r is not a readable PEM file of CA certificates (%s)"
                                         % (text, connect_failure_text(exc))) from None
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected an integer, got %r" % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be >= 1, got %d" % value)
    return value


def add_broker_arguments(parser: argparse.ArgumentParser, *, for_run: bool = True) -> None:
    """Add --broker/--tls-ca/--mqtt-protocol, and for runs --no-mqtt and the bridge tunables."""
    group = parser.add_argument_group("MQTT")
    group.add_argument("--broker", type=_broker_url, default=None, metavar="URL",
                       help="mqtt://host:port or mqtts://user:pass@host:port "
                            "(password may come from $BMS_TWIN_MQTT_PASSWORD)"
                            + ("; default: start an embedded broker on 127.0.0.1" if for_run
                               else "; default: mqtt://127.0.0.1:1883"))
    group.add_argument("--tls-ca", type=_ca_file, default=None, metavar="PEM",
                       help="CA certificate for mqtts:// brokers")
    group.add_argument("--mqtt-protocol", default=None, choices=("5", "3.1.1"),
                       help="MQTT protocol version (default 5; the embedded broker forces 3.1.1)")
    if not for_run:
        return
    group.add_argument("--no-mqtt", action="store_true", help="do not publish telemetry at all")
    group.add_argument("--telemetry-period-ms", type=_positive_int, default=1000, metavar="MS",
                       help="publish telemetry at most once per MS of simulated time (default 1000)")
    group.add_argument("--mqtt-queue", default=None, metavar="PATH",
                       help="store-and-forward queue file (default ~/.local/state/bms-twin/mqtt/<device>.sqlite)")
    group.add_argument("--no-discovery", action="store_true", help="do not publish Home Assistant discovery")


def bridge_from_args(cls, args: argparse.Namespace, device_id: str, **overrides):
    if getattr(args, "no_mqtt", False):
        return None
    embedded = None
    url = getattr(args, "broker", None)
    protocol = getattr(args, "mqtt_protocol", None)
    if url is None:
        from .embedded import start_embedded_broker
        embedded = start_embedded_broker(0)
        url = embedded.url
        protocol = "3.1.1"
    kwargs = dict(broker_url=url, queue_path=getattr(args, "mqtt_queue", None),
                  telemetry_period_ms=getattr(args, "telemetry_period_ms", 1000),
                  tls_ca=getattr(args, "tls_ca", None), protocol=protocol,
                  discovery=not getattr(args, "no_discovery", False))
    kwargs.update(overrides)
    try:
        bridge = cls(device_id, **kwargs)
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    bridge.owned_broker = embedded
    return bridge
