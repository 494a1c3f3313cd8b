"""firmware/main.py, the board's composition root: pacing, output, HAL choice.

run() is driven by a fake clock (ticks wrap at 2**30 as on a board) and a fake
controller, so the schedule is checked exactly, with no wall clock. build_hal()
is checked with tests/mp/fake_machine.py standing in for `machine`. The last
test runs main.run() with the real Controller and FakeHal under MicroPython.

Run: .venv/bin/python -m pytest tests/firmware/test_mp_main.py -q
"""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "mp"))
sys.path.insert(0, str(ROOT / "firmware"))

import fake_machine  # noqa: E402
from twin.images.wasm import run_guest  # noqa: E402

_spec = importlib.util.spec_from_file_location("bmsfw_main", ROOT / "firmware" / "main.py")
main = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(main)

PERIOD = 1 << 30


class FakeClock:
    """time.ticks_* and sleep_ms over a simulated ms counter that wraps at 2**30."""

    def __init__(self, start_ms):
        self.now = start_ms
        self.sleeps = []

    def ticks_ms(self):
        return self.now % PERIOD

    def ticks_add(self, t, delta):
        return (t + delta) % PERIOD

    def ticks_diff(self, a, b):
        return ((a - b + PERIOD // 2) % PERIOD) - PERIOD // 2

    def sleep_ms(self, ms):
        assert ms > 0
        self.sleeps.append(ms)
        self.now += ms


class FakeController:
    def __init__(self, clock, work_ms=7, slow_tick=None, slow_ms=0, events_on=()):
        self.clock = clock
        self.work_ms = work_ms
        self.slow_tick = slow_tick
        self.slow_ms = slow_ms
        self.events_on = events_on
        self.starts = []
        self.n = 0

    def tick(self):
        self.starts.append(self.clock.now)
        self.n += 1
        self.clock.now += self.slow_ms if self.n == self.slow_tick else self.work_ms

    def telemetry(self):
        return {"kind": "telemetry", "tick": self.n, "cell_mv": 2250}

    def pop_events(self):
        if self.n in self.events_on:
            return [{"kind": "event", "event": "state", "tick": self.n}]
        return []


def test_run_paces_ticks_at_tick_ms_across_the_clock_wrap():
    clock = FakeClock(PERIOD - 250)
    ctrl = FakeController(clock)
    n = main.run(ctrl, 100, max_ticks=10, emit=lambda kind, data: None, clock=clock)
    assert n == 10
    assert [t - ctrl.starts[0] for t in ctrl.starts] == [100 * k for k in range(10)]
    assert clock.sleeps == [93] * 10


def test_a_late_tick_resynchronises_instead_of_bursting():
    clock = FakeClock(1000)
    ctrl = FakeController(clock, work_ms=5, slow_tick=3, slow_ms=450)
    main.run(ctrl, 100, max_ticks=8, emit=lambda kind, data: None, clock=clock)
    gaps = [b - a for a, b in zip(ctrl.starts, ctrl.starts[1:])]
    # ticks 1-3 on schedule, tick 3 overran by 4 periods: the next starts at
    # once and the schedule restarts from there, no catch-up burst of 0-ms gaps
    assert gaps[:2] == [100, 100]
    assert gaps[2] == 450
    assert gaps[3:] == [100, 100, 100, 100]


def test_telemetry_every_n_ticks_and_every_event_as_json_lines(capsys):
    clock = FakeClock(0)
    ctrl = FakeController(clock, events_on=(2, 5))
    main.run(ctrl, 50, max_ticks=6, telemetry_every=3, clock=clock)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {"kind": "event", "event": "state", "tick": 2},
        {"kind": "telemetry", "tick": 3, "cell_mv": 2250},
        {"kind": "event", "event": "state", "tick": 5},
        {"kind": "telemetry", "tick": 6, "cell_mv": 2250},
    ]


def test_bad_tick_ms_is_named_and_nothing_runs():
    clock = FakeClock(0)
    ctrl = FakeController(clock)
    for bad in (0, -5, 1.5, None):
        with pytest.raises(main.BoardConfigError) as err:
            main.run(ctrl, bad, max_ticks=1, clock=clock)
        assert err.value.field == "tick_ms"
    assert ctrl.n == 0


class _Board:
    def __init__(self, **overrides):
        from bmsfw import board_config

        for name in dir(board_config):
            if name.isupper():
                setattr(self, name, getattr(board_config, name))
        for name, value in overrides.items():
            setattr(self, name, value)


@pytest.fixture
def fake_machine_module():
    saved = sys.modules.get("machine")
    sys.modules["machine"] = fake_machine.install()
    yield fake_machine
    if saved is None:
        sys.modules.pop("machine", None)
    else:
        sys.modules["machine"] = saved


def test_unknown_hal_kind_is_refused():
    with pytest.raises(main.BoardConfigError) as err:
        main.build_hal(_Board(HAL_KIND="twin"))
    assert err.value.field == "HAL_KIND" and err.value.value == "twin"


def test_board_hal_is_built_and_its_store_checks_the_record_crc(fake_machine_module, tmp_path):
    from bmsfw.board_hal import BoardHal
    from fakes import record_bytes

    hal = main.build_hal(_Board(RECORD_DIR=str(tmp_path)))
    assert isinstance(hal, BoardHal)
    good = record_bytes("READY", "RESTING", inventory_uas=1234)
    hal.save_record(good)
    rotted = bytearray(good)
    rotted[5] ^= 0x40  # one flipped bit: the record's CRC no longer matches
    hal.save_record(bytes(rotted))
    assert hal.load_record() == good
    assert main.record_is_valid(good) and not main.record_is_valid(bytes(rotted))


def test_device_id_defaults_to_the_mcu_unique_id(fake_machine_module):
    assert main.device_id(_Board(DEVICE_ID=None)) == "bms-e6614104032a5c2b"
    assert main.device_id(_Board(DEVICE_ID="d111-0007")) == "d111-0007"


@pytest.mark.slow
def test_main_loop_runs_the_real_controller_under_micropython(tmp_path):
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "firmware", tmp_path / "firmware", ignore=ignore)
    shutil.copytree(ROOT / "tests" / "firmware", tmp_path / "tests" / "firmware", ignore=ignore)
    code = r"""
import sys, time
sys.path[0:0] = ["/input/firmware", "/input/tests/firmware"]
import main
from fakes import FakeHal, small_cell, small_config
from bmsfw.controller import Controller
hal = FakeHal(cell=small_cell())
ctrl = Controller(hal, small_config(), "bms-0001")
out = []
class Stepper:
    # the twin's clock: one simulated second per tick, whatever the wall clock does
    def __init__(self, ctrl):
        self.ctrl = ctrl
    def tick(self):
        hal.step(1000)
        self.ctrl.tick()
    def telemetry(self):
        return self.ctrl.telemetry()
    def pop_events(self):
        return self.ctrl.pop_events()
n = main.run(Stepper(ctrl), 1, max_ticks=20, telemetry_every=5, emit=lambda k, d: out.append(k))
print("RAN", n, out.count("telemetry"), out.count("event"), ctrl.state)
"""
    res = run_guest(code, readonly_dir=tmp_path, heap_bytes=4 * 1024 * 1024, wall_timeout_s=60)
    assert res.exit_code == 0, res.stdout + res.stderr
    ran = [line.split() for line in res.stdout.splitlines() if line.startswith("RAN")]
    assert ran, res.stdout
    _, n, n_tel, n_ev, state = ran[0]
    assert (n, n_tel) == ("20", "4")
    assert int(n_ev) >= 1  # at least the boot detection event
    assert state == "FORMING"


def test_maintenance_pin_low_keeps_the_controller_and_watchdog_off(fake_machine_module, capsys):
    board = _Board(MAINTENANCE_PIN=22)
    fake_machine.Pin.levels[22] = 0
    assert main.main(board) is None
    assert "maintenance" in capsys.readouterr().out
    assert fake_machine.WDT.last is None and fake_machine.PWM.last is None
    fake_machine.Pin.levels[22] = 1
    assert main.maintenance_requested(board) is False
    assert main.maintenance_requested(_Board(MAINTENANCE_PIN=None)) is False
