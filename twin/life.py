"""A cell's life on the closed loop: the firmware's beliefs against the twin's truth.

The in-process firmware (bmsfw.controller) forms a shipped cell on the twin bench,
then plays a D049-style duty (15 min discharge / 15 min charge at 100 µA/cm², a full
strip and recharge every `strip_every` cycles) as requests it may limit. At every
cycle end this compares what the firmware publishes (its estimator: lithium and SOC
with their bounds) with the twin's truth, and on every tick checks that DCL is 0
whenever the twin's lithium is at or below the reserve. A crack can be injected at an
instant; the run then stops at the first fault and says how long it took and how much
lithium corroded before it.

The loop is lean on purpose (no recorder rows): a 1,000-cycle life is ~1.8 million
ticks. `spread` draws the twin's cell and board from the nominal set (loss rate,
layer thickness, catholyte capacity and ADC noise, each ±`spread`), while the
firmware keeps the nominal design: what a cell-to-cell spread looks like to a BMS.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from twin.bench import Bench
from twin.board import TwinBoard
from twin.cell import Cell
from twin.core import COULOMB_PER_UAH
from twin.firmware_config import config_for
from twin.parameters.board import board_values
from bmsfw.controller import Controller

TICK_MS = 1000
HALF_CYCLE_S = 900
FORMATION_LIMIT_S = 12 * 3600     # 0 °C plates at 30 µA/cm²: ~7 h
STRIP_LIMIT_S = 4 * 3600
LIMIT_CLOSED_S = 60           # a strip or recharge ends when its limit stayed 0 this long


@dataclass
class LifeResult:
    cycles: int = 0
    inventory_errors_pct: list = field(default_factory=list)   # firmware - twin, % of design, per cycle end
    soc_errors_pts: list = field(default_factory=list)         # firmware - twin, SOC points, per cycle end
    outside_bound: int = 0          # cycle ends where |error| exceeded the published bound
    reserve_breaches: int = 0       # ticks the twin was at/below the reserve with DCL > 0
    faults: list = field(default_factory=list)
    fault_detail: str = ""
    crack_at_s: float | None = None
    detected_at_s: float | None = None
    corroded_uAh: float = 0.0       # lithium corroded before detection (all of it)
    corroded_dead_uAh: float = 0.0  # ... of which lost for good
    knees: int = 0
    loss_ppm: int = 0
    twin_loss_ppm: int = 0
    rests: int = 0
    formed: bool = False

    @property
    def max_inventory_error_pct(self) -> float:
        return max((abs(e) for e in self.inventory_errors_pct), default=0.0)

    @property
    def rms_inventory_error_pct(self) -> float:
        n = len(self.inventory_errors_pct)
        return (sum(e * e for e in self.inventory_errors_pct) / n) ** 0.5 if n else 0.0

    @property
    def max_soc_error_pts(self) -> float:
        return max((abs(e) for e in self.soc_errors_pts), default=0.0)

    @property
    def detection_delay_s(self) -> float | None:
        if self.crack_at_s is None or self.detected_at_s is None:
            return None
        return self.detected_at_s - self.crack_at_s


def spread_cell(parameters, board="bench_ua", spread: float = 0.0, seed: int = 0):
    """The twin's cell and board values drawn ±spread (uniform) around the nominal."""
    rng = random.Random(seed * 7919 + 17)
    v = parameters.values

    def draw(x):
        return x * (1.0 + rng.uniform(-spread, spread)) if spread else x

    params = parameters.with_overrides(
        plating_loss_fraction=draw(v["plating_loss_fraction"]),
        layer_thickness_A=draw(v["layer_thickness_A"]),
        catholyte_volume_uL=draw(v["catholyte_volume_uL"]))
    b = dict(board_values(board))
    b["adc_noise_counts"] = draw(b["adc_noise_counts"])
    return params, b


class Life:
    """One cell's life: build, form, cycle; `run()` returns a LifeResult."""

    def __init__(self, parameters, ambient_c=25.0, seed=0, spread=0.0, board="bench_ua",
                 cycles=100, strip_every=100, crack_after_s=None, config=None):
        """crack_after_s: the layer cracks this long after formation ended (None: never)."""
        self.nominal = parameters
        params, board_map = spread_cell(parameters, board, spread, seed)
        self.cell = Cell(params, ambient_c=ambient_c)
        self.bench = Bench(self.cell, TwinBoard(self.cell, board_map, seed=seed))
        self.config = config or config_for(parameters, board)
        self.c = Controller(self.bench.board, self.config, device_id="life-%04d" % seed)
        self.cycles = cycles
        self.strip_every = strip_every
        self.crack_after_s = crack_after_s
        self.crack_at_s = None
        self.r = LifeResult(twin_loss_ppm=int(round(params.values["plating_loss_fraction"] * 1e6)))
        self._reserve_uAh = self.config.lithium_reserve_uah
        self._target_uAh = self.config.target_inventory_uah
        self._done = False

    # ---- one tick ------------------------------------------------------------
    def tick(self):
        board = self.bench.board
        board.advance(TICK_MS)
        c = self.c
        c.tick()
        for ev in c.pop_events():
            if ev["event"] == "FAULT":
                self.r.faults.append(ev["fault"])
                self.r.fault_detail = ev["detail"]
                if self.r.detected_at_s is None and ev["fault"] == "CRACK_SUSPECTED":
                    self._detected()
        cell = self.cell
        if c.state == "FAULT":
            self._done = True
        if cell.plated_uAh <= self._reserve_uAh and c.dcl_ua > 0 and c.state == "READY":
            self.r.reserve_breaches += 1
        if self.crack_at_s is not None and self.r.crack_at_s is None and cell.t_s >= self.crack_at_s:
            board.inject("crack_now")
            self.r.crack_at_s = cell.t_s
            self._corroded0 = cell.state.li_corroded_C
            self._dead0 = cell.state.li_dead_mol

    def _detected(self):
        cell = self.cell
        self.r.detected_at_s = cell.t_s
        if self.r.crack_at_s is not None:
            self.r.corroded_uAh = (cell.state.li_corroded_C - self._corroded0) / COULOMB_PER_UAH
            dead_frac = cell.parameters.values["corrosion_dead_fraction"]
            self.r.corroded_dead_uAh = self.r.corroded_uAh * dead_frac

    def _hold(self, request_ua, seconds):
        for _ in range(int(seconds * 1000 // TICK_MS)):
            if self._done:
                return
            self.c.request_current_ua(request_ua)
            self.tick()

    def _until_closed(self, request_ua, limit_s):
        """Request until the firmware's limit for it stayed 0 for LIMIT_CLOSED_S."""
        closed = 0
        for _ in range(int(limit_s * 1000 // TICK_MS)):
            if self._done:
                return
            self.c.request_current_ua(request_ua)
            self.tick()
            limit = self.c.ccl_ua if request_ua > 0 else self.c.dcl_ua
            closed = closed + 1 if limit == 0 else 0
            if closed * TICK_MS >= LIMIT_CLOSED_S * 1000:
                return

    # ---- the life ------------------------------------------------------------
    def form(self) -> bool:
        while self.cell.t_s < FORMATION_LIMIT_S and self.c.state not in ("READY", "FAULT"):
            self.tick()
        self.r.formed = self.c.state == "READY"
        return self.r.formed

    def run(self) -> LifeResult:
        if not self.form():
            return self.r
        if self.crack_after_s is not None:
            self.crack_at_s = self.cell.t_s + self.crack_after_s
        area = self.nominal.values["area_cm2"]
        i_ua = int(round(100 * area))
        for n in range(1, self.cycles + 1):
            self._hold(-i_ua, HALF_CYCLE_S)
            self._hold(i_ua, HALF_CYCLE_S)
            if self._done:
                break
            self._cycle_end()
            if self.strip_every and n % self.strip_every == 0 and n < self.cycles:
                # the full strip (100 then 20 µA/cm², as the seed's D111 test) and a recharge
                self._until_closed(-i_ua, STRIP_LIMIT_S)
                self._until_closed(-i_ua // 5, STRIP_LIMIT_S)
                self._until_closed(i_ua, STRIP_LIMIT_S)
            if self._done:
                break
        est = self.c.est
        self.r.knees = est.knees
        self.r.loss_ppm = est.loss_ppm
        self.r.rests = self.c.crack.rests
        return self.r

    def _cycle_end(self):
        r = self.r
        r.cycles += 1
        est = self.c.est
        truth = self.cell.plated_uAh
        per_uah = est.eu_per_uah
        err = est.li_eu / per_uah - truth
        r.inventory_errors_pct.append(100.0 * err / self._target_uAh)
        if abs(err) > (est.bound_eu + per_uah) / per_uah:
            r.outside_bound += 1
        span = self._target_uAh - self._reserve_uAh
        soc_true = min(max((truth - self._reserve_uAh) / span, 0.0), 1.0) * 100.0
        r.soc_errors_pts.append(self.c.outputs.soc_pm / 10.0 - soc_true)


def life(parameters, **kwargs) -> LifeResult:
    return Life(parameters, **kwargs).run()
