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

# A run whose formation has not ended (READY or FAULT) after this much twin time stops.
FORMATION_TIMEOUT_S = 48 * 3600.0

TIMESERIES_COLUMNS = (
    "time_s", "state", "substate", "voltage_V", "current_A", "temperature_C", "plated_Li_uAh",
    "lithium_lost_uAh", "layer_damage", "cell_mv", "current_ua", "setpoint_ua", "inventory_uAh",
    "cvl_mv", "dvl_mv", "ccl_ua", "dcl_ua", "soc_pm",
)


class RunResult:
    def __init__(self, rows, events, summary, cycles):
        self.rows = rows
        self.events = events
        self.summary = summary
        self.cycles = cycles


class Recorder:
    """Collects one row per tick, the events, and per-cycle truth."""

    def __init__(self, bench: Bench, record_every: int = 1):
        self.bench = bench
        self.rows: list = []
        self.events: list = []
        self.every = max(1, record_every)
        self._n = 0
        self.cycles: list = []          # per discharge/charge pair: truth charges
        self._sign = 0
        self._q_in = self._q_out = 0.0
        self._last_in = self._last_out = 0.0

    def tick(self, frame: dict) -> None:
        s = self.bench.cell.state
        self._track_cycles(s)
        self._n += 1
        if self._n % self.every:
            return
        self.rows.append((
            s.t_s, frame["state"], frame["substate"], s.voltage_V, s.current_A,
            s.temperature_K - 273.15, (s.li_metal_mol + s.li_alloy_mol) * UAH_PER_MOL,
            (s.li_dead_mol + s.li_precipitated_mol) * UAH_PER_MOL, s.layer_damage,
            frame["cell_mv"], frame["current_ua"], frame["setpoint_ua"],
            frame["inventory_uas"] / UAS_PER_UAH, frame["cvl_mv"], frame["dvl_mv"],
            frame["ccl_ua"], frame["dcl_ua"], frame["soc_pm"]))

    def _track_cycles(self, s) -> None:
        # A cycle is a discharge followed by a charge (the seed's D111 order);
        # its coulombic efficiency is what came out over what went back in.
        d_in = s.charge_in_C - self._last_in
        d_out = s.charge_out_C - self._last_out
        self._last_in, self._last_out = s.charge_in_C, s.charge_out_C
        sign = 1 if d_in > d_out else -1 if d_out > d_in else 0
        if sign == -1 and self._sign == 1 and self._q_out > 0:
            self.cycles.append({"t_s": s.t_s, "discharged_uAh": self._q_out / COULOMB_PER_UAH,
                                "charged_uAh": self._q_in / COULOMB_PER_UAH,
                                "plated_uAh": (s.li_metal_mol + s.li_alloy_mol) * UAH_PER_MOL})
            self._q_in = self._q_out = 0.0
        if sign:
            self._sign = sign
        self._q_in += d_in
        self._q_out += d_out

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
        "layer_cracked": cell.layer_cracked,
        "layer_damage": cell.layer_damage,
        "charge_in_uAh": charged,
        "charge_out_uAh": returned,
        # as the seed counts it for D111: all charge returned over all charge put in
        "retained_fraction": returned / charged if charged > 0 else None,
        "lithium_lost_uAh": cell.lithium_lost_uAh,
        "plated_uAh_end": cell.plated_uAh,
        "final_voltage_V": cell.voltage_V,
        "record_writes": bench.board.record_writes,
        "boots": boots,
        "events": len(recorder.events),
        "sim_seconds": s.t_s,
        "wall_seconds": wall_s,
        "speed_factor": s.t_s / wall_s if wall_s > 0 else math.inf,
    }
    summary.update(more)
    return summary
