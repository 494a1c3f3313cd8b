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


def judge_closed_loop(summary: dict, formation_asked: bool = True) -> None:
    """Did a closed-loop run (`bms-twin run`, `bms-twin hil`) do what it was asked?
    The formation (when asked: a run that was not given a fixed duration) must have
    ended in READY, and a duty that was asked must have run every step; else the
    summary is marked incomplete with the reason (mark_incomplete). Sets
    "complete": true when nothing before or here found it incomplete."""
    final = "%s/%s" % (summary.get("final_state"), summary.get("final_substate") or "")
    final = final.rstrip("/")
    timed_out = summary.get("formation_timed_out")
    formed = summary.get("formation", {}).get("duration_s") is not None
    # no frame from the firmware, or a lost link: the run already says why (hil)
    lost = summary.get("final_state") is None or summary.get("link_lost")
    if formation_asked and not formed and not lost:
        if timed_out:
            mark_incomplete(summary, "formation unfinished: still %s after %.2f h of powered %s time (its timeout, "
                            "%.2f h, is 1.5 x the plan from the cell)"
                            % (final, timed_out["powered_s"] / 3600, timed_out["phase"], timed_out["limit_s"] / 3600))
        elif summary.get("final_state") == "FAULT":
            mark_incomplete(summary, "formation unfinished: FAULT (%s)" % ", ".join(summary.get("faults") or ["?"]))
        else:
            mark_incomplete(summary, "formation unfinished: the run ended with the cell %s" % final)
    duty = summary.get("duty") or {}
    if duty.get("asked") and duty.get("ran", 0) < duty.get("steps", 0):
        mark_incomplete(summary, "duty skipped: %d of %d steps ran (%s)"
                        % (duty.get("ran", 0), duty["steps"], duty.get("stopped_by") or "stopped"))
    elif duty.get("asked") and duty.get("stopped_by"):
        mark_incomplete(summary, "duty stopped: %s" % duty["stopped_by"])
    summary.setdefault("complete", True)


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
