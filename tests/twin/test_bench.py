"""twin/bench.py: a cell on a board and the power switch, with no firmware of its own.

Run: .venv/bin/python -m pytest tests/twin/test_bench.py -q
"""
import pytest

from twin.bench import Bench
from twin.board import TwinBoard
from twin.cell import Cell
from twin.parameters import load_parameter_set

D111 = load_parameter_set("d111")


def test_build_makes_a_shipped_cell_on_a_seeded_board_and_no_controller():
    bench = Bench.build(D111, ambient_c=10.0, seed=7)
    assert bench.controller is None
    assert bench.board.cell is bench.cell
    assert bench.parameters is D111 and bench.ambient_c == 10.0 and bench.seed == 7
    assert bench.t_s == 0.0 and bench.cell.plated_uAh == 0.0
    # the same seed, the same noise: two benches read the same counts
    assert Bench.build(D111, seed=7).board.scan() == Bench.build(D111, seed=7).board.scan()


def test_a_power_cut_rests_the_cell_and_restarts_the_board_clock():
    bench = Bench.build(D111)
    board = bench.board
    board.set_relay(True)
    board.set_current_ua(100)
    board.advance(60000)
    charged_C = bench.cell.state.charge_in_C
    assert charged_C > 0 and board.ticks_ms() == 60000
    bench.power_cut(150.5)
    assert bench.t_s == pytest.approx(210.5)
    assert bench.cell.state.charge_in_C == charged_C                # nothing flowed while off
    assert board.ticks_ms() == 0 and board.powered
    assert not board.relay_closed and board.setpoint_ua == 0


def test_a_board_wired_to_another_cell_is_refused():
    cell = Cell(D111)
    with pytest.raises(ValueError, match="the board must be wired to this cell"):
        Bench(cell, TwinBoard(Cell(D111), "bench_ua"))
