"""A lossy line between the twin and a firmware, as its own process.

    python tests/hil/lossy_proxy.py [--drop P] [--flip P] [--delay P --delay-ms MS]
        [--outage-at-s T --outage-s S] [--seed N]

Makes a pty for the firmware and listens on 127.0.0.1 for the twin (tcp://), and
prints {"pty": path, "port": n} as one JSON line. Bytes pass both ways through it;
each byte is dropped with probability --drop and has one bit flipped with
probability --flip; a chunk is held --delay-ms with probability --delay. With
--outage-at-s, T wall seconds after the twin first connected the connection is
closed and nothing is accepted for --outage-s seconds (what the firmware sends
meanwhile is lost); then the twin may connect again. On SIGTERM it prints what it
did to each direction as one JSON line on stderr and exits 0.
"""
import argparse
import json
import os
import random
import select
import signal
import socket
import sys
import time
import tty


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drop", type=float, default=0.0)
    ap.add_argument("--flip", type=float, default=0.0)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--delay-ms", type=float, default=2.0)
    ap.add_argument("--outage-at-s", type=float, default=None)
    ap.add_argument("--outage-s", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)

    def listen(port=0):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", port))
        ls.listen(1)
        return ls

    listener = listen()
    port = listener.getsockname()[1]
    print(json.dumps({"pty": path, "port": port}), flush=True)
    stats = {d: {"bytes": 0, "dropped": 0, "flipped": 0, "delayed": 0, "lost_in_outage": 0}
             for d in ("to_firmware", "to_twin")}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    conn = None
    first_connect = None
    outage_done = args.outage_at_s is None
    outage_until = None

    def spoil(data, d):
        st = stats[d]
        st["bytes"] += len(data)
        out = bytearray()       # byte by byte even on a clean line: the same cost in both runs
        for b in data:
            r = rng.random()
            if r < args.drop:
                st["dropped"] += 1
                continue
            if r < args.drop + args.flip:
                b ^= 1 << rng.randrange(8)
                st["flipped"] += 1
            out.append(b)
        if args.delay and rng.random() < args.delay:
            st["delayed"] += 1
            time.sleep(args.delay_ms / 1000.0)
        return bytes(out)

    while not stop:
        now = time.monotonic()
        if outage_until is not None and now >= outage_until:
            listener = listen(port)
            outage_until = None
        if (not outage_done and first_connect is not None and conn is not None
                and now - first_connect >= args.outage_at_s):
            conn.close()
            conn = None
            listener.close()
            listener = None
            outage_until = now + args.outage_s
            outage_done = True
        rlist = [master] + ([conn] if conn is not None else []) + ([listener] if listener is not None else [])
        try:
            ready = select.select(rlist, [], [], 0.05)[0]
        except InterruptedError:
            continue
        if listener is not None and listener in ready:
            new, _ = listener.accept()
            new.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if conn is not None:
                conn.close()
            conn = new
            if first_connect is None:
                first_connect = time.monotonic()
        if master in ready:
            try:
                data = os.read(master, 4096)
            except OSError:
                data = b""
            if conn is None:
                stats["to_twin"]["lost_in_outage"] += len(data)
            elif data:
                try:
                    conn.sendall(spoil(data, "to_twin"))
                except OSError:
                    conn.close()
                    conn = None
        if conn is not None and conn in ready:
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                conn.close()
                conn = None
            else:
                os.write(master, spoil(data, "to_firmware"))
    sys.stderr.write(json.dumps(stats) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
