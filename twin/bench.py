"""The bench a firmware runs on: a shipped cell on a twin board, and the power switch.

The bench holds no firmware. Whoever runs one brings it: the in-process closed
loop (twin/run.py) puts its controller on the bench (`bench.controller`, None
otherwise, and while the power is off); the HIL server (twin/hil/) and the
MicroPython closed loop (tests/mp/closed_loop.py) drive the board from a
firmware elsewhere. All of them let time pass through the board (TwinBoard.advance).
"""
from __future__ import annotations

from twin.board import TwinBoard
from twin.cell import Cell


class Bench:
    """A cell on a board. `controller` is the in-process run's, while it has one."""

    def __init__(self, cell: Cell, board: TwinBoard):
        if board.cell is not cell:
            raise ValueError("Bench: the board must be wired to this cell (TwinBoard(cell, ...))")
        self.cell = cell
        self.board = board
        self.controller = None

    @classmethod
    def build(cls, parameters, ambient_c: float = 25.0, seed: int = 0, board=None) -> "Bench":
        """A new shipped cell of `parameters` at `ambient_c` on a board: a board name
        (twin/parameters/boards), a path, a Board, or a mapping of its values (default:
        the board the parameter set names); `seed` seeds the board's ADC noise."""
        cell = Cell(parameters, ambient_c=ambient_c)
        if board is None:
            board = parameters.board
        return cls(cell, TwinBoard(cell, board, seed=seed))

    def power_cut(self, off_s: float) -> None:
        """Power off for off_s: the source stops, the relay drops, the cell rests;
        then power comes back (the board's clock starts again from 0)."""
        self.board.power(False)
        left_ms = int(round(off_s * 1000))
        while left_ms > 0:
            step = min(left_ms, 60000)
            self.board.advance(step)
            left_ms -= step
        self.board.power(True)

    @property
    def parameters(self):
        return self.cell.parameters

    @property
    def ambient_c(self) -> float:
        return self.cell.start_ambient_c

    @property
    def seed(self) -> int:
        return self.board.seed

    @property
    def t_s(self) -> float:
        return self.cell.t_s
