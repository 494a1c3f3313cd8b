"""Faults on a live HIL link, firmware in its own process on a real pty:
garbage injected both ways (dropped, counted, run unchanged), the firmware
killed mid-formation (the twin puts the board safe: lockstep and realtime),
and the twin falling silent (the firmware latches LINK_LOST, current 0).

Run: .venv/bin/python -m pytest tests/hil/test_hil_faults.py -q
"""
import os
import random
import time

import pytest

from bmsfw import link_codec as lc
from hil_helpers import firmware_process
from twin.hil import HilServer, open_port
from twin.parameters import load_parameter_set
from twin.firmware_config import config_for
from twin.run import run_closed_loop

SEED = 3
DEVICE = "d111-faults"


@pytest.fixture(scope="module")
def d111():
    return load_parameter_set("d111")


class Injector:
    """A sink that, every `every` frames, writes garbage into both directions
    of the pty: to the twin (through the slave, as if the firmware sent it) and
    to the firmware (through the master, as if the twin did). Between frames:
    each side's writes are atomic on a pty."""

    def __init__(self, master_fd, slave_path, every=97):
        self.master_fd = master_fd
        self.slave_fd = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
        self.every = every
        self.n = 0
        self.to_twin = 0
        self.to_fw = 0
        self.bad_frames_to_fw = 0
        self.rng = random.Random(9)

    def _junk(self, n):
        return bytes(self.rng.choice([b for b in range(256) if b != 0xA5]) for _ in range(n))

    def frame(self, frame):
        self.n += 1
        if self.n % self.every:
            return
        junk = self._junk(self.rng.randrange(1, 40))
        os.write(self.slave_fd, junk)
        self.to_twin += len(junk)
        # garbage, then a TICK-shaped frame whose CRC fails, then more garbage
        buf = bytearray(lc.MAX_FRAME)
        n = lc.finish_frame(buf, 0, lc.T_TICK, 0x4242, lc.TICK_SIZE)
        buf[n - 1] ^= 0x5A
        data = self._junk(self.rng.randrange(1, 40)) + bytes(buf[:n]) + self._junk(3)
        os.write(self.master_fd, data)
        self.to_fw += len(data)
        self.bad_frames_to_fw += 1

    def event(self, event):
        pass

    def close(self):
        os.close(self.slave_fd)


@pytest.mark.slow
def test_garbage_both_ways_is_counted_and_changes_nothing(d111):
    config = config_for(d111)
    ref = run_closed_loop(d111, None, seed=SEED, stop_after_formation=True, config=config, device_id=DEVICE)
    stream, slave = open_port("pty")
    inj = Injector(stream.fd, slave)
    try:
        with firmware_process("cpython", slave, config, DEVICE):
            server = HilServer(d111, stream, seed=SEED, config=config, sinks=[inj], reply_timeout_s=20.0)
            hil = server.run()
    finally:
        inj.close()
        stream.close()
    h = hil.summary
    assert inj.bad_frames_to_fw > 50
    # every injected byte counted, exactly, on the side that received it
    twin = h["link"]["twin"]
    assert twin["garbage_bytes"] == inj.to_twin
    assert twin["bad_header"] + twin["bad_crc"] + twin["truncated"] == 0
    fw = h["link"]["firmware"]
    assert fw["garbage_bytes"] + fw["bad_header"] + fw["bad_crc"] + fw["truncated"] == inj.to_fw
    assert fw["bad_crc"] >= inj.bad_frames_to_fw // 2
    # and the run is the clean run
    assert h["final_state"] == ref.summary["final_state"] == "READY"
    assert h["plated_uAh_end"] == pytest.approx(ref.summary["plated_uAh_end"], rel=1e-9)
    assert hil.events == ref.events
    assert h["link_lost"] is False


class KillAt:
    """A sink that kills the firmware process at the first frame at or after
    t_kill_ms in which it is charging, remembering the board's outputs then."""

    def __init__(self, t_kill_ms, board=None):
        self.t_kill_ms = t_kill_ms
        self.proc = None
        self.server = None
        self.killed_at = None

    def frame(self, frame):
        if self.killed_at is None and frame["t_ms"] >= self.t_kill_ms and frame["setpoint_ua"] > 0:
            board = self.server.board
            self.killed_at = (frame["t_ms"], board.setpoint_ua, board.relay_closed)
            self.proc.kill()

    def event(self, event):
        pass


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lockstep", "realtime"])
def test_killing_the_firmware_mid_formation_leaves_the_board_safe(d111, mode):
    tick_ms = 1000 if mode == "lockstep" else 20
    config = config_for(d111, tick_ms=tick_ms, boot_settle_ms=8 * tick_ms)  # 8 zero samples
    stream, slave = open_port("pty")
    killer = KillAt(3_000_000 if mode == "lockstep" else 1600)
    try:
        # the firmware's own link timeout is long: only the twin reacts here
        with firmware_process("cpython", slave, config, DEVICE, link_timeout_ms=5000) as proc:
            killer.proc = proc
            server = HilServer(d111, stream, mode=mode, seed=SEED, config=config, sinks=[killer],
                               reply_timeout_s=1.0, retry_s=0.2, link_timeout_ms=100)
            killer.server = server
            result = server.run(duration_s=None if mode == "lockstep" else 3.0)
    finally:
        stream.close()
    assert killer.killed_at is not None
    t_kill, setpoint, relay = killer.killed_at
    assert setpoint > 0 and relay                  # it was charging when the firmware died
    s = result.summary
    assert s["link_lost"] is True
    assert s["hil"]["board_setpoint_ua"] == 0 and s["hil"]["board_relay_closed"] is False
    twin_events = [e for e in result.events if e.get("source") == "twin"]
    assert [e["event"] for e in twin_events] == ["LINK_LOST"]
    assert twin_events[0]["t_ms"] >= t_kill
    if mode == "lockstep":
        assert s["hil"]["firmware_dead"] is True
        assert s["link"]["twin"]["retries"] >= 1
        assert result.rows[-1][0] * 1000 <= t_kill + tick_ms     # nothing recorded after the death
    else:
        # the twin kept time going, with the source off
        assert s["sim_seconds"] >= 3.0 - 1e-9
        assert s["final_state"] == "FORMING"        # the firmware's last word


@pytest.mark.parametrize("kind", ["cpython", pytest.param("micropython", marks=pytest.mark.slow)])
def test_a_silent_twin_makes_the_firmware_latch_link_lost_with_current_off(d111, kind):
    config = config_for(d111)
    stream, slave = open_port("pty")
    try:
        # 2 s: well above a busy machine's pause between two lockstep TICKs, so only the silence trips it
        with firmware_process(kind, slave, config, DEVICE, link_timeout_ms=2000) as proc:
            server = HilServer(d111, stream, seed=SEED, config=config, reply_timeout_s=20.0)
            server.run(duration_s=1500.0)
            before = dict(server.last_frame)
            assert before["state"] == "FORMING" and before["setpoint_ua"] > 0
            assert server.board.relay_closed
            # the twin stops ticking; it only listens
            deadline = time.monotonic() + 15.0
            while not server.link_lost and time.monotonic() < deadline:
                server._pump(0.05)
            assert proc.poll() is None
    finally:
        stream.close()
    assert server.link_lost is True
    after = server.last_frame
    assert after["state"] == "FAULT"
    assert "LINK_LOST" in after["faults"]
    assert after["setpoint_ua"] == 0
    assert server.board.setpoint_ua == 0 and server.board.relay_closed is False
    fw_events = [e for e in server.recorder.events if e.get("source") != "twin"]
    assert any(e["event"] == "FAULT" and e.get("fault") == "LINK_LOST" for e in fw_events)
    assert server.fw_counters["link_lost"] == 1


def test_after_a_lost_link_the_firmware_resyncs_and_takes_reset_fault_over_the_link(d111):
    config = config_for(d111)
    stream, slave = open_port("pty")
    try:
        with firmware_process("cpython", slave, config, DEVICE, link_timeout_ms=300):
            server = HilServer(d111, stream, seed=SEED, config=config, reply_timeout_s=20.0)
            server.run(duration_s=200.0)
            deadline = time.monotonic() + 15.0
            while not server.link_lost and time.monotonic() < deadline:
                server._pump(0.05)
            # the firmware HELLOs; the twin's boot TICK answer re-syncs the link
            while server.last_frame["state"] != "FAULT" or server._await_seq is not None:
                assert time.monotonic() < deadline
                server._pump(0.05)
            assert server.command("no/such") == (False, "UNKNOWN_COMMAND")
            assert server.command("reset_fault") == (True, "OK")
            assert server.command("reset_fault") == (False, "NOT_ALLOWED_IN_STATE")
            server.run(duration_s=server.bench.t_s + 5.0)      # and on it goes
    finally:
        stream.close()
    names = [e["event"] for e in server.recorder.events if e.get("source") != "twin"]
    assert names.count("COMMAND") == 1
    assert "FAULT_CLEARED" in names
    assert server.last_frame["state"] in ("BOOT", "SHIPPED", "FORMING")
    assert "LINK_LOST" not in server.last_frame["faults"]
