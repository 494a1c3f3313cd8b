"""Named exceptions of the MQTT bridge.

Each carries the offending field and value so a caller (or a log line) says
exactly what was wrong. They also inherit the builtin they refine, so generic
``except ValueError`` handlers still work. ``connect_failure_text`` says in one
line why a connection attempt failed.
"""

import ssl

from bmsfw.errors import FieldError


class BridgeError(Exception):
    """Base of every error raised by mqtt_bridge."""


class BridgeFieldError(BridgeError, FieldError):
    """A bad (field, value, why), as everywhere in bms-twin, in the bridge's own words.

    FieldError sets ``field``, ``value``, ``why`` and its "field=value: why" text;
    each subclass's ``wording`` replaces that text with the one the bridge has
    always printed (users, logs and scripts read these messages).
    """

    wording: str   # %-format over field, value and why

    def __init__(self, field: str, value: object, why: str) -> None:
        super().__init__(field, value, why)
        self.args = (self.wording % {"field": field, "value": value, "why": why},)


class BrokerUrlError(BridgeFieldError):
    """A --broker URL that cannot be used; ``field`` names the bad part."""

    wording = "broker URL: bad %(field)s %(value)r: %(why)s"


class DeviceIdError(BridgeFieldError):
    """A device id that would not make a safe MQTT topic level or HA object id."""

    wording = "%(field)s %(value)r: %(why)s"

    def __init__(self, value: object) -> None:
        super().__init__("device_id", value, "use 1-64 characters from [A-Za-z0-9_-] "
                                             "(it becomes an MQTT topic level and a Home Assistant id)")


class FrameError(BridgeFieldError):
    """A controller frame that does not match docs/frames.md."""

    wording = "frame field %(field)r = %(value)r: %(why)s"


class SettingError(BridgeFieldError):
    """A bridge, queue or embedded-broker setting out of its range."""

    wording = "%(field)s %(why)s, got %(value)r"


class TlsCaError(BridgeFieldError, OSError):
    """A CA file TLS cannot load (missing, unreadable, not PEM): a setting, and the file error it refines."""

    wording = "%(field)s %(value)r: %(why)s"


class EmbeddedBrokerError(BridgeError, RuntimeError):
    """The embedded amqtt broker did not start (port taken, timeout...)."""


class OutboxError(BridgeError, RuntimeError):
    """The store-and-forward queue file cannot be opened or is not ours."""


def connect_failure_text(exc: BaseException | None) -> str:
    """What a failed connection attempt says, in one line (TLS failures by their reason).

    paho reports a failed attempt only through ``on_connect_fail``, without the
    exception; that callback runs inside paho's ``except OSError`` block, so the
    caller passes ``sys.exc_info()[1]``.
    """
    if exc is None:
        return "connection failed"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "TLS: certificate verify failed: %s" % (exc.verify_message or exc.reason)
    if isinstance(exc, ssl.SSLError):
        return "TLS: %s" % (exc.reason or exc)
    if isinstance(exc, ssl.CertificateError):
        return "TLS: %s" % exc
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
