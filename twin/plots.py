"""The figures of a run, open loop (`bms-twin simulate`) or closed loop (`run`, `hil`),
drawn for a battery engineer:

- voltage.png: the terminal voltage over the whole run (the firmware's CVL/DVL, or the
  channel's compliance), the same zoomed onto the window the formed cell cycles in
  (the precursor's ~0.1 V would otherwise flatten it), and the current;
- inventory.png: lithium in each pool (on the electrode, in the catholyte, lost; the
  firmware's ledger), layer damage, and each cycle's coulombic efficiency on an axis
  that shows every cycle (firmware-limited cycles run above 100 %);
- cycles.png: voltage against charge, in the manner of the seed's Figure 6: the
  formation, every cycle's discharge and charge overlaid, and the final strip.

Every time axis marks what happened: a crack of the protective layer, power cuts,
faults, compliance and safety stops. Currents and charges are in the unit that suits
the cell (twin.display). Each figure function returns the matplotlib Figure, its axes
named by gid ("voltage", "voltage_zoom", "current", "lithium", "damage",
"efficiency", "formation", "cycles", "strip"), so a test reads back what was drawn.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from twin.display import charge_unit, current_unit

# Plotting every row of a two-million-row run takes long and shows nothing more.
MAX_POINTS = 200_000
# The zoomed voltage panel holds this central share of the formed cell's voltages.
ZOOM_PERCENTILES = (0.5, 99.5)

_MARK_STYLE = {
    "crack": dict(color="tab:red", ls="-", lw=1.2),
    "power_cut": dict(color="0.5", alpha=0.25),
    "fault": dict(color="tab:orange", ls="--", lw=0.9),
    "compliance": dict(color="tab:purple", ls=":", lw=0.9),
    "safety": dict(color="black", ls="-", lw=1.5),
}


class RunSeries:
    """What the figures draw, from either kind of run: arrays over time (s), the
    cycles (twin.cycles), marks [(t_s, kind, label)] and power cuts [(start, end)]."""

    def __init__(self, t_s, voltage_V, current_A, plated_uAh, catholyte_uAh, lost_uAh, charge_in_uAh,
                 charge_out_uAh, layer_damage, cycles, marks=(), power_cuts=(), firmware=None,
                 channel=None, has_layer=True):
        self.t_s = np.asarray(t_s, dtype=float)
        self.voltage_V = np.asarray(voltage_V, dtype=float)
        self.current_A = np.asarray(current_A, dtype=float)
        self.plated_uAh = np.asarray(plated_uAh, dtype=float)
        self.catholyte_uAh = np.asarray(catholyte_uAh, dtype=float)
        self.lost_uAh = np.asarray(lost_uAh, dtype=float)
        self.charge_in_uAh = np.asarray(charge_in_uAh, dtype=float)
        self.charge_out_uAh = np.asarray(charge_out_uAh, dtype=float)
        self.layer_damage = np.asarray(layer_damage, dtype=float)
        self.cycles = list(cycles)
        self.power_cuts = [tuple(cut) for cut in power_cuts]
        # firmware: {"cvl_V", "dvl_V", "inventory_uAh"} arrays (closed loop)
        self.firmware = firmware
        # channel: {"compliance_max_V", "compliance_min_V"} (open loop on a cycler)
        self.channel = channel
        # a cell without a protective layer (the seed's control) has no damage to show
        self.has_layer = has_layer
        self.marks = list(marks) + self._crack_marks()

    def _crack_marks(self) -> list:
        cracked = np.flatnonzero(self.layer_damage >= 1.0)
        return [(float(self.t_s[cracked[0]]), "crack", "layer cracked")] if len(cracked) else []

    @classmethod
    def of_simulation(cls, result) -> "RunSeries":
        col = result.column
        marks = [(st["end_s"], "compliance", "compliance, line %s" % st["line"])
                 for st in result.steps if st["stop_reason"] == "compliance"]
        marks += [(st["end_s"], "safety", "safety stop") for st in result.steps
                  if st["stop_reason"].startswith("safety")]
        cycler = result.summary.get("cycler")
        channel = None
        if cycler:
            channel = {k: cycler["values"][k] for k in ("compliance_max_V", "compliance_min_V")}
        return cls(col("time_s"), col("voltage_V"), col("current_A"), col("plated_Li_uAh"),
                   col("catholyte_Li_uAh"), col("lithium_lost_uAh"), col("charge_in_uAh"),
                   col("charge_out_uAh"), col("layer_damage"), result.cycles, marks, channel=channel,
                   has_layer=result.summary.get("layer") != "none")

    @classmethod
    def of_run(cls, result) -> "RunSeries":
        col = result.column
        marks = [(ev["time_s"], "fault", ev.get("fault") or "fault") for ev in result.events
                 if ev.get("event") == "FAULT"]
        firmware = {"cvl_V": np.asarray(col("cvl_mv"), dtype=float) / 1000.0,
                    "dvl_V": np.asarray(col("dvl_mv"), dtype=float) / 1000.0,
                    "inventory_uAh": np.asarray(col("inventory_uAh"), dtype=float)}
        return cls(col("time_s"), col("voltage_V"), col("current_A"), col("plated_Li_uAh"),
                   col("catholyte_Li_uAh"), col("lithium_lost_uAh"), col("charge_in_uAh"),
                   col("charge_out_uAh"), col("layer_damage"), result.cycles, marks,
                   power_cuts=result.summary.get("power_cuts_s", ()), firmware=firmware,
                   has_layer=result.summary.get("layer") != "none")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _every(n: int) -> slice:
    return slice(None, None, max(1, -(-n // MAX_POINTS)))


def _hours(t_s):
    return np.asarray(t_s) / 3600.0


def _mark(ax, series: RunSeries, legend: bool = False) -> None:
    """The run's events on a time axis (hours)."""
    seen = set()
    for start, end in series.power_cuts:
        ax.axvspan(start / 3600.0, end / 3600.0, label=None if "power_cut" in seen else "power cut",
                   **_MARK_STYLE["power_cut"])
        seen.add("power_cut")
    for t_s, kind, label in series.marks:
        name = {"crack": "layer cracked", "fault": "fault", "compliance": "compliance stop",
                "safety": "safety stop"}[kind]
        ax.axvline(t_s / 3600.0, label=None if kind in seen else name, **_MARK_STYLE[kind])
        seen.add(kind)
    for t_s, kind, label in series.marks:
        if kind in ("fault", "safety"):
            ax.annotate(label, (t_s / 3600.0, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                        va="top", ha="right", fontsize=7, color=_MARK_STYLE[kind]["color"])
    if legend and seen:
        ax.legend(loc="best", fontsize=7)


def zoom_window(series: RunSeries) -> tuple | None:
    """(low, high) V of the formed cell's cycling: the voltages within the cycles if
    any closed, else wherever the cell holds lithium; None if it never did."""
    t, v = series.t_s, series.voltage_V
    if series.cycles:
        inside = (t >= series.cycles[0]["start_s"]) & (t <= series.cycles[-1]["t_s"])
    else:
        inside = series.plated_uAh >= 0.02 * max(float(series.plated_uAh.max(initial=0.0)), 1e-12)
        inside &= series.plated_uAh > 0
    if inside.sum() < 2:
        return None
    low, high = np.percentile(v[inside], ZOOM_PERCENTILES)
    pad = max(0.1 * (high - low), 0.005)
    return float(low - pad), float(high + pad)


def voltage_figure(series: RunSeries, title: str = ""):
    plt = _pyplot()
    fig, (ax_v, ax_z, ax_i) = plt.subplots(3, 1, sharex=True, figsize=(10, 8),
                                           gridspec_kw={"height_ratios": [2, 2, 1.2]})
    pick = _every(len(series.t_s))
    t_h = _hours(series.t_s)[pick]
    v = series.voltage_V[pick]
    ax_v.set_gid("voltage")
    ax_v.plot(t_h, v, lw=0.8, color="tab:blue", label="cell (twin)")
    if series.firmware is not None:
        ax_v.plot(t_h, series.firmware["cvl_V"][pick], lw=0.7, ls="--", color="tab:red", label="CVL (firmware)")
        ax_v.plot(t_h, series.firmware["dvl_V"][pick], lw=0.7, ls="--", color="tab:purple", label="DVL (firmware)")
    if series.channel is not None:
        for key, name in (("compliance_max_V", "charge compliance"), ("compliance_min_V", "discharge compliance")):
            ax_v.axhline(series.channel[key], lw=0.6, ls=":", color="0.4", label=name)
    ax_v.set_ylabel("voltage [V]")
    ax_v.set_title(title)
    ax_v.grid(alpha=0.3)
    _mark(ax_v, series)
    ax_v.legend(loc="lower right", fontsize=7)

    ax_z.set_gid("voltage_zoom")
    window = zoom_window(series)
    ax_z.plot(t_h, v, lw=0.8, color="tab:blue")
    if window is None:
        ax_z.set_title("no lithium plated: nothing to zoom on", fontsize=9)
    else:
        ax_z.set_ylim(*window)
        ax_z.set_title("zoomed on the formed cell's %s" % ("cycles" if series.cycles else "voltage"),
                       fontsize=9)
    ax_z.set_ylabel("voltage [V]")
    ax_z.grid(alpha=0.3)
    _mark(ax_z, series)

    unit, factor = current_unit(float(np.abs(series.current_A).max(initial=0.0)))
    ax_i.set_gid("current")
    ax_i.plot(t_h, series.current_A[pick] * factor, lw=0.8, color="tab:red")
    ax_i.axhline(0.0, lw=0.5, color="0.3")
    ax_i.set_ylabel("current [%s]\n(+ charge)" % unit)
    ax_i.set_xlabel("time [h]")
    ax_i.grid(alpha=0.3)
    _mark(ax_i, series, legend=True)
    fig.tight_layout()
    return fig


def inventory_figure(series: RunSeries, title: str = ""):
    plt = _pyplot()
    fig, (ax_q, ax_d, ax_ce) = plt.subplots(3, 1, figsize=(10, 8), gridspec_kw={"height_ratios": [2, 1, 1.5]})
    pick = _every(len(series.t_s))
    t_h = _hours(series.t_s)[pick]
    largest = max(float(series.plated_uAh.max(initial=0.0)), float(series.catholyte_uAh.max(initial=0.0)))
    unit, factor = charge_unit(largest)
    ax_q.set_gid("lithium")
    ax_q.plot(t_h, series.plated_uAh[pick] * factor, lw=0.9, label="on the electrode (twin)")
    ax_q.plot(t_h, series.catholyte_uAh[pick] * factor, lw=0.9, label="in the catholyte (twin)")
    ax_q.plot(t_h, series.lost_uAh[pick] * factor, lw=0.9, label="lost: dead Li, Li2S (twin)")
    if series.firmware is not None:
        ax_q.plot(t_h, series.firmware["inventory_uAh"][pick] * factor, lw=0.9, ls="--",
                  label="inventory (firmware ledger)")
    ax_q.set_ylabel("lithium [%s]" % unit)
    ax_q.set_title(title)
    ax_q.grid(alpha=0.3)
    _mark(ax_q, series)
    ax_q.legend(loc="best", fontsize=7)

    ax_d.set_gid("damage")
    if series.has_layer:
        ax_d.plot(t_h, series.layer_damage[pick], lw=0.9, color="tab:brown", label="layer damage")
    else:
        ax_d.text(0.5, 0.5, "no protective layer: nothing to damage", ha="center", va="center",
                  transform=ax_d.transAxes)
    ax_d.set_ylim(-0.05, 1.05)
    ax_d.set_ylabel("layer damage\n(0 intact, 1 cracked)")
    ax_d.set_xlabel("time [h]")
    ax_d.sharex(ax_q)
    ax_d.grid(alpha=0.3)
    _mark(ax_d, series, legend=True)

    ax_ce.set_gid("efficiency")
    _efficiency(ax_ce, series.cycles)
    fig.tight_layout()
    return fig


def _efficiency(ax, cycles: list) -> None:
    done = [c for c in cycles if c["efficiency"] is not None]
    ax.set_xlabel("cycle (a discharge and the charge after it; formation excluded)")
    ax.set_ylabel("coulombic efficiency [%]")
    if not done:
        ax.text(0.5, 0.5, "no complete cycle (a discharge followed by a charge)", ha="center",
                va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return
    index = [c["index"] for c in done]
    ce = [100.0 * c["efficiency"] for c in done]
    from matplotlib.ticker import MaxNLocator

    ax.plot(index, ce, marker="o", ms=3, lw=0.8, color="tab:green")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.axhline(100.0, lw=0.8, ls="--", color="0.3", label="100 %")
    low, high = min(ce + [100.0]), max(ce + [100.0])
    pad = max(0.1 * (high - low), 0.05)
    ax.set_ylim(low - pad, high + pad)
    ax.set_xlim(0.5, max(index) + 0.5)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=7)


def cycles_figure(series: RunSeries, title: str = ""):
    plt = _pyplot()
    # each panel its own voltage axis: the formation starts at the precursor's ~0.1 V,
    # the cycles span tens of mV
    fig, (ax_f, ax_c, ax_s) = plt.subplots(1, 3, figsize=(13, 4.8))
    largest = float(max(series.charge_in_uAh.max(initial=0.0), series.charge_out_uAh.max(initial=0.0)))
    unit, factor = charge_unit(largest)
    q_in, q_out, v, t = series.charge_in_uAh, series.charge_out_uAh, series.voltage_V, series.t_s
    first = series.cycles[0]["start_s"] if series.cycles else None

    ax_f.set_gid("formation")
    before = t <= first if first is not None else np.ones(len(t), dtype=bool)
    before &= q_out <= q_out[0]
    if before.sum() >= 2 and q_in[before][-1] > q_in[0]:
        ax_f.plot((q_in[before] - q_in[0]) * factor, v[before], lw=1.0, color="tab:blue")
    else:
        ax_f.text(0.5, 0.5, "no formation charge", ha="center", va="center", transform=ax_f.transAxes)
    ax_f.set_title("formation: first charge", fontsize=10)
    ax_f.set_xlabel("charge in [%s]" % unit)
    ax_f.set_ylabel("voltage [V]")
    ax_f.grid(alpha=0.3)

    ax_c.set_gid("cycles")
    _cycle_curves(ax_c, series, factor, unit)

    ax_s.set_gid("strip")
    last = series.cycles[-1]["t_s"] if series.cycles else (first if first is not None else None)
    after = (t >= last) & (series.current_A < 0) if last is not None else np.zeros(len(t), dtype=bool)
    if after.sum() >= 2 and q_out[after][-1] > q_out[after][0]:
        out = (q_out[after] - q_out[after][0]) * factor
        ax_s.plot(out, v[after], lw=1.0, color="black")
        ax_s.set_title("after the last cycle: %.4g %s out" % (out[-1], unit), fontsize=10)
    else:
        ax_s.text(0.5, 0.5, "no discharge after the last cycle", ha="center", va="center",
                  transform=ax_s.transAxes)
        ax_s.set_title("after the last cycle", fontsize=10)
    ax_s.set_xlabel("charge out [%s]" % unit)
    ax_s.set_ylabel("voltage [V]")
    ax_s.grid(alpha=0.3)
    fig.suptitle(title or "voltage against charge")
    fig.tight_layout()
    return fig


def _cycle_curves(ax, series: RunSeries, factor: float, unit: str) -> None:
    ax.set_title("each cycle: discharge (solid), charge (dashed)", fontsize=10)
    ax.set_xlabel("charge moved in the half-cycle [%s]" % unit)
    ax.set_ylabel("voltage [V]")
    ax.grid(alpha=0.3)
    if not series.cycles:
        ax.text(0.5, 0.5, "no complete cycle", ha="center", va="center", transform=ax.transAxes)
        return
    import matplotlib

    colours = matplotlib.colormaps["viridis"]
    n = len(series.cycles)
    t, v, q_in, q_out = series.t_s, series.voltage_V, series.charge_in_uAh, series.charge_out_uAh
    window = zoom_window(series)
    if window is not None:
        ax.set_ylim(*window)
    for k, cycle in enumerate(series.cycles):
        inside = (t >= cycle["start_s"]) & (t <= cycle["t_s"])
        if inside.sum() < 2:
            continue
        i0, o0 = q_in[inside][0], q_out[inside][0]
        discharging = inside & (q_in <= i0)
        charging = inside & (q_in > i0)
        colour = colours(k / max(n - 1, 1))
        ax.plot((q_out[discharging] - o0) * factor, v[discharging], lw=0.8, color=colour)
        if charging.any():
            ax.plot((q_in[charging] - i0) * factor, v[charging], lw=0.8, ls="--", color=colour)
    scalar = matplotlib.cm.ScalarMappable(cmap=colours, norm=matplotlib.colors.Normalize(1, max(n, 2)))
    ax.figure.colorbar(scalar, ax=ax, label="cycle")


FIGURES = (("voltage.png", voltage_figure), ("inventory.png", inventory_figure), ("cycles.png", cycles_figure))


def write_all(series: RunSeries, out_dir: Path, title: str = "") -> list:
    """Draw and save every figure; returns the paths written."""
    plt = _pyplot()
    paths = []
    for name, draw in FIGURES:
        fig = draw(series, title)
        path = Path(out_dir) / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
