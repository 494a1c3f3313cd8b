"""bmsfw.board_hal off the board: the driver checks under CPython and under real
MicroPython, and the atomic record store on a real filesystem.

The sensors, PWM, relay pin and watchdog are tests/mp/fake_machine.py (register
models of the ADS1115 and INA226 from their datasheets); the checks themselves
are plain functions in tests/mp/board_checks.py, run here once per interpreter.
Under MicroPython the steady-state calls also run under micropython.heap_lock().
The record store is exercised on CPython against tmp_path (the MicroPython guest
only sees a read-only directory), including the power-cut states between its
writes and renames.

Run: .venv/bin/python -m pytest tests/firmware/test_mp_board_hal.py -q
"""

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "mp"))
sys.path.insert(0, str(ROOT / "firmware"))

import board_checks  # noqa: E402
import runner  # noqa: E402
from bmsfw.board_hal import BoardInputError, RecordStore  # noqa: E402

CHECKS = sorted(name for name in dir(board_checks) if name.startswith("test_"))


@pytest.fixture
def restore_machine():
    saved = sys.modules.get("machine")
    yield
    if saved is None:
        sys.modules.pop("machine", None)
    else:
        sys.modules["machine"] = saved


@pytest.mark.parametrize("name", CHECKS)
def test_board_check_under_cpython(name, restore_machine):
    getattr(board_checks, name)()


@pytest.mark.slow
def test_board_checks_under_micropython():
    assert len(CHECKS) >= 10
    with tempfile.TemporaryDirectory(prefix="bmsfw-mp-") as tmp:
        staged = runner.stage(Path(tmp))
        res = runner.run_module("board_checks", staged)
    assert res.failed == [], res.output
    assert sorted(res.passed) == CHECKS, res.output


# --- RecordStore on a real filesystem -----------------------------------------

def test_record_round_trip_and_empty(tmp_path):
    store = RecordStore(str(tmp_path))
    assert store.load() is None
    store.save(b"\x01\x02first")
    assert store.load() == b"\x01\x02first"
    store.save(bytearray(b"second"))
    assert store.load() == b"second"
    assert (tmp_path / "record.old").exists()
    assert not (tmp_path / "record.new").exists()
    store.save(b"")
    assert store.load() == b""


def test_power_cut_while_writing_new_keeps_the_old_record(tmp_path):
    store = RecordStore(str(tmp_path))
    store.save(b"old record")
    # The cut came mid-write: record.new is short.
    (tmp_path / "record.new").write_bytes(b"BMR1\x20\x00\x00\x00half")
    assert store.load() == b"old record"


def test_power_cut_between_the_renames_reads_the_new_record(tmp_path):
    store = RecordStore(str(tmp_path))
    store.save(b"old record")
    store.save(b"new record")
    # Rebuild the state after "bin -> old" and before "new -> bin".
    os.rename(tmp_path / "record.bin", tmp_path / "record.new")
    assert store.load() == b"new record"
    store.save(b"next")
    assert store.load() == b"next"


def test_truncated_or_foreign_bin_falls_back_to_old(tmp_path):
    store = RecordStore(str(tmp_path))
    store.save(b"A" * 40)
    store.save(b"B" * 40)
    data = (tmp_path / "record.bin").read_bytes()
    (tmp_path / "record.bin").write_bytes(data[:20])
    assert store.load() == b"A" * 40
    (tmp_path / "record.bin").write_bytes(b"garbage that is not a record")
    assert store.load() == b"A" * 40


def test_injected_validator_rejects_rotted_bytes(tmp_path):
    store = RecordStore(str(tmp_path), is_valid=lambda data: not data.startswith(b"X"))
    store.save(b"good")
    store.save(b"Xrotted")
    assert store.load() == b"good"


def test_bad_record_type_raises_and_changes_nothing(tmp_path):
    store = RecordStore(str(tmp_path))
    store.save(b"kept")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(BoardInputError) as err:
        store.save("not bytes")
    assert err.value.field == "data"
    assert store.load() == b"kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(BoardInputError):
        RecordStore("")


def test_fat_style_rename_refusal_is_handled(tmp_path, monkeypatch):
    # FAT (FatFs f_rename) refuses to rename onto an existing name.
    real_rename = os.rename

    def fat_rename(src, dst):
        if os.path.exists(dst):
            raise OSError(17, "EEXIST")
        real_rename(src, dst)

    store = RecordStore(str(tmp_path))
    monkeypatch.setattr(os, "rename", fat_rename)
    store.save(b"one")
    store.save(b"two")
    store.save(b"three")
    assert store.load() == b"three"
    assert not (tmp_path / "record.new").exists()
