"""Closed loop: the firmware controller runs a shipped cell on the twin board.

The firmware sees only the HAL (twin/board.py); this module is the bench around
it: it powers the board, lets simulated time pass one tick at a time, plays the
duty cycle as *requests* the firmware may limit (as an inverter or cycler asks a
BMS), cuts power when told to, and records what happened, both as the firmware
reported it (frames) and as the twin knows it (truth).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

from bmsfw.config import UAS_PER_UAH, Config
from bmsfw.controller import Controller
from twin.board import TwinBoard
from twin.cell import UAH_PER_MOL, Cell
from twin.core import COULOMB_PER_UAH
from twin.parameters import load_board
from twin.protocol import Protocol

DUTY_D111 = Path(__file__).resolve().parent / "protocols" / "d111_duty.txt"

# A duty step ends early when the firmware grants less than this fraction of
# the request for LIMITED_FOR_S: the BMS, not the schedule, ended it.
LIMITED_FRACTION = 0.01
LIMITED_FOR_S = 60.0
FORMATION_TIMEOUT_S = 48 * 3600.0

TIMESERIES_COLUMNS = (
    "time_s", "state", "substate", "voltage_V", "current_A", "temperature_C", "plated_Li_uAh",
    "lithium_lost_uAh", "layer_damage", "cell_mv", "current_ua", "setpoint_ua", "inventory_uAh",
    "cvl_mv", "dvl_mv", "ccl_ua", "dcl_ua", "soc_pm",
)


def config_for(parameters, **overrides) -> Config:
    """The controller's configuration for a cell design: the parameter set's
    [design] table, as the firmware on a board would carry it."""
    values, design = parameters.values, parameters.design
    area_cm2 = values["area_cm2"]
    target_uah = int(round(design["target_inventory_uAh"]))
    supply_mol = values["lithium_mol_L"] * values["catholyte_volume_uL"] * 1e-6
    settings = dict(
        area_mm2=int(round(area_cm2 * 100)),
        target_inventory_uah=target_uah,
        lithium_supply_uah=int(supply_mol * UAH_PER_MOL),
        lithium_reserve_uah=int(round(design["lithium_reserve_uAh"])),
        nucleation_ua_cm2=int(round(design["nucleation_current_density_uA_cm2"])),
        nucleation_uas=int(round(design["nucleation_charge_uAh_cm2"] * area_cm2 * UAS_PER_UAH)),
        formation_ua_cm2=int(round(design["formation_current_density_uA_cm2"])),
        discharge_cutoff_mv=int(round(design["discharge_cutoff_V"] * 1000)),
        charge_cutoff_mv=int(round(design["charge_cutoff_V"] * 1000)),
        has_wetting_layer=values["wetting_capacity_uAh_cm2"] > 0,
        # the firmware default is 0.1 % of target: a power cut loses at most that
        save_interval_uas=target_uah * UAS_PER_UAH // 1000,
    )
    if values["wetting_capacity_uAh_cm2"] > 0:
        settings["wetting_capacity_uah"] = max(1, int(round(values["wetting_capacity_uAh_cm2"] * area_cm2)))
    settings.update(overrides)
    return Config(**settings)


class Bench:
    """A twin board with a controller on it, and the power switch."""

    def __init__(self, parameters, ambient_c: float = 25.0, seed: int = 0, board="bench_ua",
                 device_id: str | None = None, config: Config | None = None):
        self.parameters = parameters
        self.ambient_c = ambient_c
        self.seed = seed
        self.cell = Cell(parameters, ambient_c=ambient_c)
        # a board name (twin/parameters/boards) or a mapping of its values
        self.board = TwinBoard(self.cell, load_board(board) if isinstance(board, str) else board,
                               seed=seed)
        self.config = config if config is not None else config_for(parameters)
        self.device_id = device_id or f"{parameters.name}-{seed:04d}"
        self.tick_ms = self.config.tick_ms
        self.boots = 0
        self.controller = self._boot()

    def _boot(self) -> Controller:
        self.boots += 1
        return Controller(self.board, self.config, device_id=self.device_id)

    def tick(self) -> None:
        self.board.advance(self.tick_ms)
        self.controller.tick()

    def power_cut(self, off_s: float) -> None:
        """Power off for off_s (the source stops, the relay drops, the cell
        rests), then boot a fresh controller from the persistent record."""
        self.board.power(False)
        self.controller = None
        left_ms = int(round(off_s * 1000))
        while left_ms > 0:
            step = min(left_ms, 60000)
            self.board.advance(step)
            left_ms -= step
        self.board.power(True)
        self.controller = self._boot()

    @property
    def t_s(self) -> float:
        return self.cell.t_s


class RunResult:
    def __init__(self, rows, events, summary, cycles):
        self.rows = rows
        self.events = events
        self.summary = summary
        self.cycles = cycles


class _Recorder:
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


def summarize(bench: Bench, recorder: "_Recorder", formation: FormationWatch, final_frame: dict,
              wall_s: float, **more) -> dict:
    """The summary.json of a closed-loop run (in-process or over HIL)."""
    cell, s = bench.cell, bench.cell.state
    charged = s.charge_in_C / COULOMB_PER_UAH
    returned = s.charge_out_C / COULOMB_PER_UAH
    summary = {
        "cell": bench.parameters.name,
        "device": bench.device_id,
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
        "boots": bench.boots,
        "events": len(recorder.events),
        "sim_seconds": s.t_s,
        "wall_seconds": wall_s,
        "speed_factor": s.t_s / wall_s if wall_s > 0 else math.inf,
    }
    summary.update(more)
    return summary


def _until_reached(step, cell_mv: int) -> bool:
    if step.stop_voltage_V is None:
        return False
    stop_mv = step.stop_voltage_V * 1000.0
    return cell_mv >= stop_mv if step.current_A > 0 else cell_mv <= stop_mv


def run_closed_loop(parameters, duty: Protocol | None = None, ambient_c: float = 25.0, seed: int = 0,
                    power_cuts_s: Sequence[float] = (), off_s: float = 60.0,
                    on_tick: Callable | None = None, sinks: Iterable = (), record_every: int = 1,
                    config: Config | None = None, ambient_profile: Callable | None = None,
                    stop_after_formation: bool = False, bench: Bench | None = None,
                    formation_timeout_s: float = FORMATION_TIMEOUT_S,
                    device_id: str | None = None) -> RunResult:
    """Boot the firmware on a shipped cell, let it form the cell, then play the
    duty protocol as requests. `sinks` receive frames: objects with
    frame(dict), event(dict) and, optionally, poll(controller) for commands.
    `on_tick(bench)` runs after every tick (tests use it to inject faults)."""
    bench = bench or Bench(parameters, ambient_c=ambient_c, seed=seed, config=config, device_id=device_id)
    recorder = _Recorder(bench, record_every)
    sinks = list(sinks)
    pollers = [s for s in sinks if hasattr(s, "poll")]
    cuts = sorted(float(t) for t in power_cuts_s)
    tick_s = bench.tick_ms / 1000.0
    formation = FormationWatch(bench)
    steps_report: list = []

    def one_tick() -> dict:
        nonlocal cuts
        if cuts and bench.t_s >= cuts[0]:
            cuts = cuts[1:]
            bench.power_cut(off_s)
        if ambient_profile is not None:
            bench.cell.set_ambient_c(ambient_profile(bench.t_s))
        for p in pollers:
            p.poll(bench.controller)
        bench.tick()
        c = bench.controller
        frame = c.telemetry()
        recorder.tick(frame)
        for sink in sinks:
            sink.frame(frame)
        events = c.pop_events()
        formation.frame(frame)
        for ev in events:
            recorder.event(ev)
            formation.event(ev)
            for sink in sinks:
                sink.event(ev)
        if on_tick is not None:
            on_tick(bench)
        return frame

    t_wall = time.perf_counter()
    # Phase 1: boot and formation, the firmware's own business.
    while bench.t_s < formation_timeout_s:
        frame = one_tick()
        if frame["state"] in ("READY", "FAULT"):
            break
    # Phase 2: the duty cycle, each step a request the firmware may limit.
    if duty is not None and not stop_after_formation and bench.controller.state == "READY":
        for index, step in enumerate(duty.steps()):
            report = _run_step(bench, step, one_tick, tick_s)
            report["index"] = index
            steps_report.append(report)
            if bench.controller.state == "FAULT":
                break
        bench.controller.request_current_ua(0)
        for _ in range(int(60 / tick_s)):
            one_tick()
    wall = time.perf_counter() - t_wall

    summary = summarize(bench, recorder, formation, bench.controller.telemetry(), wall,
                        steps=steps_report)
    return RunResult(recorder.rows, recorder.events, summary, recorder.cycles)


def _run_step(bench: Bench, step, one_tick, tick_s: float) -> dict:
    """Play one duty step as requests; returns how it ended."""
    start_s = bench.t_s
    q_in0, q_out0 = bench.cell.state.charge_in_C, bench.cell.state.charge_out_C
    limited_s = 0.0
    reason = "time"
    hold_request = 0
    while bench.t_s - start_s < step.duration_s - 1e-9:
        c = bench.controller
        if step.kind == "hold":
            request = hold_request
        else:
            request = int(round(step.current_A * 1e6))
        if c.state == "READY":
            c.request_current_ua(request)
        frame = one_tick()
        if frame["state"] == "FAULT":
            reason = "fault"
            break
        if step.kind == "hold":
            # a plain proportional voltage hold, as a cycler's CV loop would do
            error_mv = step.voltage_V * 1000.0 - frame["cell_mv"]
            hold_request = int(max(-1000, min(1000, hold_request + error_mv * 2)))
            if step.stop_current_A is not None and bench.t_s - start_s > 60 and \
                    abs(frame["current_ua"]) <= step.stop_current_A * 1e6:
                reason = "current"
                break
            continue
        if _until_reached(step, frame["cell_mv"]):
            reason = "voltage"
            break
        if request and abs(frame["current_ua"]) < LIMITED_FRACTION * abs(request):
            limited_s += tick_s
            if limited_s >= LIMITED_FOR_S:
                reason = "limited"
                break
        else:
            limited_s = 0.0
    s = bench.cell.state
    return {"line": step.line_no, "text": step.text or step.describe(), "stop_reason": reason,
            "elapsed_s": bench.t_s - start_s,
            "charge_uAh": ((s.charge_in_C - q_in0) - (s.charge_out_C - q_out0)) / COULOMB_PER_UAH,
            "end_voltage_V": s.voltage_V}


def write_run_outputs(result: RunResult, out_dir: Path, title: str = "") -> None:
    import csv

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "timeseries.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TIMESERIES_COLUMNS)
        for row in result.rows:
            w.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in row])
    with open(out_dir / "events.jsonl", "w") as fh:
        for ev in result.events:
            fh.write(json.dumps(ev, sort_keys=True) + "\n")
    summary = dict(result.summary, cycles=result.cycles)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_run(result, out_dir, title)


def plot_run(result: RunResult, out_dir: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = {name: i for i, name in enumerate(TIMESERIES_COLUMNS)}
    rows = result.rows
    t_h = [r[cols["time_s"]] / 3600.0 for r in rows]
    fig, (ax_v, ax_i) = plt.subplots(2, 1, sharex=True, figsize=(9, 5.5),
                                     gridspec_kw={"height_ratios": [2, 1]})
    ax_v.plot(t_h, [r[cols["voltage_V"]] for r in rows], lw=0.8, label="cell (twin)")
    ax_v.plot(t_h, [r[cols["cvl_mv"]] / 1000 for r in rows], lw=0.6, ls="--", color="tab:red", label="CVL")
    ax_v.plot(t_h, [r[cols["dvl_mv"]] / 1000 for r in rows], lw=0.6, ls="--", color="tab:purple", label="DVL")
    ax_v.set_ylabel("voltage [V]")
    ax_v.legend(loc="lower right", fontsize=8)
    ax_v.grid(alpha=0.3)
    ax_i.plot(t_h, [r[cols["current_A"]] * 1e6 for r in rows], lw=0.8, color="tab:red")
    ax_i.set_ylabel("current [µA]\n(+ charge)")
    ax_i.set_xlabel("time [h]")
    ax_i.grid(alpha=0.3)
    ax_v.set_title(title or "bms-twin closed loop")
    fig.tight_layout()
    fig.savefig(out_dir / "voltage.png", dpi=110)
    plt.close(fig)

    # Like the seed's Figure 6: lithium on the electrode over the run, and
    # each cycle's coulombic efficiency.
    fig, (ax_q, ax_ce) = plt.subplots(2, 1, figsize=(9, 5.5))
    ax_q.plot(t_h, [r[cols["plated_Li_uAh"]] for r in rows], lw=0.8, label="lithium on the electrode (twin)")
    ax_q.plot(t_h, [r[cols["inventory_uAh"]] for r in rows], lw=0.8, ls="--", label="inventory (firmware ledger)")
    ax_q.set_xlabel("time [h]")
    ax_q.set_ylabel("lithium [µAh]")
    ax_q.legend(fontsize=8)
    ax_q.grid(alpha=0.3)
    ces = [c["charged_uAh"] and 100.0 * c["discharged_uAh"] / c["charged_uAh"] for c in result.cycles]
    ax_ce.bar(range(1, len(ces) + 1), ces, color="tab:green")
    ax_ce.set_ylim(min([90.0] + [c for c in ces if c]), 101)
    ax_ce.set_xlabel("cycle")
    ax_ce.set_ylabel("coulombic efficiency [%]")
    ax_ce.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(out_dir / "inventory.png", dpi=110)
    plt.close(fig)
