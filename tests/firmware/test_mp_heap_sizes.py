"""Zero allocation per tick on a 32-bit board, for cells from 200 µAh to 100 Ah.

tests/mp/heap_states.py runs the frozen firmware in the unix-32 build (the
`micropython_32` fixture: 31-bit small ints, single-precision floats) and, for a
200 µAh (D111), a 1 Ah and a 100 Ah configuration, brings a controller into
SHIPPED, each FORMING substate (NUCLEATE, PLATE, and VERIFY's rest, strip and
replate) and each READY substate (RESTING, CHARGING, DISCHARGING). In each, the
steady-state ticks that save no record allocate 0 bytes, a tick under
micropython.heap_lock() raises no MemoryError, and a tick that saves the record
(encoding it makes its bytes) allocates only that. The live heap peak over the
whole probe stays within 64 KB.

Run: .venv/bin/python -m pytest tests/firmware/test_mp_heap_sizes.py -q -s
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mp"))

import heap_states  # noqa: E402  (tests/mp is not a package)

BUDGET = 64 * 1024


@pytest.mark.slow
def test_every_state_of_every_cell_size_ticks_without_allocating(micropython_32, capsys):
    probes, peak, traces = heap_states.run(micropython_32)
    with capsys.disabled():
        print("\n[micropython unix-32] peak live heap %.1f KB" % (peak / 1024))
        for p in probes:
            print("  " + str(p))
    expected = {(size, name) for size in heap_states.SIZES for name in heap_states.SCENARIOS}
    assert {(p.size, p.scenario) for p in probes} == expected
    report = "\n".join(str(p) for p in probes) + "\n" + "\n".join(traces)
    for p in probes:
        assert p.got.rstrip("/") == p.scenario, report
        assert p.locked == "ok", report
        for n_bytes, n_saves in zip(p.bytes_per_tick, p.saves_per_tick):
            if n_saves == 0:
                assert n_bytes == 0, report
            else:
                assert n_bytes <= 1024 * n_saves, report
    # the three sizes are counted in different units (bmsfw.ledger.unit_for)
    units = {p.size: p.unit_uas for p in probes}
    assert units["200uah"] < units["1ah"] < units["100ah"]
    assert peak <= BUDGET


@pytest.mark.slow
def test_the_probe_sees_an_allocation_when_there_is_one(micropython_32):
    # The same probe with the ledger counting plain µA·ms (as before charge units):
    # a 1 Ah cell's inventory is a long int, the tick allocates, and it says so.
    probes, _, traces = heap_states.run(micropython_32, sizes=("1ah",), scenarios=("FORMING/PLATE",),
                                        sabotage=True)
    assert len(probes) == 1 and probes[0].locked == "MemoryError"
    assert any(b > 0 for b in probes[0].bytes_per_tick)
    assert "MemoryError" in traces[0] and "bmsfw/" in traces[0]   # where it allocated (limits.ccl_ua)
