"""The plots of a study, drawn from its table: the crack map over current density
x temperature (time to crack, the boundary), formation time against current,
histograms of the figures over a Monte Carlo lot.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from twin.study.analysis import crack_boundary
from twin.study.figures import FIGURES


def _label(study, column: str) -> str:
    variables = {v.key: v for v in study.variables}
    unit = variables[column].unit if column in variables else FIGURES[column].unit if column in FIGURES else ""
    return "%s [%s]" % (column, unit) if unit and unit != "1" else column


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> Path:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _log_axis(values) -> bool:
    values = np.asarray(values, dtype=float)
    return bool(len(values) and values.min() > 0 and values.max() / values.min() > 20)


def plot_crack_map(study, frame, spec: dict, path: Path) -> Path:
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    x, y = spec["x"], spec["y"]
    ok = frame[frame["error"] == ""]
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    cracked = ok[ok["crack_time_s"].notna()]
    intact = ok[ok["crack_time_s"].isna()]
    if len(cracked):
        minutes = cracked["crack_time_s"] / 60.0
        dots = ax.scatter(cracked[x], cracked[y], c=minutes, cmap="inferno_r", s=46, marker="s",
                          norm=LogNorm(vmin=max(minutes.min(), 1e-3), vmax=max(minutes.max(), 1e-3 * 1.01)))
        fig.colorbar(dots, ax=ax, label="time to crack [min]")
    ax.scatter(intact[x], intact[y], s=22, marker="o", facecolors="none", edgecolors="tab:green",
               label="layer held")
    boundary = crack_boundary(ok, x, y)
    ax.plot(boundary["onset"], boundary[y], "-", color="tab:blue", lw=1.6,
            label="crack onset (from crack times)")
    for _, row in boundary.iterrows():
        if not math.isnan(row["onset"]):
            ax.annotate("%.3g" % row["onset"], (row["onset"], row[y]), textcoords="offset points",
                        xytext=(-6, 7), ha="right", fontsize=8, color="tab:blue")
    if _log_axis(ok[x]):
        ax.set_xscale("log")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    return _save(plt, fig, ax, path, _label(study, x), _label(study, y),
                 "%s: where the protective layer cracks" % study.name)


def plot_formation_time(study, frame, spec: dict, path: Path) -> Path:
    plt = _pyplot()
    x = spec["x"]
    ok = frame[(frame["error"] == "") & frame["formation_time_s"].notna()]
    unfinished = int(((frame["error"] != "") | frame["formation_time_s"].isna()).sum())
    fig, ax = plt.subplots(figsize=(8, 5))
    colour_by = "ambient_c" if "ambient_c" in frame and x != "ambient_c" else None
    hours = ok["formation_time_s"] / 3600.0
    if colour_by:
        dots = ax.scatter(ok[x], hours, s=14, alpha=0.8, c=ok[colour_by], cmap="coolwarm")
        fig.colorbar(dots, ax=ax, label=_label(study, colour_by))
    else:
        ax.scatter(ok[x], hours, s=14, alpha=0.8, color="tab:blue")
    return _save(plt, fig, ax, path, _label(study, x), "formation time [h]",
                 "%s: formation time, %d runs%s" % (study.name, len(ok), ", %d did not finish formation"
                                                    % unfinished if unfinished else ""))


def plot_histograms(study, frame, figures: list, path: Path) -> Path:
    plt = _pyplot()
    ok = frame[frame["error"] == ""]
    n = len(figures)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, figures):
        values = ok[name].dropna().astype(float)
        ax.hist(values, bins=min(40, max(5, int(math.sqrt(max(len(values), 1))))), color="tab:blue")
        ax.set_xlabel(_label(study, name))
        ax.set_ylabel("variants")
        if len(values):
            ax.set_title("mean %.4g, sd %.3g" % (values.mean(), values.std()), fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("%s: %d variants" % (study.name, len(ok)))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


_DRAW = {"crack_map": plot_crack_map, "formation_time": plot_formation_time, "histograms": plot_histograms}


def draw_plots(study, frame, out_dir: Path) -> list:
    """Every plot the study asks for, as PNG files in out_dir."""
    return [_DRAW[name](study, frame, spec, Path(out_dir) / ("%s.png" % name))
            for name, spec in study.plots.items()]
