"""A fake controller loop in its own process, driving a real Bridge with
synthetic frames (docs/frames.md). Used by the outage and crash tests, which
kill it (SIGKILL) or its broker.

Prints one line per step on stdout (flushed), which the tests read:
  CONNECTED            the bridge got its first CONNACK (if it did)
  SEQ <n>              event n is in the store-and-forward queue
  DONE                 all events stored
  FLUSHED <bool>       (with --exit) the queue drained before exit
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from mqtt_bridge import Bridge  # noqa: E402
from mqtt_helpers import FakeController, event_frame, telemetry_frame  # noqa: E402


_PRINT_LOCK = threading.Lock()


def say(line: str) -> None:
    """One whole line per write: two threads print, and the tests parse lines."""
    with _PRINT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--broker", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--queue", required=True)
    p.add_argument("--events", type=int, default=100)
    p.add_argument("--start-seq", type=int, default=1)
    p.add_argument("--interval-ms", type=int, default=10)
    p.add_argument("--exit", action="store_true", help="flush and stop after the events (else run until killed)")
    args = p.parse_args()
    bridge = Bridge(args.device, args.broker, queue_path=args.queue, telemetry_period_ms=1000,
                    reconnect_min_s=1, reconnect_max_s=2, discovery=False).start()
    controller = FakeController()

    def announce() -> None:
        if bridge.wait_connected(30):
            say("CONNECTED")

    threading.Thread(target=announce, daemon=True).start()
    seq = args.start_seq
    last_seq = args.start_seq + args.events - 1
    t_ms = 0
    while True:
        t_ms += 1000
        bridge.publish_frame(telemetry_frame(args.device, t_ms, event_seq=min(seq, last_seq)))
        if seq <= last_seq:
            bridge.publish_frame(event_frame(args.device, seq, t_ms))
            say("SEQ %d" % seq)
            if seq == last_seq:
                say("DONE")
                if args.exit:
                    say("FLUSHED %s" % bridge.flush(30))
                    bridge.stop()
                    return 0
            seq += 1
        bridge.drain_commands(controller)
        time.sleep(args.interval_ms / 1000.0)


if __name__ == "__main__":
    sys.exit(main())
