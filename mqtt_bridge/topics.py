"""The topic layout, in one place (documented in docs/mqtt.md).

    bms/<device_id>/status            retained "online"/"offline" (Last Will)
    bms/<device_id>/state             retained JSON, QoS 1
    bms/<device_id>/limits            retained JSON, QoS 1
    bms/<device_id>/telemetry         JSON, QoS 0, rate-limited
    bms/<device_id>/event             JSON, QoS 1, one per controller event
    bms/<device_id>/cmd/<name>        commands in (QoS 1)
    bms/<device_id>/cmd/<name>/reply  replies out (QoS 1)
"""

import re

from .errors import DeviceIdError

ROOT = "bms"
STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"
REPLY_SUFFIX = "/reply"

# MQTT forbids nothing but wildcards and NUL in topic levels; Home Assistant
# object ids accept only [a-zA-Z0-9_-]. The stricter rule serves both.
_DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_device_id(device_id: str) -> str:
    if not isinstance(device_id, str) or not _DEVICE_ID_RE.match(device_id):
        raise DeviceIdError(device_id)
    return device_id


class Topics:
    """All topic strings of one device, built once."""

    def __init__(self, device_id: str, root: str = ROOT) -> None:
        check_device_id(device_id)
        self.device_id = device_id
        self.base = "%s/%s" % (root, device_id)
        self.status = self.base + "/status"
        self.state = self.base + "/state"
        self.limits = self.base + "/limits"
        self.telemetry = self.base + "/telemetry"
        self.event = self.base + "/event"
        self.cmd_prefix = self.base + "/cmd/"
        self.cmd_filter = self.base + "/cmd/#"

    def cmd(self, name: str) -> str:
        return self.cmd_prefix + name

    def reply(self, name: str) -> str:
        return self.cmd_prefix + name + REPLY_SUFFIX

    def command_name(self, topic: str) -> str | None:
        """The command name of an incoming cmd/ topic, or None for replies and others."""
        if not topic.startswith(self.cmd_prefix):
            return None
        name = topic[len(self.cmd_prefix):]
        if name.endswith(REPLY_SUFFIX) or "/reply/" in name or name == "reply":
            return None
        return name
