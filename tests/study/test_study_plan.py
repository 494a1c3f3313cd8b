"""Grids, spreads and the variant plan: draws made up front from the seed, stable
when a study grows, and keys that change exactly when a variant's result could.
Run: .venv/bin/python -m pytest tests/study/test_study_plan.py -q
"""
import numpy as np
import pytest

from twin.study import load_study
from twin.study.plan import Plan
from twin.study.variables import TRUNCATE_SD, Variable

LOT = """
[study]
kind = "open_loop"
draws = {draws}
seed = {seed}
[protocol]
text = "Charge at {{density}} for 10 minutes"
[vary.ambient_c]
unit = "degC"
values = [0, 25]
[vary.protocol.density]
unit = "uA/cm2"
values = [50, 100, 200]
[vary.cell.layer_thickness_A]
unit = "angstrom"
normal = {{ rel_sd = 0.1 }}
[vary.cell.area_cm2]
unit = "cm2"
uniform = {{ spread = 0.2 }}
"""


def plan_of(tmp_path, draws=4, seed=7, text=LOT, name="lot.toml"):
    path = tmp_path / name
    path.write_text(text.format(draws=draws, seed=seed))
    return Plan(load_study(path))


def test_grids_are_crossed_first_slowest_and_the_same_lot_meets_every_point(tmp_path):
    plan = plan_of(tmp_path)
    assert plan.n == 2 * 3 * 4
    assert plan.columns["ambient_c"].tolist() == [0.0] * 12 + [25.0] * 12
    assert plan.columns["protocol.density"][:12].tolist() == [50.0] * 4 + [100.0] * 4 + [200.0] * 4
    thickness = plan.columns["cell.layer_thickness_A"].reshape(6, 4)
    assert (thickness == thickness[0]).all()          # draw d is one cell, at every grid point
    assert len(set(thickness[0])) == 4
    assert plan.columns["point"].tolist() == [i // 4 for i in range(24)]
    assert plan.columns["draw"].tolist() == [i % 4 for i in range(24)]
    assert len(set(plan.keys)) == plan.n


def test_spreads_stay_inside_their_bounds_around_the_base(tmp_path):
    plan = plan_of(tmp_path, draws=2000)
    thickness = plan.columns["cell.layer_thickness_A"][:2000]
    area = plan.columns["cell.area_cm2"][:2000]
    assert thickness.min() >= 1500 * (1 - TRUNCATE_SD * 0.1) and thickness.max() <= 1500 * (1 + TRUNCATE_SD * 0.1)
    assert thickness.mean() == pytest.approx(1500, rel=0.01)
    assert thickness.std() == pytest.approx(150, rel=0.1)
    assert area.min() >= 0.8 and area.max() <= 1.2 and area.mean() == pytest.approx(1.0, abs=0.01)


def test_the_same_seed_gives_the_same_plan_and_another_seed_another_lot(tmp_path):
    a, b = plan_of(tmp_path, name="a.toml"), plan_of(tmp_path, name="b.toml")
    assert a.keys == b.keys
    assert (a.columns["cell.area_cm2"] == b.columns["cell.area_cm2"]).all()
    c = plan_of(tmp_path, seed=8, name="c.toml")
    assert not set(c.keys) & set(a.keys)


def test_more_draws_keep_every_earlier_draw_so_a_rerun_reuses_them(tmp_path):
    small, large = plan_of(tmp_path, draws=4, name="s.toml"), plan_of(tmp_path, draws=9, name="l.toml")
    assert set(small.keys) < set(large.keys)
    assert large.columns["cell.area_cm2"][:4].tolist() == small.columns["cell.area_cm2"][:4].tolist()


def test_keys_follow_what_decides_a_result_not_the_order_of_the_file(tmp_path):
    base = plan_of(tmp_path, name="base.toml")
    reordered = LOT.replace('[vary.ambient_c]\nunit = "degC"\nvalues = [0, 25]\n', "") + \
        '[vary.ambient_c]\nunit = "degC"\nvalues = [0, 25]\n'
    assert set(plan_of(tmp_path, text=reordered, name="r.toml").keys) == set(base.keys)
    longer = LOT.replace("for 10 minutes", "for 11 minutes")
    assert not set(plan_of(tmp_path, text=longer, name="p.toml").keys) & set(base.keys)
    other_cell = LOT.replace('kind = "open_loop"', 'kind = "open_loop"\ncell = "no_wetting_layer"')
    assert not set(plan_of(tmp_path, text=other_cell, name="c.toml").keys) & set(base.keys)


def test_a_closed_loop_lot_gives_each_cell_its_own_board_seed(tmp_path):
    text = ("[study]\nkind = 'closed_loop'\ndraws = 5\n[vary.ambient_c]\nunit = 'degC'\nvalues = [10, 30]\n"
            "[vary.config.formation_ua_cm2]\nunit = 'uA/cm2'\nuniform = { low = 40, high = 60.4 }\n")
    path = tmp_path / "cl.toml"
    path.write_text(text)
    plan = Plan(load_study(path))
    seeds = plan.columns["seed"]
    assert len(set(seeds[:5])) == 5 and seeds[:5].tolist() == seeds[5:].tolist()
    density = plan.columns["config.formation_ua_cm2"]
    assert density.dtype == np.int64 and 40 <= density.min() and density.max() <= 60
    assert isinstance(plan.inputs(0)["config.formation_ua_cm2"], int)


def test_grid_forms_and_integer_rounding():
    assert Variable("x", "1", "linspace", {"start": 0, "stop": 1, "num": 5}).grid.tolist() == \
        [0.0, 0.25, 0.5, 0.75, 1.0]
    assert Variable("x", "1", "logspace", {"start": 1, "stop": 100, "num": 3}).grid.tolist() == \
        pytest.approx([1.0, 10.0, 100.0])
    assert Variable("x", "1", "linspace", {"start": 1, "stop": 2, "num": 5}, integer=True).grid.tolist() == \
        [1.0, 2.0]
    spread = Variable("x", "1", "lognormal", {"sigma": 0.5}, base=2e-6)
    low, high = spread.extremes()
    values = spread.draw(500, seed=1)
    assert low <= values.min() and values.max() <= high
    assert np.median(values) == pytest.approx(2e-6, rel=0.15)
