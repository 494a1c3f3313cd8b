"""Cycles as the seed counts them for D111: a discharge followed by a charge, its
coulombic efficiency the charge that came out over the charge that went back in.

The charge put in before the first discharge is the formation (the shipped cell's
lithium plated for the first time), not a cycle: counting it would make cycle 1 a
few per cent efficient. Open loop (twin/simulate.py, per step) and closed loop
(twin/recorder.py, per tick) feed the same counter, so both report cycles alike.
"""
from __future__ import annotations

from twin.core import COULOMB_PER_UAH


class CycleCounter:
    """Feed it the charge moved in and out since the last call; `cycles` lists each
    closed cycle: start_s (its discharge began), t_s (the next discharge began: it
    closed), discharged_uAh, charged_uAh, efficiency (discharged / charged, None if
    nothing went back in), plated_uAh (when it closed), index (1-based)."""

    def __init__(self):
        self.cycles: list = []
        self.formation_uAh = 0.0        # charge in before the first discharge
        self._sign = 0                  # +1 charging, -1 discharging, 0 not yet
        self._q_in = self._q_out = 0.0
        self._started = False
        self._start_s = None

    def add(self, t_s: float, d_in_C: float, d_out_C: float, plated_uAh: float) -> None:
        """d_in_C and d_out_C moved since the last call, which ended at t_s (a step's
        or a tick's start: a discharge that begins here opens or closes a cycle at t_s)."""
        sign = 1 if d_in_C > d_out_C else -1 if d_out_C > d_in_C else 0
        if sign == -1 and not self._started:
            self._started = True
            self._start_s = t_s
        elif sign == -1 and self._sign == 1 and self._q_out > 0:
            self._close(t_s, plated_uAh)
        if sign:
            self._sign = sign
        if self._started:
            self._q_in += d_in_C
            self._q_out += d_out_C
        else:
            self.formation_uAh += d_in_C / COULOMB_PER_UAH

    def _close(self, t_s: float, plated_uAh: float) -> None:
        discharged = self._q_out / COULOMB_PER_UAH
        charged = self._q_in / COULOMB_PER_UAH
        self.cycles.append({"index": len(self.cycles) + 1, "start_s": self._start_s, "t_s": t_s,
                            "discharged_uAh": discharged,
                            "charged_uAh": charged,
                            "efficiency": discharged / charged if charged > 0 else None,
                            "plated_uAh": plated_uAh})
        self._q_in = self._q_out = 0.0
        self._start_s = t_s
