"""Named exceptions of the MQTT bridge.

Each carries the offending field and value so a caller (or a log line) says
exactly what was wrong. They also inherit the builtin they refine, so generic
``except ValueError`` handlers still work.
"""


class BridgeError(Exception):
    """Base of every error raised by mqtt_bridge."""


class BrokerUrlError(BridgeError, ValueError):
    """A --broker URL that cannot be used; ``field`` names the bad part."""

    def __init__(self, field: str, value: object, why: str) -> None:
        self.field = field
        self.value = value
        super().__init__("broker URL: bad %s %r: %s" % (field, value, why))


class DeviceIdError(BridgeError, ValueError):
    """A device id that would not make a safe MQTT topic level or HA object id."""

    def __init__(self, value: object) -> None:
        self.field = "device_id"
        self.value = value
        super().__init__(
            "device_id %r: use 1-64 characters from [A-Za-z0-9_-] "
            "(it becomes an MQTT topic level and a Home Assistant id)" % (value,))


class FrameError(BridgeError, ValueError):
    """A controller frame that does not match docs/frames.md."""

    def __init__(self, field: str, value: object, why: str) -> None:
        self.field = field
        self.value = value
        super().__init__("frame field %r = %r: %s" % (field, value, why))


class EmbeddedBrokerError(BridgeError, RuntimeError):
    """The embedded amqtt broker did not start (port taken, timeout...)."""


class OutboxError(BridgeError, RuntimeError):
    """The store-and-forward queue file cannot be opened or is not ours."""
