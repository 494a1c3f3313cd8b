"""A closed-loop run's figures and conservation (twin/recorder.py, twin/run_files.py,
twin/plots.py): the firmware forms d111 and cycles it, with a power cut; the time
series carries the catholyte's lithium and the charge counters, the summary the
conservation figure and the cuts, and the plots show cycles without the formation,
the cut and the firmware's limits.

Run: .venv/bin/python -m pytest tests/integration/test_run_figures.py -q
"""
import csv
import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from twin import plots  # noqa: E402
from twin.parameters import load_parameter_set  # noqa: E402
from twin.protocol import Protocol  # noqa: E402
from twin.recorder import TIMESERIES_COLUMNS  # noqa: E402
from twin.run import run_closed_loop  # noqa: E402
from twin.run_files import write_run_outputs  # noqa: E402

DUTY = "Repeat 4 times:\n    Discharge at 100 uA for 15 minutes\n    Charge at 100 uA for 15 minutes\n"


@pytest.fixture(scope="module")
def result():
    return run_closed_loop(load_parameter_set("d111"), Protocol.parse(DUTY), power_cuts_s=[3 * 3600.0])


def test_lithium_is_conserved_closed_loop_and_the_file_shows_it(result, tmp_path):
    assert result.summary["lithium_conservation_error"] < 1e-9
    assert result.summary["power_cuts_s"] == [[3 * 3600.0, pytest.approx(3 * 3600.0 + 60.0)]]
    write_run_outputs(result, tmp_path, "d111")
    with open(tmp_path / "timeseries.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(TIMESERIES_COLUMNS)
    totals = [float(r["plated_Li_uAh"]) + float(r["catholyte_Li_uAh"]) + float(r["lithium_lost_uAh"]) for r in rows]
    assert max(totals) - min(totals) < 0.01                  # µAh, at the CSV's 6 digits
    assert float(rows[-1]["charge_in_uAh"]) == pytest.approx(result.summary["charge_in_uAh"], rel=1e-5)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cycles"][0]["index"] == 1
    for name in ("voltage.png", "inventory.png", "cycles.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_cycles_leave_the_formation_out(result):
    assert len(result.cycles) >= 3
    first = result.cycles[0]
    assert first["charged_uAh"] < 50.0                       # not the ~200 µAh formation
    assert all(c["efficiency"] is None or c["efficiency"] > 0.9 for c in result.cycles)


def test_the_run_figures_show_cycles_cut_and_limits(result):
    series = plots.RunSeries.of_run(result)
    fig = plots.inventory_figure(series)
    ax = {a.get_gid(): a for a in fig.axes if a.get_gid()}
    ce = [line for line in ax["efficiency"].get_lines() if line.get_label() != "100 %"][0]
    values = list(ce.get_ydata())
    low, high = ax["efficiency"].get_ylim()
    assert low <= min(values) and high >= max(values)
    assert any(abs(p.get_x() - 3.0) < 1e-9 for p in ax["lithium"].patches)     # the power cut
    assert "inventory (firmware ledger)" in {line.get_label() for line in ax["lithium"].get_lines()}
    plt.close(fig)
    fig = plots.voltage_figure(series)
    ax = {a.get_gid(): a for a in fig.axes if a.get_gid()}
    assert {"CVL (firmware)", "DVL (firmware)"} <= {line.get_label() for line in ax["voltage"].get_lines()}
    low, high = ax["voltage_zoom"].get_ylim()
    assert 2.2 < low < high < 2.5
    plt.close(fig)
