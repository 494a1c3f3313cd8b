"""The link on a lossy line (tests/hil/lossy_proxy.py, its own process, between the
twin on tcp:// and the CPython firmware on a pty): a live d111 formation with bit
flips, byte drops and delays, and one with a 5 s outage that the twin rides through
by reconnecting. The cell is formed exactly as on a clean line (the same plated
charge, the same record), the twin never ticks on a record older than the
firmware's latest (lockstep's bound: zero ticks), both ends end cleanly, and the
wall time at 0.1 % loss is printed beside the clean run's.

Run: .venv/bin/python -m pytest tests/hil/test_hil_lossy.py -q -s
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hil_helpers import ROOT, firmware_process
from twin.firmware_config import config_for
from twin.hil import HilServer, open_port
from twin.parameters import load_parameter_set

PROXY = str(Path(__file__).with_name("lossy_proxy.py"))
SEED = 3
DEVICE = "d111-lossy"
DEADLINE_S = 120.0      # a whole formation on the worst line here ends well within this


def _formation(proxy_args, fw_link_timeout_ms=None, reply_timeout_s=20.0, reconnect_s=10.0):
    # frame gap 3 ms: a pty and TCP on this machine deliver a frame in one piece, so
    # a frame quiet for 3 ms lost a byte (the default, 10 ms, suits slower lines)
    d111 = load_parameter_set("d111")
    config = config_for(d111)
    proxy = subprocess.Popen([sys.executable, PROXY, *proxy_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        where = json.loads(proxy.stdout.readline())
        with firmware_process("cpython", where["pty"], config, DEVICE, link_timeout_ms=fw_link_timeout_ms) as fw:
            stream, _ = open_port("tcp://127.0.0.1:%d" % where["port"], reconnect_s=reconnect_s)
            try:
                server = HilServer(d111, stream, seed=SEED, config=config, reply_timeout_s=reply_timeout_s,
                                   boot_timeout_s=30.0, frame_gap_s=0.003)
                t0 = time.perf_counter()
                result = server.run(end_session=True)
                wall = time.perf_counter() - t0
                assert wall < DEADLINE_S
            finally:
                stream.close()
            exit_code = fw.wait(10)
            _, fw_err = fw.communicate(timeout=10)
    finally:
        proxy.terminate()
        _, proxy_err = proxy.communicate(timeout=10)
    stats = json.loads(proxy_err.strip().splitlines()[-1])
    return result, server, wall, exit_code, fw_err, stats


@pytest.fixture(scope="module")
def clean():
    return _formation([])


def _same_formation(run, clean_run):
    result, server, _, exit_code, fw_err, _ = run
    ref, ref_server = clean_run[0], clean_run[1]
    s, r = result.summary, ref.summary
    assert s["final_state"] == r["final_state"] == "READY"
    assert s["faults"] == [] and s["complete"] is True, s.get("why")
    assert s["formation"]["plated_uAh"] == pytest.approx(r["formation"]["plated_uAh"], rel=1e-9)
    assert s["plated_uAh_end"] == pytest.approx(r["plated_uAh_end"], rel=1e-9)
    # the board stores each numbered save once; one lost and superseded by a newer
    # one before the twin asked is not stored at all
    assert 0.99 * r["formation"]["record_writes"] <= s["formation"]["record_writes"] <= r["formation"]["record_writes"]
    # the board holds the firmware's latest record, and held it at every tick
    assert server.board.record == ref_server.board.record
    assert s["hil"]["record_stale_ticks"] == 0
    assert server.record_seq == server.fw_record_seq
    # no event is lost silently: an answer that lost one is asked for again, whole, in
    # lockstep; one lost where that cannot apply (seen once at boot, the HELLO/BOOT
    # exchange) is counted by its sequence gap, and every other event is the clean run's
    seqs = {e["seq"] for e in result.events if "seq" in e}
    assert [e for e in ref.events if e.get("seq") in seqs or "seq" not in e] == result.events
    assert len(ref.events) - len(result.events) == s["link"]["twin"]["events_lost"]
    # a clean end at both ends
    assert s["hil"]["end_acked"] is True and exit_code == 0, fw_err
    assert b"Traceback" not in fw_err


@pytest.mark.slow
def test_flips_drops_and_delays_at_a_tenth_of_a_percent_form_the_cell_as_a_clean_line(clean):
    # The firmware's link timeout counts wall time: 10 s rides out a run of
    # losses on a machine other work keeps busy (3 ticks of 1 s did not, once).
    lossy = _formation(["--drop", "0.001", "--flip", "0.001", "--delay", "0.01", "--delay-ms", "2", "--seed", "7"],
                       fw_link_timeout_ms=10000)
    _same_formation(lossy, clean)
    result, server, wall, _, _, stats = lossy
    c = result.summary["link"]["twin"]
    fw = result.summary["link"]["firmware"]
    spoiled = sum(stats[d]["dropped"] + stats[d]["flipped"] for d in stats)
    assert spoiled > 100, stats                         # the line really was lossy
    assert c["retries"] + c["record_asks"] > 0 and c["bad_crc"] + c["truncated"] > 0
    assert fw["naks"] > 0                               # the firmware asked for damaged TICKs at once
    print(f"\nd111 formation over a lossy line (0.1 % drops + 0.1 % flips + delays): {wall:.1f} s wall, "
          f"clean line {clean[2]:.1f} s: {wall / clean[2]:.1f}x; {result.summary['hil']['ticks_sent']} ticks, "
          f"{c['retries']} retries, {fw['naks']} NAKs, {c['record_asks']} record asks, "
          f"{c['answers_incomplete']} answers asked again, "
          f"{spoiled} bytes spoiled; srtt {result.summary['hil']['srtt_s'] * 1e3:.2f} ms")


@pytest.mark.slow
def test_a_5_s_outage_on_tcp_is_ridden_through_by_reconnecting(clean):
    # The firmware's link timeout (wall clock) outlasts the outage, and so does the
    # twin's reply timeout: the session goes on where it stopped.
    run = _formation(["--outage-at-s", "1.0", "--outage-s", "5"], fw_link_timeout_ms=20000,
                     reply_timeout_s=30.0, reconnect_s=20.0)
    _same_formation(run, clean)
    result, _, wall, _, _, _ = run
    assert result.summary["link"]["twin"]["reconnects"] >= 1
    assert wall > 5.0
    print(f"\nd111 formation through a 5 s tcp outage: {wall:.1f} s wall (clean {clean[2]:.1f} s)")
