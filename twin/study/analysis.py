"""Reading answers off a study's table (a pandas DataFrame from read_table).

crack_boundary: at each value of y (ambient), where over x (a plating current
density) the layer starts to crack. Two answers: the bracket the grid gives
(highest x that held, lowest that cracked, within the protocol's length), and
the onset of damage, from the crack times. The twin's damage law
(docs/physics.md) is dD/dt = rate (j/j_crit - 1) above j_crit at a held
current, so 1/crack_time is a straight line in j that reaches zero at j_crit:
extrapolating the cracked variants nearest the boundary gives the critical
density itself, not just a grid cell around it.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

# cracked grid values (the lowest) that the onset line is fitted through: the
# nearest the boundary, where the cell warms least and the law is cleanest
ONSET_FIT_POINTS = 4


def _onset(x: np.ndarray, crack_time_s: np.ndarray) -> float:
    if len(x) < 2:
        return math.nan
    slope, intercept = np.polyfit(x, 1.0 / crack_time_s, 1)
    return -intercept / slope if slope > 0 else math.nan


def crack_boundary(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """One row per value of y: highest_intact, lowest_cracked and onset (in x's
    unit), and how many variants cracked. Rows with an error are left out."""
    ok = frame[frame["error"] == ""] if "error" in frame else frame
    rows = []
    for y_value, group in ok.groupby(y, sort=True):
        cracked = group[group["crack_time_s"].notna()]
        lowest = cracked[x].min() if len(cracked) else math.nan
        intact = group[group["crack_time_s"].isna()]
        below = intact[intact[x] < lowest] if len(cracked) else intact
        # the mean crack time at each of the lowest cracked x values
        near = cracked.groupby(x)["crack_time_s"].mean().sort_index().iloc[:ONSET_FIT_POINTS]
        rows.append({y: y_value,
                     "highest_intact": below[x].max() if len(below) else math.nan,
                     "lowest_cracked": lowest,
                     "onset": _onset(near.index.to_numpy(dtype=float), near.to_numpy(dtype=float)),
                     "n_cracked": len(cracked), "n": len(group)})
    return pd.DataFrame(rows)
