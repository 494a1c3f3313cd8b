"""Which numbering an event belongs to (``run``), and events the controller lost.

The controller numbers its events 1, 2, 3 … and keeps the count in its record,
so one board never reuses a number. A new run (a fresh twin, a new board, a
wiped record, a bridge restarted against a board that was reflashed) starts
again at 1: ``seq`` alone does not name an event. Every payload therefore
carries ``run``, an id this bridge makes when it starts and makes afresh
whenever the controller's count goes back; ``(device, run, seq)`` names one
event for good.

The same watch counts the events that never reached the bridge: a ``seq`` that
skips numbers means the controller dropped events (its queue overflowed) or a
link lost them. They are counted in ``lost`` (published in the retained state
as ``events_lost`` and in the run's delivery figures) and logged.

Caller's thread only (``event``, ``frame``); other threads read ``run``, which
is replaced, never mutated.
"""

import logging
import os
import time

log = logging.getLogger("mqtt_bridge")

RUN_ID_PATTERN = r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"


def new_run_id() -> str:
    """UTC start time (so runs sort by when they began) and 32 random bits."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + os.urandom(4).hex()


class Numbering:
    def __init__(self, device_id: str) -> None:
        self._device_id = device_id
        self.run = new_run_id()
        self.runs = [self.run]
        self.lost = 0
        self.last_seq: int | None = None

    def event(self, seq: int) -> str:
        """The run an event of number ``seq`` belongs to; counts a gap before it as lost."""
        last = self.last_seq
        if last is not None:
            if seq <= last:
                self._restart(seq)
            elif seq > last + 1:
                missing = seq - last - 1
                self.lost += missing
                log.warning("%s: %d event(s) lost before event %d (the controller's queue overflowed?)",
                            self._device_id, missing, seq)
        self.last_seq = seq
        return self.run

    def frame(self, event_seq: int) -> None:
        """A telemetry frame's ``event_seq`` (the last event's number): a count that went back is a new run."""
        last = self.last_seq
        if last is not None and event_seq < last:
            self._restart(event_seq)
            self.last_seq = None

    def _restart(self, seq: int) -> None:
        self.run = new_run_id()
        self.runs.append(self.run)
        log.info("%s: event numbers restarted (%d after %s): new run %s", self._device_id, seq, self.last_seq,
                 self.run)
