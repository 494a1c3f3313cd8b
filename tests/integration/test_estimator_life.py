"""The firmware's estimator against the twin's truth over a cell's life (twin/life.py).

Sized for CI (the C twin with the CPython firmware runs ~30 cycles a second): a
short life at 25 °C, the three temperatures with ±20 % spreads of loss rate, layer
thickness, catholyte capacity and ADC noise over 200 cycles (slow), a crack at a
seeded random instant, intact runs for false detections, and a cell that lost more
lithium than the firmware's prior says (the knee corrects it, no false fault).
The full 1,000-cycle study is benchmarks/bench_estimator.py.
"""
import random

import pytest

from twin.life import Life
from twin.parameters import load_parameter_set

D111 = load_parameter_set("d111")


def _check_life(r, cycles):
    assert r.formed and r.cycles == cycles
    assert r.faults == []
    assert r.reserve_breaches == 0
    assert r.max_inventory_error_pct <= 2.0, r.inventory_errors_pct
    assert r.max_soc_error_pts <= 3.0, r.soc_errors_pts
    assert r.outside_bound == 0


def test_thirty_cycles_at_25_c_keep_inventory_and_soc_with_the_twin():
    r = Life(D111, ambient_c=25.0, seed=3, cycles=30).run()
    _check_life(r, 30)


@pytest.mark.slow
@pytest.mark.parametrize("ambient_c", [0.0, 25.0, 45.0])
def test_two_hundred_cycles_with_spreads_and_two_strips(ambient_c):
    r = Life(D111, ambient_c=ambient_c, seed=11, spread=0.2, cycles=200, strip_every=100).run()
    _check_life(r, 200)


def test_a_crack_at_a_random_instant_is_suspected_within_a_cycle_and_a_rest_and_charging_stops():
    rng = random.Random(5)
    life = Life(D111, ambient_c=25.0, seed=5, cycles=12, crack_after_s=1800 * 3 + rng.uniform(0, 1800))
    r = life.run()
    assert r.crack_at_s is not None and r.faults == ["CRACK_SUSPECTED"]
    # one 30-minute cycle, then the firmware's own rest (settle + window)
    cfg = life.config
    assert r.detection_delay_s <= 1800 + (cfg.crack_settle_ms + cfg.crack_window_ms) / 1000 + 60
    assert life.c.state == "FAULT" and life.bench.board.setpoint_ua == 0
    assert life.c.crack.rests >= 1


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_intact_cells_with_spreads_raise_no_fault(seed):
    r = Life(D111, ambient_c=25.0, seed=seed, spread=0.2, cycles=20).run()
    assert r.formed and r.faults == [] and r.rests == 0


def test_a_cell_losing_more_than_the_prior_is_corrected_at_its_knee_not_faulted():
    # Three times the firmware's loss: by cycle 60 the strip finds the electrode
    # empty while the estimate still holds a few µAh (the false crack).
    lossy = D111.with_overrides(plating_loss_fraction=0.015)
    life = Life(lossy, ambient_c=25.0, seed=2, cycles=61, strip_every=60)
    r = life.run()
    assert r.faults == [] and r.formed
    assert r.knees >= 1
    assert r.loss_ppm > 5000                       # learnt upwards from the knee
    assert abs(r.inventory_errors_pct[-1]) <= 2.0  # after the knee the estimate is right again
