"""Zero-setup broker: amqtt in a background thread with its own asyncio loop.

Used by ``bms-twin run`` when no --broker is given. Pinned to 127.0.0.1 (amqtt's
default listener is 0.0.0.0:1883, which would expose an unauthenticated broker
to the network) and to a free port unless one is given. amqtt speaks MQTT 3.1.1
only, so the handle's URL carries ``?protocol=3.1.1`` for the bridge and watch.
Its retained messages live in memory and vanish on stop.
"""

import asyncio
import logging
import threading

from .errors import EmbeddedBrokerError, SettingError

BIND_HOST = "127.0.0.1"
log = logging.getLogger("mqtt_bridge.embedded")


class EmbeddedBroker:
    """Handle of a running embedded broker: ``.url``, ``.host``, ``.port``, ``.stop()``."""

    protocol = 4  # MQTT 3.1.1

    def __init__(self, port: int) -> None:
        self.host = BIND_HOST
        self.port = port
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="amqtt-embedded", daemon=True)

    @property
    def url(self) -> str:
        return "mqtt://%s:%d?protocol=3.1.1" % (self.host, self.port)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        from amqtt.broker import Broker  # imported here: ~0.1 s, only when wanted

        config = {
            "listeners": {"default": {"type": "tcp", "bind": "%s:%d" % (BIND_HOST, self.port)}},
            # Only anonymous auth: no $SYS publisher, no packet/event loggers.
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        try:
            broker = Broker(config)
            await broker.start()
        except Exception as exc:  # amqtt wraps OSError (port taken) in BrokerError; report either
            self._error = exc
            self._ready.set()
            return
        server = broker._servers.get("default")  # amqtt has no public accessor for the bound port
        sockets = getattr(getattr(server, "instance", None), "sockets", None) or ()
        for sock in sockets:
            self.port = sock.getsockname()[1]
            break
        stop_event = asyncio.Event()
        self._stop_event = stop_event
        self._ready.set()
        await stop_event.wait()
        await broker.shutdown()

    def start(self, timeout_s: float) -> "EmbeddedBroker":
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise EmbeddedBrokerError("embedded broker did not start within %.1f s" % timeout_s)
        if self._error is not None:
            raise EmbeddedBrokerError("embedded broker on %s:%d failed: %s" % (BIND_HOST, self.port, self._error))
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        loop, event = self._loop, self._stop_event
        if loop is not None and event is not None and self._thread.is_alive():
            loop.call_soon_threadsafe(event.set)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("embedded broker thread did not stop within %.1f s", timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> "EmbeddedBroker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_embedded_broker(port: int = 0, timeout_s: float = 10.0) -> EmbeddedBroker:
    """Start amqtt on 127.0.0.1:<port> (0 = a free port) and return its handle."""
    if type(port) is not int or not 0 <= port <= 65535:
        raise SettingError("port", port, "must be an int 0..65535")
    return EmbeddedBroker(port).start(timeout_s)
