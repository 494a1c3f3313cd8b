"""What a closed-loop run records and reports, in-process (twin/run.py) or over
HIL (twin/hil/): one row per tick of the twin's truth beside the firmware's
view, the events, per-cycle truth, what formation did, and the summary.

Both runners feed the same objects the same frames and events in the same
order, so their results compare byte for byte (tests/hil/test_hil_formation.py).
"""
from __future__ import annotations

import math

from bmsfw.config import UAS_PER_UAH
from twin.bench import Bench
from twin.cell import UAH_PER_MOL
from twin.core import COULOMB_PER_UAH
from twin.cycles import CycleCounter

# A run whose formation has not ended (READY or FAULT) after this much twin time stops.
FORMATION_TIMEOUT_S = 48 * 3600.0

# The twin's truth (time_s .. layer_damage), the firmware's view (cell_mv .. soc_pm),
# then more truth, appended so the earlier columns keep their places: the catholyte's
# lithium (so conservation can be checked from the file: plated + catholyte + lost is
# constant) and the terminal charge counters.
TIMESERIES_COLUMNS = (
    "time_s", "state", "substate", "voltage_V", "current_A", "temperature_C", "plated_Li_uAh",
    "lithium_lost_uAh", "layer_damage", "cell_mv", "current_ua", "setpoint_ua", "inventory_uAh",
    "cvl_mv", "dvl_mv", "ccl_ua", "dcl_ua", "soc_pm",
    "catholyte_Li_uAh", "charge_in_uAh", "charge_out_uAh",
)


class RunResult:
    def __init__(self, rows, events, summary, cycles):
        self.rows = rows
        self.events = events
        self.summary = summary
        self.cycles = cycles

    def column(self, name: str) -> list:
        index = TIMESERIES_COLUMNS.index(name)
        return [row[index] for row in self.rows]


class Recorder:
    """Collects one row per tick, the events, per-cycle truth (twin.cycles) and the
    power cuts a runner reports."""

    def __init__(self, bench: Bench, record_every: int = 1):
        self.bench = bench
        self.rows: list = []
        self.events: list = []
        self.every = max(1, record_every)
        self._n = 0
        self._counter = CycleCounter()
        self.cycles = self._counter.cycles      # per discharge/charge pair: truth charges
        self.power_cuts: list = []              # [start_s, end_s] of each cut
        self.lithium_start_mol = bench.cell.lithium_total_mol
        start = bench.cell.state
        self._last_in, self._last_out, self._last_t = start.charge_in_C, start.charge_out_C, start.t_s

    def tick(self, frame: dict) -> None:
        s = self.bench.cell.state
        self._counter.add(self._last_t, s.charge_in_C - self._last_in, s.charge_out_C - self._last_out,
                          (s.li_metal_mol + s.li_alloy_mol) * UAH_PER_MOL)
        self._last_in, self._last_out, self._last_t = s.charge_in_C, s.charge_out_C, s.t_s
        self._n += 1
        if self._n % self.every:
            return
        self.rows.append((
            s.t_s, frame["state"], frame["substate"], s.voltage_V, s.current_A,
            s.temperature_K - 273.15, (s.li_metal_mol + s.li_alloy_mol) * UAH_PER_MOL,
            (s.li_dead_mol + s.li_precipitated_mol) * UAH_PER_MOL, s.layer_damage,
            frame["cell_mv"], frame["current_ua"], frame["setpoint_ua"],
            frame["inventory_uas"] / UAS_PER_UAH, frame["cvl_mv"], frame["dvl_mv"],
            frame["ccl_ua"], frame["dcl_ua"], frame["soc_pm"],
            s.li_catholyte_mol * UAH_PER_MOL, s.charge_in_C / COULOMB_PER_UAH, s.charge_out_C / COULOMB_PER_UAH))

    def power_cut(self, start_s: float, end_s: float) -> None:
        self.power_cuts.append([start_s, end_s])

    def event(self, ev: dict) -> None:
        self.events.append(dict(ev, time_s=self.bench.t_s))


class FormationWatch:
    """What a run reports about formation, from the firmware's frames and events
    and the twin's truth: when it started and ended, the lithium plated (twin)
    and counted (firmware ledger), the peak current density, record writes."""

    def __init__(self, bench: Bench):
        self.bench = bench
        self.area_cm2 = bench.parameters.values["area_cm2"]
        self.start_s = self.end_s = None
        self.plated_uAh = self.counted_uAh = self.record_writes = None
        self.max_density_uA_cm2 = 0.0

    def frame(self, frame: dict) -> None:
        if frame["state"] == "FORMING" and frame["current_ua"] > 0:
            self.max_density_uA_cm2 = max(self.max_density_uA_cm2, frame["current_ua"] / self.area_cm2)

    def event(self, ev: dict) -> None:
        if ev.get("event") == "STATE" and ev.get("to") == "FORMING" and self.start_s is None:
            self.start_s = self.bench.t_s
        elif ev.get("event") == "FORMATION_DONE":
            self.end_s = self.bench.t_s
            self.plated_uAh = self.bench.cell.plated_uAh
            self.counted_uAh = ev.get("plated_uas", 0) / UAS_PER_UAH
            self.record_writes = self.bench.board.record_writes

    def as_dict(self) -> dict:
        done = self.end_s is not None and self.start_s is not None
        return {"plated_uAh": self.plated_uAh, "counted_uAh": self.counted_uAh,
                "duration_s": self.end_s - self.start_s if done else None,
                "max_current_density_uA_cm2": self.max_density_uA_cm2,
                "record_writes": self.record_writes}


def summarize(bench: Bench, recorder: Recorder, formation: FormationWatch, final_frame: dict,
              wall_s: float, device_id: str | None, boots: int, **more) -> dict:
    """The summary.json of a closed-loop run (in-process or over HIL): `device_id`
    the firmware's, `boots` how often it started; `more` adds the runner's own keys."""
    cell, s = bench.cell, bench.cell.state
    charged = s.charge_in_C / COULOMB_PER_UAH
    returned = s.charge_out_C / COULOMB_PER_UAH
    summary = {
        "cell": bench.parameters.name,
        "device": device_id,
        "ambient_c": bench.ambient_c,
        "seed": bench.seed,
        "final_state": final_frame.get("state"),
        "final_substate": final_frame.get("substate"),
        "faults": sorted({ev["fault"] for ev in recorder.events
                          if ev.get("event") == "FAULT" and ev.get("fault")}),
        "active_faults": list(final_frame.get("faults", [])),
        "formation": formation.as_dict(),
        # what the cell has: a protective layer intact or cracked, or none at all
        "layer": ("cracked" if cell.layer_cracked else "intact") if cell.params.layer_thickness_A > 0 else "none",
        "layer_cracked": cell.layer_cracked,
        "layer_damage": cell.layer_damage,
        "charge_in_uAh": charged,
        "charge_out_uAh": returned,
        # as the seed counts it for D111: all charge returned over all charge put in
        "retained_fraction": returned / charged if charged > 0 else None,
        "lithium_lost_uAh": cell.lithium_lost_uAh,
        # relative change of the twin's total lithium over the run: round-off only
        "lithium_conservation_error": cell.lithium_change(recorder.lithium_start_mol),
        "plated_uAh_end": cell.plated_uAh,
        "final_voltage_V": cell.voltage_V,
        "record_writes": bench.board.record_writes,
        "boots": boots,
        "power_cuts_s": [list(cut) for cut in recorder.power_cuts],
        "events": len(recorder.events),
        "sim_seconds": s.t_s,
        "wall_seconds": wall_s,
        "speed_factor": s.t_s / wall_s if wall_s > 0 else math.inf,
    }
    summary.update(more)
    return summary
