"""Open-loop simulation: a protocol run straight on the twin, no firmware.

Model (c_core), parameters (twin/parameters) and protocol (twin/protocol) meet
here, as in PyBaMM's Simulation. Each protocol step is one C segment; Python
only collects samples between segments.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from twin.cell import KELVIN, UAH_PER_MOL, Cell
from twin.core import COULOMB_PER_UAH
from twin.protocol import Protocol

CSV_COLUMNS = ("time_s", "step", "voltage_V", "current_A", "temperature_C", "plated_Li_uAh",
               "metal_Li_uAh", "catholyte_Li_uAh", "lithium_lost_uAh", "layer_damage")


class SimulationResult:
    """Samples (one row per sample, CSV_COLUMNS) and the summary of a run."""

    def __init__(self, table: np.ndarray, summary: dict, steps: list):
        self.table = table
        self.summary = summary
        self.steps = steps

    def column(self, name: str) -> np.ndarray:
        return self.table[:, CSV_COLUMNS.index(name)]


def _rows(cell: Cell, samples: np.ndarray, step_index: int) -> np.ndarray:
    rows = np.empty((len(samples), len(CSV_COLUMNS)))
    rows[:, 0] = samples["t_s"]
    rows[:, 1] = step_index
    rows[:, 2] = samples["voltage_V"]
    rows[:, 3] = samples["current_A"]
    rows[:, 4] = samples["temperature_K"] - KELVIN
    rows[:, 5] = (samples["li_metal_mol"] + samples["li_alloy_mol"]) * UAH_PER_MOL
    rows[:, 6] = samples["li_metal_mol"] * UAH_PER_MOL
    rows[:, 7] = samples["li_catholyte_mol"] * UAH_PER_MOL
    rows[:, 8] = samples["li_lost_mol"] * UAH_PER_MOL
    rows[:, 9] = samples["layer_damage"]
    return rows


def _initial_row(cell: Cell) -> np.ndarray:
    s = cell.state
    return np.array([[s.t_s, -1, s.voltage_V, s.current_A, s.temperature_K - KELVIN,
                      cell.plated_uAh, cell.metal_uAh, s.li_catholyte_mol * UAH_PER_MOL,
                      cell.lithium_lost_uAh, s.layer_damage]])


def simulate(parameters, protocol: Protocol, ambient_c: float = 25.0, seed: int = 0,
             sample_interval_s: float = 10.0, progress=None) -> SimulationResult:
    """Run `protocol` on a new shipped cell. The open-loop model is deterministic;
    `seed` is recorded so runs compare with closed-loop ones (where it seeds noise).
    `progress`, if given, is called with each finished step."""
    cell = Cell(parameters, ambient_c=ambient_c)
    steps = protocol.steps()
    total_li_start = cell.lithium_total_mol
    chunks = [_initial_row(cell)]
    step_reports = []
    plated_max = cell.plated_uAh
    stripped_C = 0.0
    wall = 0.0
    for index, step in enumerate(steps):
        t0 = time.perf_counter()
        result, samples = cell.run_segment(step.segment_fields(), sample_interval_s=sample_interval_s)
        wall += time.perf_counter() - t0
        chunks.append(_rows(cell, samples, index))
        if len(samples):
            plated_max = max(plated_max, float(chunks[-1][:, 5].max()))
        plated_max = max(plated_max, cell.plated_uAh)
        if result["charge_C"] > 0:
            stripped_C = 0.0    # only discharge after the last charge counts
        elif result["charge_C"] < 0:
            stripped_C += -result["charge_C"]
        step_reports.append({"index": index, "line": step.line_no, "text": step.text,
                             "stop_reason": result["stop_reason"], "elapsed_s": result["elapsed_s"],
                             "charge_uAh": result["charge_C"] / COULOMB_PER_UAH,
                             "end_voltage_V": cell.voltage_V})
        if progress:
            progress(step)
    table = np.concatenate(chunks)
    s = cell.state
    charged_uAh = s.charge_in_C / COULOMB_PER_UAH
    returned_uAh = s.charge_out_C / COULOMB_PER_UAH
    summary = {
        "cell": getattr(parameters, "name", "custom"),
        "protocol": protocol.name if getattr(protocol, "name", None) else None,
        "ambient_c": ambient_c,
        "seed": seed,
        "plated_uAh_max": plated_max,
        "stripped_uAh": stripped_C / COULOMB_PER_UAH,
        "charge_in_uAh": charged_uAh,
        "charge_out_uAh": returned_uAh,
        "retained_fraction": returned_uAh / charged_uAh if charged_uAh > 0 else None,
        "lithium_lost_uAh": cell.lithium_lost_uAh,
        "lithium_conservation_error": abs(cell.lithium_total_mol - total_li_start) / total_li_start,
        "layer_cracked": cell.layer_cracked,
        "layer_damage": cell.layer_damage,
        "final_voltage_V": cell.voltage_V,
        "final_li_to_s": cell.li_to_s,
        "sim_seconds": s.t_s,
        "wall_seconds": wall,
        "n_steps": len(steps),
    }
    return SimulationResult(table, summary, step_reports)


def write_outputs(result: SimulationResult, out_dir: Path, title: str = "") -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    header = ",".join(CSV_COLUMNS)
    fmt = ["%.3f", "%d", "%.6f", "%.9e", "%.4f", "%.6f", "%.6f", "%.6f", "%.6f", "%.6f"]
    np.savetxt(out_dir / "timeseries.csv", result.table, delimiter=",", header=header,
               comments="", fmt=fmt)
    summary = dict(result.summary, steps=result.steps)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_voltage(result, out_dir / "voltage.png", title)


def plot_voltage(result: SimulationResult, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_h = result.column("time_s") / 3600.0
    fig, (ax_v, ax_i) = plt.subplots(2, 1, sharex=True, figsize=(9, 5.5),
                                     gridspec_kw={"height_ratios": [2, 1]})
    ax_v.plot(t_h, result.column("voltage_V"), lw=0.8, color="tab:blue")
    ax_v.set_ylabel("cell voltage [V]")
    ax_v.grid(alpha=0.3)
    ax_i.plot(t_h, result.column("current_A") * 1e6, lw=0.8, color="tab:red")
    ax_i.set_ylabel("current [µA]\n(+ charge)")
    ax_i.set_xlabel("time [h]")
    ax_i.grid(alpha=0.3)
    ax_v.set_title(title or "bms-twin open-loop simulation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
