"""The files of a closed-loop run (`bms-twin run`, `bms-twin hil`): timeseries.csv
(TIMESERIES_COLUMNS, one row per recorded tick), events.jsonl, summary.json (with
the per-cycle truth), and the plots voltage.png and inventory.png.
"""
from __future__ import annotations

import json
from pathlib import Path

from twin.recorder import TIMESERIES_COLUMNS, RunResult


def add_delivery(summary: dict, deliveries: list) -> None:
    """Put the MQTT delivery figures (mqtt_bridge.delivery) in a run's summary; a
    run that did not deliver everything is not complete, and says why."""
    if not deliveries:
        return
    summary["delivery"] = deliveries[0] if len(deliveries) == 1 else deliveries
    for delivery in deliveries:
        if delivery.get("why"):
            mark_incomplete(summary, delivery["why"])


def mark_incomplete(summary: dict, why: str) -> None:
    """"complete": false, and this reason after any the summary gave already."""
    summary["complete"] = False
    summary["why"] = "; ".join(reason for reason in (summary.get("why"), why) if reason)


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
