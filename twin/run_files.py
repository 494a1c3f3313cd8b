"""The files of a closed-loop run (`bms-twin run`, `bms-twin hil`): timeseries.csv
(TIMESERIES_COLUMNS, one row per recorded tick), events.jsonl, summary.json (with
the per-cycle truth), and the plots (twin/plots.py: voltage.png, inventory.png,
cycles.png).
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


def write_run_outputs(result: RunResult, out_dir: Path, title: str = "") -> list:
    """Write every file of the run into out_dir; returns the paths."""
    import csv

    from twin import plots

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
    written = [out_dir / name for name in ("timeseries.csv", "events.jsonl", "summary.json")]
    if not result.rows:
        return written      # nothing ran (e.g. no firmware came over HIL): no plots to draw
    return written + plots.write_all(plots.RunSeries.of_run(result), out_dir, title or "bms-twin closed loop")
