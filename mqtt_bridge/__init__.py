"""bms-twin telemetry bridge: controller frames -> MQTT (paho-mqtt 2.x).

See docs/mqtt.md for the topic layout, payloads, commands and security.
"""

__version__ = "0.1.0"

from .bridge import Bridge  # noqa: E402  (after __version__, which discovery reads)
from .config import BrokerConfig, parse_broker_url  # noqa: E402

__all__ = ["Bridge", "BrokerConfig", "parse_broker_url", "__version__"]
