"""The MQTT sink of ``bms-twin run`` and ``bms-twin hil``: a Bridge made at the first frame.

A run's sinks take ``frame(dict)``, ``event(dict)`` and ``poll(controller)``
(twin.run.run_closed_loop, twin.hil); a Bridge is such a sink. The device id,
which names the topics, the queue file and the client id, is known only when
the first frame arrives (over HIL only the firmware's HELLO tells it), so this
sink makes the Bridge then, says on the console where it publishes, and from
then on passes everything to the Bridge's own sink methods.

At ``close`` it gives a bridge that has not connected yet (or lost its broker)
``CLOSE_TIMEOUT_S`` to deliver what is queued, saying so on the console, then
stops it and keeps its delivery figures (``delivery``, delivery.py) for the
run's summary: a run that could not deliver says why.
"""

import shlex

from .bridge import Bridge
from .config import PASSWORD_ENV

# Telemetry period when --telemetry-period-ms is not given: watched live (--speed)
# every second; flat out once a simulated minute, so that publishing does not
# become the run's bottleneck.
LIVE_TELEMETRY_PERIOD_MS = 1000
FAST_TELEMETRY_PERIOD_MS = 60_000
# How long close() waits to connect and flush what the run queued.
CLOSE_TIMEOUT_S = 10.0


def telemetry_period_ms(args) -> int:
    period = getattr(args, "telemetry_period_ms", None)
    if period is not None:
        return period
    return LIVE_TELEMETRY_PERIOD_MS if getattr(args, "speed", None) else FAST_TELEMETRY_PERIOD_MS


class MqttSink:
    """Feeds a run's frames to a Bridge, made at the first frame, and its commands to the controller."""

    def __init__(self, args) -> None:
        self.args = args
        self.bridge: Bridge | None = None
        self.delivery: dict | None = None    # set by close(): Bridge.delivery()

    def _bridge_for(self, frame: dict) -> Bridge:
        if self.bridge is None:
            device_id = frame["device"]
            bridge = Bridge.from_args(self.args, device_id, telemetry_period_ms=telemetry_period_ms(self.args))
            if bridge is None:
                raise ValueError("MqttSink: --no-mqtt was given (mqtt_sinks then makes no sink)")
            self.bridge = bridge.start()
            print(self._where_line(bridge, device_id), flush=True)
        return self.bridge

    def _where_line(self, bridge: Bridge, device_id: str) -> str:
        """What is published where, and how to watch it (the same broker, TLS and user; never a password)."""
        where = bridge.config
        owned = bridge.owned_broker is not None
        speed = getattr(self.args, "speed", None)
        return (f"MQTT: publishing bms/{device_id}/# to {where.host}:{where.port}"
                + (" (embedded broker, stops with this run)" if owned else "")
                + f"; watch with: {watch_command(where)}"
                + ("" if speed or not hasattr(self.args, "speed") else " (add --speed 600 to follow a run live)"))

    def frame(self, frame: dict) -> None:
        self._bridge_for(frame).frame(frame)

    def event(self, event: dict) -> None:
        self._bridge_for(event).event(event)

    def poll(self, controller) -> None:
        if self.bridge is not None:
            self.bridge.poll(controller)

    def close(self) -> None:
        bridge = self.bridge
        if bridge is None or self.delivery is not None:
            return
        queued = len(bridge.outbox)
        if queued and not bridge.connected:
            print(f"MQTT: not connected to {bridge.config.host}:{bridge.config.port} "
                  f"({bridge.last_connect_error or 'no answer yet'}); waiting up to {CLOSE_TIMEOUT_S:.0f} s "
                  f"to deliver {queued} queued message(s)", flush=True)
            bridge.wait_connected(CLOSE_TIMEOUT_S)
        bridge.stop(timeout=CLOSE_TIMEOUT_S)
        self.delivery = bridge.delivery()


def watch_command(cfg) -> str:
    """The ``bms-twin watch`` line for a broker: its URL without a password, its CA, its protocol."""
    line = "bms-twin watch --broker " + cfg.url(password_as=None, with_query=False)
    if cfg.tls_ca is not None:
        line += " --tls-ca " + shlex.quote(cfg.tls_ca)
    if cfg.protocol != 5:
        line += " --mqtt-protocol 3.1.1"
    if cfg.username is not None and cfg.password is not None:
        line += f" (password from ${PASSWORD_ENV})"
    return line


def mqtt_sinks(args) -> list:
    """The MQTT sink of a run or HIL session: none with --no-mqtt."""
    if getattr(args, "no_mqtt", True):
        return []
    return [MqttSink(args)]
