"""Cycles as the seed counts them (twin/cycles.py): a discharge and the charge after
it, the formation before the first discharge not a cycle.

Run: .venv/bin/python -m pytest tests/twin/test_cycles.py -q
"""
import pytest

from twin.core import COULOMB_PER_UAH
from twin.cycles import CycleCounter

UAH = COULOMB_PER_UAH


def feed(counter, pieces):
    """pieces: (duration_s, +in uAh or -out uAh); times accumulate."""
    t = 0.0
    for duration_s, uAh in pieces:
        counter.add(t, max(uAh, 0.0) * UAH, max(-uAh, 0.0) * UAH, 100.0)
        t += duration_s


def test_formation_is_not_cycle_one():
    counter = CycleCounter()
    # formation 200 uAh, then 3 x (25 out, 25 in), then a strip
    feed(counter, [(7200, 200.0)] + [(900, -25.0), (900, 25.0)] * 3 + [(3600, -100.0)])
    assert counter.formation_uAh == pytest.approx(200.0)
    assert [c["index"] for c in counter.cycles] == [1, 2, 3]
    assert all(c["efficiency"] == pytest.approx(1.0) for c in counter.cycles)
    assert counter.cycles[0]["start_s"] == 7200 and counter.cycles[0]["t_s"] == 9000
    assert counter.cycles[1]["start_s"] == 9000


def test_a_limited_charge_gives_an_efficiency_above_one():
    counter = CycleCounter()
    feed(counter, [(7200, 200.0), (900, -25.0), (900, 15.0), (900, -25.0)])
    assert counter.cycles[0]["efficiency"] == pytest.approx(25.0 / 15.0)


def test_ticks_or_steps_count_the_same_cycles():
    by_step, by_tick = CycleCounter(), CycleCounter()
    feed(by_step, [(100, 10.0), (100, -5.0), (100, 4.0), (100, -1.0)])
    feed(by_tick, [(1, 0.1)] * 100 + [(1, -0.05)] * 100 + [(1, 0.04)] * 100 + [(1, -0.01)] * 100)
    assert len(by_step.cycles) == len(by_tick.cycles) == 1
    assert by_tick.cycles[0]["efficiency"] == pytest.approx(by_step.cycles[0]["efficiency"])


def test_no_discharge_no_cycle():
    counter = CycleCounter()
    feed(counter, [(3600, 100.0), (60, 0.0)])
    assert counter.cycles == [] and counter.formation_uAh == pytest.approx(100.0)
