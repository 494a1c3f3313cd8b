"""The figures a battery engineer reads (twin/plots.py, twin/display.py), checked by
reading back what was drawn: axis ranges, series, labels, units, marks.

Run: .venv/bin/python -m pytest tests/twin/test_plots.py -q
"""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from twin import plots  # noqa: E402
from twin.cycler import Cycler  # noqa: E402
from twin.display import charge_unit, current_unit  # noqa: E402
from twin.parameters import load_parameter_set  # noqa: E402
from twin.protocol import Protocol  # noqa: E402
from twin.cli import PROTOCOL_DIR  # noqa: E402
from twin.simulate import simulate, write_outputs  # noqa: E402

D111 = load_parameter_set("d111")
D111_TEXT = Protocol.from_file(PROTOCOL_DIR / "d111.txt")


def axes(fig) -> dict:
    return {ax.get_gid(): ax for ax in fig.axes if ax.get_gid()}


def labels(ax) -> set:
    return {line.get_label() for line in ax.get_lines()} | {c.get_label() for c in ax.collections}


@pytest.fixture(scope="module")
def d111_run():
    return simulate(D111, D111_TEXT, cycler=Cycler.for_cell(D111))


def synthetic(efficiencies, t_end_s=100 * 3600.0, crack_at=None, cuts=(), faults=(), scale=1.0):
    """A run of len(efficiencies) cycles after a formation; charges scaled by `scale`."""
    t = np.linspace(0.0, t_end_s, 2001)
    v = np.where(t < 3600.0, 0.1 + t / 3600.0 * 2.2, 2.35 + 0.03 * np.sin(t / 900.0))
    damage = np.zeros_like(t)
    if crack_at is not None:
        damage[t >= crack_at] = 1.0
    cycles = [{"index": k + 1, "start_s": 3600.0 + k * 1800.0, "t_s": 3600.0 + (k + 1) * 1800.0,
               "discharged_uAh": 25.0, "charged_uAh": 25.0 / e if e else 0.0, "efficiency": e,
               "plated_uAh": 200.0} for k, e in enumerate(efficiencies)]
    marks = [(ts, "fault", name) for ts, name in faults]
    return plots.RunSeries(t, v, np.full_like(t, 1e-4 * scale), np.full_like(t, 200.0 * scale),
                           np.full_like(t, 400.0 * scale), np.zeros_like(t), t * 0.01 * scale,
                           t * 0.005 * scale, damage, cycles, marks, power_cuts=cuts)


def test_efficiency_excludes_formation_and_shows_every_cycle_above_100_percent():
    ces = [1.001, 1.077, 1.02, 1.667]
    fig = plots.inventory_figure(synthetic(ces))
    ax = axes(fig)["efficiency"]
    drawn = [line for line in ax.get_lines() if line.get_label() != "100 %"][0]
    assert list(drawn.get_xdata()) == [1, 2, 3, 4]                       # cycle 1 is the first cycle
    assert list(drawn.get_ydata()) == pytest.approx([100.1, 107.7, 102.0, 166.7])
    low, high = ax.get_ylim()
    assert low < 100.0 and high > 166.7                                  # nothing clipped
    assert "100 %" in labels(ax)
    plt.close(fig)


def test_efficiency_panel_says_so_when_no_cycle_completed():
    fig = plots.inventory_figure(synthetic([]))
    ax = axes(fig)["efficiency"]
    assert ax.get_lines() == []
    assert any("no complete cycle" in text.get_text() for text in ax.texts)
    plt.close(fig)


def test_layer_damage_cracks_power_cuts_and_faults_are_marked():
    series = synthetic([1.0], crack_at=50 * 3600.0, cuts=[(10 * 3600.0, 10.5 * 3600.0)],
                       faults=[(60 * 3600.0, "CRACK_SUSPECTED")])
    for draw in (plots.voltage_figure, plots.inventory_figure):
        fig = draw(series)
        for name in ("voltage", "current") if draw is plots.voltage_figure else ("lithium", "damage"):
            ax = axes(fig)[name]
            vertical = {line.get_xdata()[0] for line in ax.get_lines() if len(set(line.get_xdata())) == 1}
            assert 50.0 in vertical and 60.0 in vertical, name
            assert any(abs(p.get_x() - 10.0) < 1e-9 for p in ax.patches), name     # the cut's span
        plt.close(fig)
    fig = plots.inventory_figure(series)
    ax = axes(fig)["damage"]
    assert {"layer damage", "layer cracked", "fault", "power cut"} <= labels(ax) | {
        t.get_text() for t in ax.get_legend().get_texts()}
    assert ax.get_ylim() == pytest.approx((-0.05, 1.05))
    plt.close(fig)


def test_units_follow_the_cell():
    assert current_unit(100e-6) == ("µA", 1e6) and charge_unit(200.0) == ("µAh", 1.0)
    assert current_unit(25e-3) == ("mA", 1e3) and charge_unit(1.0e6) == ("mAh", 1e-3)
    assert current_unit(50.0) == ("A", 1.0) and charge_unit(1.0e8) == ("Ah", 1e-6)
    fig = plots.inventory_figure(synthetic([1.0], scale=5000.0))          # a 1 Ah-class cell
    assert axes(fig)["lithium"].get_ylabel() == "lithium [mAh]"
    plt.close(fig)
    fig = plots.voltage_figure(synthetic([1.0], scale=250.0))              # 25 mA
    assert axes(fig)["current"].get_ylabel().startswith("current [mA]")
    plt.close(fig)


def test_the_zoomed_voltage_shows_the_cycling_not_the_precursor(d111_run):
    fig = plots.voltage_figure(plots.RunSeries.of_simulation(d111_run))
    ax = axes(fig)
    full_low, _ = ax["voltage"].get_ylim()
    low, high = ax["voltage_zoom"].get_ylim()
    assert full_low < 0.2                                   # the shipped cell's ~0.13 V
    assert 2.3 < low < high < 2.45 and high - low < 0.1     # the 2.35-2.41 V cycling
    channel = {line.get_ydata()[0] for line in ax["voltage"].get_lines() if "compliance" in line.get_label()}
    assert channel == {3.0, 1.5}
    assert ax["current"].get_ylabel().startswith("current [µA]")
    plt.close(fig)


def test_voltage_against_charge_per_cycle_like_the_seeds_figure_6(d111_run):
    fig = plots.cycles_figure(plots.RunSeries.of_simulation(d111_run))
    ax = axes(fig)
    formation = ax["formation"].get_lines()[0]
    assert formation.get_xdata().max() == pytest.approx(201.67, abs=0.1)   # 10 uA x 10 min + 100 uA x 2 h
    curves = ax["cycles"].get_lines()
    assert len(curves) == 2 * 20                             # a discharge and a charge per cycle
    assert all(line.get_xdata().max() == pytest.approx(25.0, abs=0.1) for line in curves)
    assert {line.get_linestyle() for line in curves} == {"-", "--"}
    strip = ax["strip"].get_lines()[0]
    assert strip.get_xdata().max() == pytest.approx(d111_run.summary["stripped_uAh"], abs=0.5)
    assert strip.get_ydata()[-1] == pytest.approx(2.0, abs=1e-3)
    assert 2.3 < ax["cycles"].get_ylim()[0] < ax["cycles"].get_ylim()[1] < 2.45
    plt.close(fig)


def test_the_compliance_stops_are_marked_on_an_open_loop_run():
    r = simulate(D111, Protocol.parse("Charge at 100 uA for 10 hours\nRest for 1 hour\n"),
                 cycler=Cycler.for_cell(D111))
    series = plots.RunSeries.of_simulation(r)
    assert [kind for _, kind, _ in series.marks] == ["compliance"]
    fig = plots.voltage_figure(series)
    lines = axes(fig)["current"].get_lines()
    assert any(line.get_label() == "compliance stop" and line.get_xdata()[0] == pytest.approx(r.steps[0]["end_s"] / 3600)
               for line in lines)
    plt.close(fig)


def test_simulate_writes_every_plot(tmp_path, d111_run):
    written = write_outputs(d111_run, tmp_path, "d111")
    names = {p.name for p in written}
    assert {"voltage.png", "inventory.png", "cycles.png", "timeseries.csv", "summary.json"} == names
    for name in ("voltage.png", "inventory.png", "cycles.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_cell_without_a_layer_shows_no_damage_curve():
    r = simulate(load_parameter_set("control_no_lipon"), Protocol.parse("Charge at 100 uA for 1 hour"),
                 cycler=Cycler.for_cell(D111))
    fig = plots.inventory_figure(plots.RunSeries.of_simulation(r))
    ax = axes(fig)["damage"]
    assert "layer damage" not in labels(ax)
    assert any("no protective layer" in text.get_text() for text in ax.texts)
    plt.close(fig)
