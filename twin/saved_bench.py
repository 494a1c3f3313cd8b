"""A bench saved at the end of a run, and resumed by the next (`bms-twin run --from DIR`).

bench.json holds what a bench is when the power goes off: the cell's whole state
(every field of cell_state_t, clock t_s included, so simulated time goes on), the
parameter set it is a cell of, the board (its description, the seed and the state of
its noise generator, the injected faults, the firmware's record and its write count)
and the ambient the first run was built at. The firmware's RAM is not saved: a
resumed run powers the board up, and the firmware boots from its record, as a bench
switched off between two sessions does (the board's ms clock starts again at 0).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from twin import core
from twin.bench import Bench
from twin.board import TwinBoard
from twin.cell import Cell

BENCH_FILE = "bench.json"
VERSION = 1


class SavedBenchError(ValueError):
    """A --from directory without a bench this run can resume."""

    def __init__(self, where, why: str):
        self.brief = "--from=%r: %s" % (str(where), why)
        super().__init__(self.brief)


_KIND_NAMES = {"cell": "parameter set name", "parameters": "table of values", "start_ambient_c": "number",
               "cell_state": "table of the cell's state", "board": "table of the board"}


def _plain(values: dict) -> dict:
    return json.loads(json.dumps(values, default=str))


def save_bench(bench: Bench, out_dir: Path) -> Path:
    """Write out_dir/bench.json; returns its path."""
    board = bench.board
    version, internal, gauss = board._rng.getstate()
    data = {
        "version": VERSION,
        "cell": bench.parameters.name,
        "parameters": _plain(dict(bench.parameters.values)),
        "start_ambient_c": bench.ambient_c,
        "cell_state": {name: getattr(bench.cell.state, name) for name in core.STATE_FIELDS},
        "board": {
            "values": board.description, "seed": board.seed,
            "rng": [version, list(internal), gauss],
            "record": board.record.hex() if board.record is not None else None,
            "record_writes": board.record_writes,
            "open_cell": board.open_cell, "thermistor": board.thermistor,
            "stuck": {str(k): v for k, v in board.stuck.items()},
            "source_offset_ua": board.source_offset_ua,
        },
    }
    path = Path(out_dir) / BENCH_FILE
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    return path


def read_saved(from_dir) -> dict:
    """The bench.json of a run's directory, checked for its keys; SavedBenchError."""
    path = Path(from_dir) / BENCH_FILE
    if not Path(from_dir).is_dir():
        raise SavedBenchError(from_dir, "no such directory; the output directory of an earlier run expected")
    if not path.is_file():
        raise SavedBenchError(from_dir, "holds no %s; the output directory of a bms-twin run expected" % BENCH_FILE)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise SavedBenchError(from_dir, "%s is not JSON (%s)" % (BENCH_FILE, error)) from None
    if not isinstance(data, dict) or data.get("version") != VERSION:
        raise SavedBenchError(from_dir, "%s is not a version %d saved bench" % (BENCH_FILE, VERSION))
    for key, kind in (("cell", str), ("parameters", dict), ("start_ambient_c", (int, float)),
                      ("cell_state", dict), ("board", dict)):
        if key not in data:
            raise SavedBenchError(from_dir, "%s lacks %r" % (BENCH_FILE, key))
        if not isinstance(data[key], kind) or isinstance(data[key], bool) or data[key] in ("", {}):
            raise SavedBenchError(from_dir, "%s: %r is not a %s" % (BENCH_FILE, key, _KIND_NAMES[key]))
    board = data["board"]
    if not (type(board.get("seed")) is int and 0 <= board["seed"] <= 2**32 - 1):
        raise SavedBenchError(from_dir, "%s: the board's seed is not a whole number from 0 to 2**32-1" % BENCH_FILE)
    return data


def resume_bench(from_dir, parameters) -> Bench:
    """The bench of a saved run, its cell a cell of `parameters` (which must be the
    saved set, value for value), powered up again."""
    data = read_saved(from_dir)
    if parameters.name != data["cell"] or _plain(dict(parameters.values)) != data["parameters"]:
        raise SavedBenchError(from_dir, "the saved bench holds a %s cell with its own values; --cell %s differs "
                              "(leave --cell out to resume it)" % (data["cell"], parameters.name))
    try:
        cell = Cell(parameters, ambient_c=data["start_ambient_c"])
        state = data["cell_state"]
        for name in core.STATE_FIELDS:
            value = state[name]
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(name)
            setattr(cell.state, name, value)
        b = data["board"]
        board = TwinBoard(cell, b["values"], seed=b["seed"])
        version, internal, gauss = b["rng"]
        board._rng.setstate((version, tuple(internal), gauss))
        board.record = bytes.fromhex(b["record"]) if b["record"] is not None else None
        board.record_writes = int(b["record_writes"])
        board.open_cell = bool(b["open_cell"])
        board.thermistor = b["thermistor"] if b["thermistor"] in ("ok", "open", "short") else "ok"
        board.stuck = {int(k): int(v) for k, v in b["stuck"].items()}
        board.source_offset_ua = float(b["source_offset_ua"])
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, core.TwinError) as error:
        raise SavedBenchError(from_dir, "%s is damaged (%s: %s)" % (BENCH_FILE, type(error).__name__,
                                                                    " ".join(str(error).split()))) from None
    board.power(True)
    return Bench(cell, board)
