"""A whole d111 formation over HIL equals the in-process run, for the firmware
under CPython and under real MicroPython, each in its own process on a real pty,
in lockstep; and the HIL frames reach sinks exactly as in-process frames do.

Run: .venv/bin/python -m pytest tests/hil/test_hil_formation.py -q
"""
import pytest

from bmsfw.controller import Controller
from bmsfw.telemetry import EVENT_KEYS, TELEMETRY_KEYS
from hil_helpers import firmware_process
from twin.hil import HilServer, open_port
from twin.parameters import load_parameter_set
from twin.bench import Bench
from twin.firmware_config import config_for
from twin.run import run_closed_loop

SEED = 7
DEVICE = "d111-hil"


# slow (not in the fast lane, -m 'not slow'): whole formations over HIL and their reference run
pytestmark = pytest.mark.slow


class FakeSink:
    """The sink interface of twin.run.run_closed_loop: frame(dict), event(dict)."""

    def __init__(self):
        self.frames = []
        self.events = []

    def frame(self, frame):
        self.frames.append(dict(frame, faults=list(frame["faults"])))

    def event(self, event):
        self.events.append(dict(event))


@pytest.fixture(scope="module")
def d111():
    return load_parameter_set("d111")


@pytest.fixture(scope="module")
def reference(d111):
    """The in-process closed loop: same cell, seed, config and device id."""
    config = config_for(d111)
    sink = FakeSink()
    bench = Bench.build(d111, seed=SEED)
    result = run_closed_loop(d111, None, seed=SEED, stop_after_formation=True, bench=bench, sinks=[sink],
                             config=config, device_id=DEVICE)
    return result, sink, bench.board.record


def _hil_run(d111, kind):
    config = config_for(d111)
    stream, slave = open_port("pty")
    sink = FakeSink()
    try:
        with firmware_process(kind, slave, config, DEVICE) as proc:
            server = HilServer(d111, stream, mode="lockstep", seed=SEED, config=config, sinks=[sink],
                               reply_timeout_s=20.0, boot_timeout_s=60.0)
            result = server.run()
            assert proc.poll() is None, "the firmware process ended during the run"
    finally:
        stream.close()
    return result, sink, server.board.record


@pytest.mark.parametrize("kind", ["cpython", "micropython"])
def test_formation_over_hil_matches_the_in_process_run(d111, reference, kind):
    ref, _, ref_record = reference
    hil, _, hil_record = _hil_run(d111, kind)
    r, h = ref.summary, hil.summary
    assert r["final_state"] == "READY"
    assert h["final_state"] == r["final_state"]
    assert h["final_substate"] == r["final_substate"]
    assert h["faults"] == r["faults"] == []
    assert h["plated_uAh_end"] == pytest.approx(r["plated_uAh_end"], rel=1e-9)
    assert h["formation"]["plated_uAh"] == pytest.approx(r["formation"]["plated_uAh"], rel=1e-9)
    assert h["formation"]["counted_uAh"] == r["formation"]["counted_uAh"]
    assert h["formation"]["duration_s"] == r["formation"]["duration_s"]
    assert h["formation"]["record_writes"] == r["formation"]["record_writes"]
    # the record the firmware saved over the link is byte for byte the in-process one
    assert hil_record is not None and hil_record == ref_record
    assert h["sim_seconds"] == r["sim_seconds"]
    # the same events, field for field (the twin adds nothing on a clean link)
    assert [e["event"] for e in hil.events] == [e["event"] for e in ref.events]
    assert hil.events == ref.events
    assert len(hil.rows) == len(ref.rows)
    assert hil.rows[-1] == ref.rows[-1]
    # a clean link: nothing dropped on either end
    assert h["link_lost"] is False
    # (a busy machine may make the retry timer send a TICK again before the answer
    # came: the answer comes twice and the twin drops the second as replayed)
    c = h["link"]["twin"]
    assert {k: v for k, v in c.items()
            if v and k not in ("frames", "rx_bytes", "frame_bytes", "retries", "replayed")} == {}
    assert c["replayed"] <= 3 * c["retries"]
    assert h["link"]["twin"]["frames"] > h["hil"]["ticks_sent"]
    fw = h["link"]["firmware"]
    moved = {"rx_bytes", "rx_frames", "rx_frame_bytes"}
    assert {k: v for k, v in fw.items() if k not in moved} == dict.fromkeys(set(fw) - moved, 0)
    assert fw["rx_bytes"] == fw["rx_frame_bytes"]
    assert fw["rx_frames"] >= h["hil"]["ticks_sent"] and fw["rx_bytes"] > 23 * fw["rx_frames"]
    assert h["complete"] is True and h["hil"]["record_stale_ticks"] == 0


def test_hil_frames_reach_sinks_as_in_process_frames(d111, reference):
    _, ref_sink, _ = reference
    _, sink, _ = _hil_run(d111, "cpython")
    assert len(sink.frames) == len(ref_sink.frames) > 1000
    keys = list(Controller(_NullHal()).telemetry().keys())
    assert sorted(keys) == sorted(TELEMETRY_KEYS)
    for frame in sink.frames:
        assert sorted(frame) == sorted(keys)
    # field for field: HIL frames are the firmware's telemetry() dicts
    assert sink.frames == ref_sink.frames
    assert sink.events == ref_sink.events
    assert all(set(EVENT_KEYS) <= set(ev) for ev in sink.events)
    assert [e["event"] for e in sink.events][:2] == ["STATE", "STATE"]


class _NullHal:
    """Just enough HAL to build a Controller and read its telemetry keys."""

    def adc_read(self, channel):
        return 0

    def adc_bits(self):
        return 16

    def adc_vref_mv(self):
        return 4096

    def set_current_ua(self, ua):
        pass

    def set_relay(self, closed):
        pass

    def ticks_ms(self):
        return 0

    def load_record(self):
        return None

    def save_record(self, data):
        pass

    def feed_watchdog(self):
        pass
