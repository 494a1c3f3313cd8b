"""When the retained ``state`` and ``limits`` topics are due (docs/mqtt.md, §1).

- limits: whenever CVL, DVL, CCL or DCL change;
- state: at once when state, substate, faults or the event seq change (or the
  controller's clock went back: a reboot); otherwise at most every
  ``state_period_ms`` of controller time, and only if progress moved.

Caller's thread only, except ``limits_now``: the network thread reads it for the
set_limits pre-check. It is replaced by a new dict, never mutated, so a reader
holds either the old limits or the new ones.
"""

from bmsfw.commands import LIMIT_KEYS

from . import payloads
from .numbering import Numbering
from .topics import Topics


class RetainedTopics:
    def __init__(self, topics: Topics, state_period_ms: int, numbering: Numbering) -> None:
        self.topics = topics
        self._numbering = numbering
        self.state_period_ms = state_period_ms
        self.limits_now: dict | None = None
        self._last_limits_key: tuple | None = None
        self._last_state_key: tuple | None = None
        self._last_state_full: tuple | None = None
        self._last_state_t: int | None = None

    def due_rows(self, frame: dict) -> list:
        """Outbox rows ``(topic, payload, qos, retain, coalesce)`` a checked telemetry frame makes due."""
        device_id = self.topics.device_id
        run = self._numbering.run
        rows = []
        limits_key = payloads.limits_key(frame)   # frame already checked: plain lookups
        if limits_key != self._last_limits_key:
            self.limits_now = dict(zip(LIMIT_KEYS, limits_key))
            limits = payloads.limits_payload(frame, device_id, run)
            rows.append((self.topics.limits, payloads.dumps(limits), 1, True, True))
            self._last_limits_key = limits_key
        t_ms = frame["t_ms"]
        state_key = payloads.state_key(frame)
        last_t = self._last_state_t
        if state_key != self._last_state_key or last_t is None or t_ms < last_t:
            due = True
        elif t_ms - last_t >= self.state_period_ms:
            # Periodic refresh, only if something (inventory, plated charge, CE) moved.
            due = payloads.state_figures(frame) != self._last_state_full
        else:
            due = False
        if due:
            state = payloads.state_payload(frame, device_id, run, self._numbering.lost)
            rows.append((self.topics.state, payloads.dumps(state), 1, True, True))
            self._last_state_key = state_key
            self._last_state_full = payloads.state_figures(frame)
            self._last_state_t = t_ms
        return rows
