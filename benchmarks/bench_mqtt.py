"""MQTT bridge throughput and fleet cost, against the local mosquitto (127.0.0.1:1883).

Prints, does not assert (tests never assert wall-clock figures):
1. QoS 0 telemetry: msg/s through ``Bridge.publish_frame`` vs a bare paho loop
   publishing the same payloads (pre-serialised, and serialising each one).
2. QoS 1 events: msg/s through the bridge (each event committed to the SQLite
   store-and-forward queue, removed on PUBACK) vs bare paho QoS 1.
   Goal for both: bridge / bare >= 0.8.
3. A fleet of N devices (one Bridge, one paho connection and one queue file
   each) at 1 Hz telemetry for D seconds: messages delivered and CPU used
   (resource.getrusage of the worker processes; the broker's CPU is not
   included). Devices are spread over worker processes of 150: paho's network
   loop uses select(), which cannot watch file descriptors >= 1024 (~5 per bridge).

Run: .venv/bin/python benchmarks/bench_mqtt.py [--n0 50000] [--n1 20000] [--fleet 1000] [--fleet-s 20]
Retained messages it leaves on the broker are cleared at the end.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from statistics import median

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from mqtt_bridge import Bridge  # noqa: E402
from mqtt_bridge import payloads  # noqa: E402
from mqtt_bridge.numbering import new_run_id  # noqa: E402
from mqtt_bridge.payloads import dumps  # noqa: E402

HOST, PORT = "127.0.0.1", 1883
URL = "mqtt://%s:%d" % (HOST, PORT)


def telemetry_frame(device: str, t_ms: int) -> dict:
    return {"kind": "telemetry", "device": device, "t_ms": t_ms, "state": "READY", "substate": "CHARGING",
            "cell_mv": 2105 + t_ms % 7, "current_ua": 100, "temp_dc": 251, "setpoint_ua": 100,
            "cvl_mv": 2800, "dvl_mv": 1800, "ccl_ua": 500, "dcl_ua": 400, "plated_uas": 720_000_000,
            "inventory_uas": 500_000_000 + t_ms, "target_uas": 720_000_000, "soc_pm": 694, "formation_pm": 1000,
            "ce_ppm": 990_000, "faults": [], "event_seq": 3}


def event_frame(device: str, seq: int) -> dict:
    return {"kind": "event", "device": device, "seq": seq, "t_ms": seq * 10, "event": "CYCLE",
            "detail": "bench", "ce_ppm": 990_000, "charge_uas": 90_000_000}


def bare_client(protocol: int = mqtt.MQTTv5) -> tuple:
    done = threading.Event()
    state = {"n": 0, "target": None}

    def on_publish(c, u, mid, rc, props):
        state["n"] += 1
        if state["target"] is not None and state["n"] >= state["target"]:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare-" + uuid.uuid4().hex[:6], protocol=protocol)
    c.on_publish = on_publish
    c.connect(HOST, PORT, 30)
    c.loop_start()
    time.sleep(0.2)
    return c, state, done


def bench_bare(topic: str, blobs: list, qos: int, serialise: bool = False) -> float:
    c, state, done = bare_client()
    docs = [json.loads(b) for b in blobs] if serialise else None
    state["target"] = len(blobs)
    t0 = time.perf_counter()
    if serialise:
        for doc in docs:
            c.publish(topic, dumps(doc), qos=qos)
    else:
        for blob in blobs:
            c.publish(topic, blob, qos=qos)
    done.wait(120)
    rate = len(blobs) / (time.perf_counter() - t0)
    c.disconnect()
    c.loop_stop()
    return rate


def bench_bridge(frames: list, device: str, qdir: str, **kw) -> float:
    bridge = Bridge(device, URL, queue_path=os.path.join(qdir, uuid.uuid4().hex + ".sqlite"), discovery=False,
                    telemetry_period_ms=1, **kw).start()
    bridge.wait_connected(10)
    bridge.publish_frame(frames[0])      # first frame publishes state and limits: outside the timing
    bridge.flush(30)
    t0 = time.perf_counter()
    for frame in frames[1:]:
        bridge.publish_frame(frame)
    ok = bridge.flush(300)
    rate = (len(frames) - 1) / (time.perf_counter() - t0)
    bridge.stop()
    if not ok:
        print("  (bridge did not flush within 300 s)")
    return rate


def bench_bridge_batched(frames: list, device: str, qdir: str, per_tick: int) -> float:
    """Events handed over per tick with publish_frames: one commit per tick."""
    bridge = Bridge(device, URL, queue_path=os.path.join(qdir, uuid.uuid4().hex + ".sqlite"), discovery=False,
                    telemetry_period_ms=1).start()
    bridge.wait_connected(10)
    t0 = time.perf_counter()
    for i in range(0, len(frames), per_tick):
        bridge.publish_frames(frames[i:i + per_tick])
    bridge.flush(300)
    rate = len(frames) / (time.perf_counter() - t0)
    bridge.stop()
    return rate


def clear_retained(devices: list) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-clean-" + uuid.uuid4().hex[:6],
                    protocol=mqtt.MQTTv311)
    c.connect(HOST, PORT, 30)
    c.loop_start()
    infos = [c.publish("bms/%s/%s" % (d, k), b"", qos=1, retain=True) for d in devices
             for k in ("status", "state", "limits")]
    for info in infos:
        info.wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


FLEET_PER_PROCESS = 150   # paho's select() loop cannot use fds >= 1024: ~5 fds per bridge


def fleet_worker(devices: list, qdir: str, seconds: float) -> None:
    """Child process: host some devices; on 'GO <t0>' from stdin publish 1 Hz each, report JSON."""
    bridges = [Bridge(d, URL, queue_path=os.path.join(qdir, d + ".sqlite"), discovery=False,
                      telemetry_period_ms=1000, reconnect_min_s=1, reconnect_max_s=5).start() for d in devices]
    connected = sum(b.wait_connected(30) for b in bridges)
    print("READY %d" % connected, flush=True)
    t0 = float(sys.stdin.readline().split()[1])
    n = len(bridges)
    c0 = cpu_s()
    sent = 0
    for second in range(int(seconds)):
        for i, bridge in enumerate(bridges):
            # spread each second's frames over the second, as free-running 1 Hz devices would be
            delay = t0 + second + i / n - time.time()
            if delay > 0.002:
                time.sleep(delay)
            bridge.publish_frame(telemetry_frame(bridge.device_id, (second + 1) * 1000))
            sent += 1
    used = cpu_s() - c0
    for bridge in bridges:
        bridge.stop(timeout=2, flush=False)
    print("RESULT " + json.dumps({"sent": sent, "cpu_s": used, "connected": connected}), flush=True)


def bench_fleet(n: int, seconds: float, qdir: str) -> None:
    prefix = "fleet%s-" % uuid.uuid4().hex[:6]
    devices = ["%s%04d" % (prefix, i) for i in range(n)]
    counter = subprocess.Popen(["mosquitto_sub", "-h", HOST, "-p", str(PORT), "-t", "bms/+/telemetry", "-F", "%t"],
                               stdout=subprocess.PIPE, text=True)
    received = {"n": 0}

    def count():
        for line in counter.stdout:
            if line.startswith("bms/" + prefix):
                received["n"] += 1

    threading.Thread(target=count, daemon=True).start()
    chunks = [devices[i:i + FLEET_PER_PROCESS] for i in range(0, n, FLEET_PER_PROCESS)]
    t_start = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, __file__, "--fleet-worker", ",".join(chunk), "--qdir", qdir,
                                 "--fleet-s", str(seconds)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for chunk in chunks]
    connected = 0
    for w in workers:
        connected += int(w.stdout.readline().split()[1])
    print("fleet: %d devices in %d processes (%d bridges each at most), %d connected in %.1f s"
          % (n, len(workers), FLEET_PER_PROCESS, connected, time.perf_counter() - t_start), flush=True)
    t0 = time.time() + 1.0
    base_rx = received["n"]
    for w in workers:
        w.stdin.write("GO %.6f\n" % t0)
        w.stdin.flush()
    results = []
    for w in workers:
        for line in w.stdout:
            if line.startswith("RESULT "):
                results.append(json.loads(line[7:]))
        w.wait(60)
    time.sleep(1.0)
    delivered = received["n"] - base_rx
    sent = sum(r["sent"] for r in results)
    cpu = sum(r["cpu_s"] for r in results)
    print("fleet: %d devices x 1 Hz for %.0f s: %d frames published, %d delivered (%.0f msg/s); "
          "CPU of the bridge processes while publishing %.2f s = %.0f %% of one core "
          "(%.0f us per message; broker not included)"
          % (n, seconds, sent, delivered, delivered / seconds, cpu, 100 * cpu / seconds,
             1e6 * cpu / max(sent, 1)), flush=True)
    counter.terminate()
    counter.wait(10)
    clear_retained(devices)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n0", type=int, default=50_000, help="QoS 0 telemetry messages")
    p.add_argument("--n1", type=int, default=20_000, help="QoS 1 event messages")
    p.add_argument("--repeat", type=int, default=3, help="interleaved repeats of each throughput run")
    p.add_argument("--fleet", type=int, default=1000, help="fleet size (0 to skip)")
    p.add_argument("--fleet-s", type=float, default=20.0, help="fleet run, seconds")
    p.add_argument("--fleet-worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--qdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    sys.stdout.reconfigure(line_buffering=True)   # progress shows even when piped
    if args.fleet_worker:
        fleet_worker(args.fleet_worker.split(","), args.qdir, args.fleet_s)
        return
    qdir = tempfile.mkdtemp(prefix="bench-mqtt-")
    try:
        run(args, qdir)
    finally:
        shutil.rmtree(qdir, ignore_errors=True)


def run(args: argparse.Namespace, qdir: str) -> None:
    dev0, dev1 = "bench-tel-" + uuid.uuid4().hex[:6], "bench-evt-" + uuid.uuid4().hex[:6]

    run_id = new_run_id()     # the bare loops publish what the bridge does, run id included
    frames = [telemetry_frame(dev0, t) for t in range(args.n0 + 1)]
    blobs = [dumps(payloads.telemetry_payload(f, dev0, 0, run_id)) for f in frames[1:]]
    topic0 = "bms/%s/telemetry" % dev0
    print("payload sizes: telemetry %d B, event %d B; %d interleaved repeats, medians shown" % (
        len(blobs[0]), len(dumps(payloads.event_payload(event_frame(dev1, 1), dev1, run_id))), args.repeat))
    # Interleaved repeats: the host is shared, so compare runs made at the same time.
    bare0, bare0j, br0 = [], [], []
    for _ in range(args.repeat):
        bare0.append(bench_bare(topic0, blobs, 0))
        bare0j.append(bench_bare(topic0, blobs, 0, serialise=True))
        br0.append(bench_bridge(frames, dev0, qdir))
    b0, b0j, r0 = median(bare0), median(bare0j), median(br0)
    print("QoS 0 telemetry, %d msgs: bare paho %.0f msg/s, bare paho + json %.0f msg/s, bridge %.0f msg/s"
          % (args.n0, b0, b0j, r0))
    print("  ratio bridge/bare = %.2f, bridge/(bare+json) = %.2f  (goal >= 0.8; per-run ratios %s)"
          % (r0 / b0, r0 / b0j, ", ".join("%.2f" % (r / b) for r, b in zip(br0, bare0))))

    eframes = [event_frame(dev1, s) for s in range(1, args.n1 + 2)]
    eblobs = [dumps(payloads.event_payload(f, dev1, run_id)) for f in eframes[1:]]
    topic1 = "bms/%s/event" % dev1
    bare1, br1, br1b, br1off = [], [], [], []
    for _ in range(args.repeat):
        bare1.append(bench_bare(topic1, eblobs, 1))
        br1.append(bench_bridge(eframes, dev1, qdir))
        br1b.append(bench_bridge_batched(eframes[1:], dev1, qdir, 10))
        br1off.append(bench_bridge(eframes, dev1, qdir, synchronous="OFF"))
    b1, r1, r1b = median(bare1), median(br1), median(br1b)
    print("QoS 1 events, %d msgs: bare paho %.0f msg/s, bridge (SQLite WAL store-and-forward, one commit "
          "per event) %.0f msg/s, bridge with publish_frames (10 events per commit) %.0f msg/s"
          % (args.n1, b1, r1, r1b))
    print("  ratio bridge/bare = %.2f (per-run %s), batched/bare = %.2f  (goal >= 0.8)"
          % (r1 / b1, ", ".join("%.2f" % (r / b) for r, b in zip(br1, bare1)), r1b / b1))
    print("  with synchronous=OFF (no fsync at WAL checkpoints; still survives a killed process): "
          "%.0f msg/s, ratio %.2f" % (median(br1off), median(br1off) / b1))
    clear_retained([dev0, dev1])

    if args.fleet > 0:
        bench_fleet(args.fleet, args.fleet_s, qdir)


if __name__ == "__main__":
    main()
