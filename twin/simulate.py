"""Open-loop simulation: a protocol run straight on the twin, no firmware.

Model (c_core), parameters (twin/parameters), protocol (twin/protocol) and the cycler
channel it runs on (twin/cycler.py) meet here, as in PyBaMM's Simulation. Each step
is one C segment, streamed from the protocol (never expanded up front), with the
channel's compliance, safety limits and hold current limit on it; Python only
collects samples between segments.

How a run ends: every step played (complete); or a safety limit met, the bound on
simulated time (twin.protocol.MAX_SIMULATED_S) or on rows reached, or the model
failing -- then the result says so (summary "complete": false, "why") with what was
simulated up to there, and nothing is raised. Without a cycler (cycler=None) the
source is ideal: no compliance, no safety, no hold limit, as design studies and the
seed calibration use it.

Stripped charge counts lithium only: a discharge past the cell's lithium oxidises
the copper current collector, which the terminal sees as charge but moves no lithium
(summary "copper_oxidised_uAh").
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from bmsfw.errors import FieldError
from twin.cell import KELVIN, UAH_PER_MOL, Cell
from twin.core import COULOMB_PER_UAH, FARADAY_C_MOL, TwinError
from twin.cycles import CycleCounter
from twin.protocol import MAX_SIMULATED_S, Protocol

CSV_COLUMNS = ("time_s", "step", "voltage_V", "current_A", "temperature_C", "plated_Li_uAh",
               "metal_Li_uAh", "catholyte_Li_uAh", "lithium_lost_uAh", "charge_in_uAh", "charge_out_uAh",
               "layer_damage")
_CSV_FORMATS = ["%.3f", "%d", "%.6f", "%.9e", "%.4f", "%.6f", "%.6f", "%.6f", "%.6f", "%.6f", "%.6f", "%.6f"]

# The most rows a run keeps (~200 MB in memory, as much again as CSV): 231 days at the
# default 10 s sample interval.
MAX_ROWS = 2_000_000

# Stop reasons that end the run, not just the step.
SAFETY_STOPS = ("safety_voltage", "safety_temperature")


class SimulationError(FieldError):
    """An argument of simulate() it cannot run with."""


class SimulationResult:
    """Samples (one row per sample, CSV_COLUMNS), the summary, the step reports and
    the cycles (twin.cycles) of a run."""

    def __init__(self, table: np.ndarray, summary: dict, steps: list, cycles: list | None = None):
        self.table = table
        self.summary = summary
        self.steps = steps
        self.cycles = cycles or []

    def column(self, name: str) -> np.ndarray:
        return self.table[:, CSV_COLUMNS.index(name)]


def _rows(samples: np.ndarray, step_index: int) -> np.ndarray:
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
    rows[:, 9] = samples["charge_in_C"] / COULOMB_PER_UAH
    rows[:, 10] = samples["charge_out_C"] / COULOMB_PER_UAH
    rows[:, 11] = samples["layer_damage"]
    return rows


def _initial_row(cell: Cell) -> np.ndarray:
    s = cell.state
    return np.array([[s.t_s, -1, s.voltage_V, s.current_A, s.temperature_K - KELVIN,
                      cell.plated_uAh, cell.metal_uAh, s.li_catholyte_mol * UAH_PER_MOL,
                      cell.lithium_lost_uAh, s.charge_in_C / COULOMB_PER_UAH,
                      s.charge_out_C / COULOMB_PER_UAH, s.layer_damage]])


def check_sample_interval(sample_interval_s) -> float:
    if isinstance(sample_interval_s, bool) or not isinstance(sample_interval_s, (int, float)) \
            or not math.isfinite(sample_interval_s) or sample_interval_s <= 0:
        raise SimulationError("sample_interval_s", sample_interval_s, "a finite number of seconds > 0 expected")
    return float(sample_interval_s)


def check_rows(protocol: Protocol, sample_interval_s: float, max_rows: int = MAX_ROWS,
               field: str = "sample_interval_s") -> None:
    """SimulationError when the protocol's fixed steps alone need more rows than
    max_rows at this interval (`field` names the input in the message)."""
    least_rows = protocol.fixed_duration_s / sample_interval_s
    if least_rows > max_rows:
        raise SimulationError(field, sample_interval_s,
                              "the protocol's fixed steps alone take %.4g h, %.3g rows at this interval, "
                              "above the bound of %d rows; an interval of at least %.3g s expected"
                              % (protocol.fixed_duration_s / 3600, least_rows, max_rows,
                                 protocol.fixed_duration_s / max_rows))


def simulate(parameters, protocol: Protocol, ambient_c: float = 25.0, seed: int = 0,
             sample_interval_s: float = 10.0, progress=None, cycler=None,
             max_rows: int = MAX_ROWS) -> SimulationResult:
    """Run `protocol` on a new shipped cell, on `cycler`'s channel (None: an ideal
    source). The open-loop model is deterministic; `seed` is recorded so runs compare
    with closed-loop ones (where it seeds noise). `progress`, if given, is called with
    each finished step. Bad arguments raise (SimulationError, CyclerError) before
    anything runs; how the run ended is in the summary's "complete" and "why"."""
    interval = check_sample_interval(sample_interval_s)
    if cycler is not None:
        cycler.check_ambient(ambient_c)
        cycler.check_protocol(protocol)
    check_rows(protocol, interval, max_rows)
    run = _OpenLoop(Cell(parameters, ambient_c=ambient_c), cycler, interval, max_rows)
    for index, step in enumerate(protocol):
        if not run.play(index, step):
            break
        if progress:
            progress(step)
    summary = dict(cell=getattr(parameters, "name", "custom"),
                   protocol=protocol.name if getattr(protocol, "name", None) else None,
                   ambient_c=ambient_c, seed=seed, n_steps_planned=len(protocol))
    summary.update(run.summary(parameters))
    return SimulationResult(np.concatenate(run.chunks), summary, run.steps, run.cycles.cycles)


class _OpenLoop:
    """One run's state between segments: the rows, the step reports, the cycles,
    what was stripped, and why it ended."""

    def __init__(self, cell: Cell, cycler, interval_s: float, max_rows: int):
        self.cell = cell
        self.cycler = cycler
        self.interval_s = interval_s
        self.max_rows = max_rows
        self.chunks = [_initial_row(cell)]
        self.n_rows = 1
        self.steps: list = []
        self.cycles = CycleCounter()
        self.lithium_start_mol = cell.lithium_total_mol
        self.plated_max_uAh = cell.plated_uAh
        self.stripped_mol = 0.0          # lithium stripped since the last charge
        self.copper_C = 0.0              # discharge that moved no lithium
        self.stop_counts: dict = {}
        self.why = None
        self.wall_s = 0.0

    def play(self, index: int, step) -> bool:
        """Run one step; False when the run ends with it (why says so)."""
        cell, s = self.cell, self.cell.state
        left_s = MAX_SIMULATED_S - s.t_s
        if left_s <= 0:
            self.why = ("reached the bound of %g h of simulated time before line %s (%r)"
                        % (MAX_SIMULATED_S / 3600, step.line_no, str(step)))
            return False
        fields = step.segment_fields()
        if self.cycler is not None:
            fields.update(self.cycler.segment_fields(step))
        bounded = fields["duration_s"] > left_s
        if bounded:
            fields["duration_s"] = left_s
        negative_mol = s.li_metal_mol + s.li_alloy_mol
        corroded_C, t_start = s.li_corroded_C, s.t_s
        t0 = time.perf_counter()
        try:
            result, samples = cell.run_segment(fields, sample_interval_s=self.interval_s,
                                               sample_budget=max(self.max_rows - self.n_rows, 1))
        except TwinError as error:
            self.wall_s += time.perf_counter() - t0
            self.why = ("the cell model failed at line %s (%r) at %.4g h: %s"
                        % (step.line_no, str(step), t_start / 3600, error))
            return False
        self.wall_s += time.perf_counter() - t0
        if len(samples):
            rows = _rows(samples, index)
            self.chunks.append(rows)
            self.n_rows += len(rows)
            self.plated_max_uAh = max(self.plated_max_uAh, float(rows[:, 5].max()))
        self.plated_max_uAh = max(self.plated_max_uAh, cell.plated_uAh)
        charge_C = result["charge_C"]
        stripped_mol = 0.0
        if charge_C > 0:
            self.stripped_mol = 0.0      # only discharge after the last charge counts
        elif charge_C < 0:
            # lithium that left the negative through the terminal: what the metal and
            # alloy lost, less what corrosion took, at most the terminal charge
            lost_mol = negative_mol - (s.li_metal_mol + s.li_alloy_mol)
            corroded_mol = (s.li_corroded_C - corroded_C) / FARADAY_C_MOL
            stripped_mol = min(max(lost_mol - corroded_mol, 0.0), -charge_C / FARADAY_C_MOL)
            self.stripped_mol += stripped_mol
            self.copper_C += -charge_C - stripped_mol * FARADAY_C_MOL
        self.cycles.add(t_start, max(charge_C, 0.0), max(-charge_C, 0.0), negative_mol * UAH_PER_MOL)
        reason = result["stop_reason"]
        self.stop_counts[reason] = self.stop_counts.get(reason, 0) + 1
        self.steps.append({"index": index, "line": step.line_no, "text": str(step), "kind": step.kind,
                           "stop_reason": reason, "elapsed_s": result["elapsed_s"],
                           "charge_uAh": charge_C / COULOMB_PER_UAH,
                           "lithium_stripped_uAh": stripped_mol * UAH_PER_MOL,
                           "end_s": s.t_s, "end_voltage_V": cell.voltage_V, "end_temperature_C": cell.temperature_c})
        where = "line %s (%r) at %.4g h" % (step.line_no, str(step), s.t_s / 3600)
        if reason in SAFETY_STOPS:
            self.why = "safety limit: %s, %s" % (self._safety_text(reason, step, result["elapsed_s"]), where)
            return False
        if reason == "buffer_full":
            self.why = ("the time series reached the bound of %d rows, %s; a larger sample interval "
                        "keeps a longer run" % (self.max_rows, where))
            return False
        if bounded and reason == "time":
            self.why = "reached the bound of %g h of simulated time, %s" % (MAX_SIMULATED_S / 3600, where)
            return False
        return True

    def _safety_text(self, reason: str, step, elapsed_s: float) -> str:
        c, cell = self.cycler, self.cell
        if reason == "safety_temperature":
            return "cell temperature %.2f °C reached the channel's %g °C" % (
                cell.temperature_c, c["safety_max_temperature_C"])
        volts = cell.voltage_V
        if elapsed_s == 0.0 and step.kind in ("charge", "discharge") \
                and c["safety_min_V"] < volts < c["safety_max_V"]:
            # stopped at once: the jump to the step's current would leave the window
            volts = cell.voltage_at(step.current_A)
            bound = "safety_max_V" if volts >= c["safety_max_V"] else "safety_min_V"
            return "at %g A the terminal would show %.4f V, past the channel's %s of %g V" % (
                step.current_A, volts, bound, c[bound])
        bound = "safety_max_V" if volts >= c["safety_max_V"] else "safety_min_V"
        return "terminal voltage %.4f V reached the channel's %s of %g V" % (volts, bound, c[bound])

    def summary(self, parameters) -> dict:
        cell, s = self.cell, self.cell.state
        charged_uAh = s.charge_in_C / COULOMB_PER_UAH
        returned_uAh = s.charge_out_C / COULOMB_PER_UAH
        table = np.concatenate(self.chunks)
        has_layer = cell.params.layer_thickness_A > 0
        return {
            "complete": self.why is None,
            "why": self.why,
            "cycler": self.cycler.as_dict() if self.cycler is not None else None,
            # what the cell has: a protective layer intact or cracked, or none at all
            "layer": ("cracked" if cell.layer_cracked else "intact") if has_layer else "none",
            "plated_uAh_max": self.plated_max_uAh,
            "stripped_uAh": self.stripped_mol * UAH_PER_MOL,
            "copper_oxidised_uAh": self.copper_C / COULOMB_PER_UAH,
            "charge_in_uAh": charged_uAh,
            "charge_out_uAh": returned_uAh,
            "retained_fraction": returned_uAh / charged_uAh if charged_uAh > 0 else None,
            "formation_uAh": self.cycles.formation_uAh,
            "lithium_lost_uAh": cell.lithium_lost_uAh,
            "lithium_conservation_error": cell.lithium_change(self.lithium_start_mol),
            "layer_cracked": cell.layer_cracked,
            "layer_damage": cell.layer_damage,
            "final_voltage_V": cell.voltage_V,
            "final_li_to_s": cell.li_to_s,
            "min_voltage_V": float(table[:, 2].min()),
            "max_voltage_V": float(table[:, 2].max()),
            "peak_temperature_C": float(table[:, 4].max()),
            "stop_reasons": dict(sorted(self.stop_counts.items())),
            "sim_seconds": s.t_s,
            "wall_seconds": self.wall_s,
            "n_steps": len(self.steps),
            "n_rows": len(table),
        }


def write_outputs(result: SimulationResult, out_dir: Path, title: str = "") -> list:
    """timeseries.csv, summary.json (with the steps and cycles) and the plots
    (twin.plots: voltage.png, inventory.png, cycles.png); returns the paths."""
    from twin import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savetxt(out_dir / "timeseries.csv", result.table, delimiter=",", header=",".join(CSV_COLUMNS),
               comments="", fmt=_CSV_FORMATS)
    summary = dict(result.summary, steps=result.steps, cycles=result.cycles)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    written = [out_dir / "timeseries.csv", out_dir / "summary.json"]
    return written + plots.write_all(plots.RunSeries.of_simulation(result), out_dir,
                                     title or "bms-twin open-loop simulation")
