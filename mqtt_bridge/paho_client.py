"""The paho client of a bridge, and what its failed connection attempts said.

``make_client`` builds the client from the broker settings (protocol, Last Will,
credentials, TLS, backoff); ``ConnectFailures`` keeps why the last attempt
failed, counts the failures and logs each distinct reason once, so a broker
that cannot be reached (a wrong CA, a refused password, nobody listening) is
said at once, not discovered from a queue that never empties.

``ConnectFailures.failed`` runs on paho's network thread; the caller's thread
reads ``last`` and ``count`` (each written whole).
"""

import logging
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .config import BrokerConfig
from .errors import TlsCaError, connect_failure_text

log = logging.getLogger("mqtt_bridge")
PAHO_LOG = logging.getLogger("mqtt_bridge.paho")


class _QuietDisconnectRace(logging.Filter):
    """paho 2.2 logs an ERROR when its loop wakes after our own disconnect(); it is harmless."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Client is not connected" not in str(record.msg)


PAHO_LOG.addFilter(_QuietDisconnectRace())


def make_client(cfg: BrokerConfig, client_id: str, will_topic: str, will_payload: str,
                reconnect_min_s: float, reconnect_max_s: float) -> mqtt.Client:
    v5 = cfg.protocol == 5
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                         clean_session=None if v5 else True)
    # A bug in a callback must not silently kill the network thread (paho's default).
    client.suppress_exceptions = True
    client.enable_logger(PAHO_LOG)
    # paho's own offline queue stays unbounded: a bounded one rejects the *newest*
    # messages, including the "online" and discovery configs sent on reconnect.
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(reconnect_min_s, reconnect_max_s)  # type: ignore[arg-type]  # floats work
    client.will_set(will_topic, will_payload, qos=1, retain=True)
    if cfg.username is not None:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.tls:
        try:
            client.tls_set(ca_certs=cfg.tls_ca)
        except (OSError, ValueError) as exc:    # ssl.SSLError is an OSError
            raise TlsCaError("tls_ca", cfg.tls_ca, "not a readable PEM file of CA certificates (%s)"
                             % connect_failure_text(exc)) from None
    return client


class ConnectFailures:
    """Why connecting failed, for the log, ``Bridge.last_connect_error`` and the run's delivery figures."""

    def __init__(self, device_id: str, cfg: BrokerConfig, queue_path: str) -> None:
        self._device_id = device_id
        self._where = "%s:%d" % (cfg.host, cfg.port)
        self._queue_path = queue_path
        self._said: set = set()
        self.last: str | None = None
        self.count = 0

    def on_connect_fail(self, client, userdata) -> None:
        # paho calls this inside its "except OSError": the exception is the one being handled.
        self.failed(connect_failure_text(sys.exc_info()[1]))

    def failed(self, why: str) -> None:
        self.count += 1
        self.last = why
        if why not in self._said:
            self._said.add(why)
            log.warning("%s: cannot connect to %s: %s; retrying (messages wait in %s)",
                        self._device_id, self._where, why, self._queue_path)

    def connected(self) -> None:
        """A connection succeeded: a later failure is worth saying again."""
        self.last = None
        self._said.clear()
