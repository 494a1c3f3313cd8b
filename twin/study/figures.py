"""The figures a study collects from each variant: names, units, types, and how
each is read off an open-loop simulation or a closed-loop firmware run.

FIGURES is the one list: the study file is checked against it, the table's
columns and their Parquet types come from it, and docs/studies.md lists it
(a test keeps the two in step).
"""
from __future__ import annotations

import math

import numpy as np

from twin.cell import KELVIN

OPEN_LOOP = "open_loop"
CLOSED_LOOP = "closed_loop"
KINDS = (OPEN_LOOP, CLOSED_LOOP)
_BOTH = KINDS


class Figure:
    """name (carries its unit), unit, dtype ("float", "int", "bool", "str"),
    the study kinds that give it, and what it is."""

    def __init__(self, name, unit, dtype, kinds, doc):
        self.name, self.unit, self.dtype, self.kinds, self.doc = name, unit, dtype, kinds, doc


FIGURES = {f.name: f for f in (
    Figure("crack_time_s", "s", "float", _BOTH,
           "time from the start at which the protective layer cracked; NaN if it held"),
    Figure("layer_cracked", "1", "bool", _BOTH, "the layer cracked during the run"),
    Figure("layer_damage", "1", "float", _BOTH, "layer damage at the end, 0 (intact) to 1 (cracked)"),
    Figure("plated_max_uAh", "uAh", "float", _BOTH,
           "most lithium on the negative electrode (metal + alloy) during the run"),
    Figure("plated_end_uAh", "uAh", "float", _BOTH, "lithium on the negative electrode at the end"),
    Figure("charge_in_uAh", "uAh", "float", _BOTH, "terminal charge put in"),
    Figure("charge_out_uAh", "uAh", "float", _BOTH, "terminal charge taken out"),
    Figure("retained_fraction", "1", "float", _BOTH,
           "charge out / charge in, as the seed counts D111; NaN when nothing went in"),
    Figure("lithium_lost_uAh", "uAh", "float", _BOTH, "lithium lost: dead and in precipitated Li2S"),
    Figure("peak_temperature_c", "degC", "float", _BOTH, "highest cell temperature"),
    Figure("final_voltage_V", "V", "float", _BOTH, "terminal voltage at the end"),
    Figure("min_voltage_V", "V", "float", (OPEN_LOOP,), "lowest sampled terminal voltage"),
    Figure("max_voltage_V", "V", "float", (OPEN_LOOP,), "highest sampled terminal voltage"),
    Figure("stripped_uAh", "uAh", "float", (OPEN_LOOP,),
           "lithium taken out after the last charge (discharge that oxidised the copper not counted)"),
    Figure("final_state", "", "str", (CLOSED_LOOP,), "the firmware's state at the end (READY, FAULT, ...)"),
    Figure("faults", "", "str", (CLOSED_LOOP,),
           "faults the firmware raised during the run, sorted, comma-separated; empty if none"),
    Figure("formation_time_s", "s", "float", (CLOSED_LOOP,),
           "from entering FORMING to FORMATION_DONE; NaN if formation did not finish"),
    Figure("formation_plated_uAh", "uAh", "float", (CLOSED_LOOP,),
           "lithium the twin holds plated when formation ends"),
    Figure("formation_counted_uAh", "uAh", "float", (CLOSED_LOOP,),
           "lithium the firmware's ledger counted when formation ends"),
    Figure("formation_peak_density_uA_cm2", "uA/cm2", "float", (CLOSED_LOOP,),
           "highest formation current density the firmware measured, over the cell's own area"),
    Figure("record_writes", "1", "int", (CLOSED_LOOP,), "persistent-record writes over the run"),
)}


def figures_of(kind: str) -> list:
    return [name for name, f in FIGURES.items() if kind in f.kinds]


def _crack_time_s(t_s: np.ndarray, damage: np.ndarray) -> float:
    """When damage reached 1, between samples: damage grows linearly in time at
    a held current, so the last two samples before the crack give its slope."""
    cracked = np.flatnonzero(damage >= 1.0)
    if not len(cracked):
        return math.nan
    k = int(cracked[0])
    if k >= 2 and t_s[k - 1] > t_s[k - 2] and damage[k - 1] > damage[k - 2]:
        slope = (damage[k - 1] - damage[k - 2]) / (t_s[k - 1] - t_s[k - 2])
        return float(min(t_s[k], t_s[k - 1] + (1.0 - damage[k - 1]) / slope))
    return float(t_s[k])


def _number(value) -> float:
    return math.nan if value is None else float(value)


def open_loop_figures(result) -> dict:
    """Every open-loop figure of a twin.simulate.SimulationResult."""
    s = result.summary
    t_s = result.column("time_s")
    return {
        "crack_time_s": _crack_time_s(t_s, result.column("layer_damage")),
        "layer_cracked": bool(s["layer_cracked"]),
        "layer_damage": float(s["layer_damage"]),
        "plated_max_uAh": float(s["plated_uAh_max"]),
        "plated_end_uAh": float(result.column("plated_Li_uAh")[-1]),
        "charge_in_uAh": float(s["charge_in_uAh"]),
        "charge_out_uAh": float(s["charge_out_uAh"]),
        "retained_fraction": _number(s["retained_fraction"]),
        "lithium_lost_uAh": float(s["lithium_lost_uAh"]),
        "peak_temperature_c": float(result.column("temperature_C").max()),
        "final_voltage_V": float(s["final_voltage_V"]),
        "min_voltage_V": float(result.column("voltage_V").min()),
        "max_voltage_V": float(result.column("voltage_V").max()),
        "stripped_uAh": float(s["stripped_uAh"]),
    }


class TickWatch:
    """on_tick hook of a closed-loop run: what the summary does not keep."""

    def __init__(self):
        self.crack_time_s = math.nan
        self.peak_temperature_K = -math.inf
        self.plated_max_uAh = 0.0

    def __call__(self, bench) -> None:
        cell = bench.cell
        self.peak_temperature_K = max(self.peak_temperature_K, cell.state.temperature_K)
        self.plated_max_uAh = max(self.plated_max_uAh, cell.plated_uAh)
        if math.isnan(self.crack_time_s) and cell.layer_cracked:
            self.crack_time_s = cell.t_s


def closed_loop_figures(summary: dict, watch: TickWatch) -> dict:
    """Every closed-loop figure of a twin.run.run_closed_loop summary."""
    formation = summary["formation"]
    return {
        "crack_time_s": watch.crack_time_s,
        "layer_cracked": bool(summary["layer_cracked"]),
        "layer_damage": float(summary["layer_damage"]),
        "plated_max_uAh": watch.plated_max_uAh,
        "plated_end_uAh": float(summary["plated_uAh_end"]),
        "charge_in_uAh": float(summary["charge_in_uAh"]),
        "charge_out_uAh": float(summary["charge_out_uAh"]),
        "retained_fraction": _number(summary["retained_fraction"]),
        "lithium_lost_uAh": float(summary["lithium_lost_uAh"]),
        "peak_temperature_c": watch.peak_temperature_K - KELVIN,
        "final_voltage_V": float(summary["final_voltage_V"]),
        "final_state": str(summary["final_state"]),
        "faults": ",".join(summary["faults"]),
        "formation_time_s": _number(formation["duration_s"]),
        "formation_plated_uAh": _number(formation["plated_uAh"]),
        "formation_counted_uAh": _number(formation["counted_uAh"]),
        "formation_peak_density_uA_cm2": float(formation["max_current_density_uA_cm2"]),
        "record_writes": int(summary["record_writes"]),
    }
