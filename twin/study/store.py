"""Where a study's results live in its output directory (Parquet, read with pandas).

    DIR/results.parquet   the table: one row per variant computed, sorted by index:
                          index, point, draw, variant, the inputs (seed: closed loop),
                          the study's figures, error. Units: the schema metadata
                          (read_table puts them in DataFrame.attrs["units"]).
    DIR/store/*.parquet   every figure of every variant computed so far, keyed by
                          variant: what a rerun reuses. Written as work completes
                          (temp file, then rename: a kill leaves no half file) and
                          folded into one file when a run ends.
    DIR/study.toml        the study file as run; DIR/study.json what the run did.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from twin.study.evaluate import ERROR_COLUMN
from twin.study.figures import FIGURES, figures_of
from twin.study.plan import KEY_COLUMN, POSITION_COLUMNS

RESULTS = "results.parquet"
STORE = "store"
UNITS_METADATA = b"bms_twin.units"
_ARROW = {"float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(), "str": pa.string()}


def _store_schema(kind: str) -> pa.Schema:
    fields = [pa.field(KEY_COLUMN, pa.string())]
    fields += [pa.field(name, _ARROW[FIGURES[name].dtype]) for name in figures_of(kind)]
    fields.append(pa.field(ERROR_COLUMN, pa.string()))
    return pa.schema(fields)


def _write_atomic(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".%s.tmp" % uuid.uuid4().hex[:8])
    pq.write_table(table, tmp)
    os.replace(tmp, path)


class Store:
    """The figures computed so far in one output directory, for one study kind."""

    def __init__(self, out_dir: Path, kind: str):
        self.dir = Path(out_dir) / STORE
        self.schema = _store_schema(kind)
        self._n_files = 0

    def _files(self) -> list:
        return sorted(p for p in self.dir.glob("*.parquet"))

    def read(self) -> pa.Table:
        """Every stored row (the last stored wins when a variant was stored twice)."""
        tables = []
        for path in self._files():
            table = pq.read_table(path)
            if table.schema.names != self.schema.names:
                continue   # another kind of study ran here before: nothing of it applies
            tables.append(table.cast(self.schema))
        if not tables:
            return self.schema.empty_table()
        table = pa.concat_tables(tables)
        keys = table.column(KEY_COLUMN).to_pylist()
        last = {key: i for i, key in enumerate(keys)}
        if len(last) == len(keys):
            return table
        return table.take(sorted(last.values()))

    def keys(self) -> set:
        return set(self.read().column(KEY_COLUMN).to_pylist())

    def write(self, rows: list) -> None:
        if not rows:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self._n_files += 1
        name = "part-%s-%d-%04d.parquet" % (uuid.uuid4().hex[:8], os.getpid(), self._n_files)
        _write_atomic(pa.Table.from_pylist(rows, schema=self.schema), self.dir / name)

    def compact(self) -> None:
        """Fold every stored file into one."""
        files = self._files()
        if len(files) <= 1:
            return
        table = self.read()
        _write_atomic(table, self.dir / ("all-%s.parquet" % uuid.uuid4().hex[:8]))
        for path in files:
            path.unlink()


def results_table(plan, stored: pa.Table, figures) -> pa.Table:
    """The plan's variants that have results, with their inputs and `figures`."""
    study = plan.study
    at = {key: i for i, key in enumerate(stored.column(KEY_COLUMN).to_pylist())}
    rows = [i for i, key in enumerate(plan.keys) if key in at]
    take = pa.array([at[plan.keys[i]] for i in rows], type=pa.int64())
    units = {"index": "", "point": "", "draw": "", KEY_COLUMN: "", ERROR_COLUMN: ""}
    columns, fields = [], []
    for name in POSITION_COLUMNS:
        columns.append(pa.array(plan.columns[name][rows], type=pa.int64()))
        fields.append(pa.field(name, pa.int64()))
    columns.append(pa.array([plan.keys[i] for i in rows], type=pa.string()))
    fields.append(pa.field(KEY_COLUMN, pa.string()))
    variables = {v.key: v for v in study.variables}
    for name in plan.input_names:
        kind = pa.int64() if name in plan.integer_inputs else pa.float64()
        columns.append(pa.array(plan.columns[name][rows], type=kind))
        fields.append(pa.field(name, kind))
        units[name] = variables[name].unit if name in variables else ""
    for name in list(figures) + [ERROR_COLUMN]:
        columns.append(stored.column(name).take(take))
        fields.append(stored.schema.field(name))
        if name in FIGURES:
            units[name] = FIGURES[name].unit
    metadata = {UNITS_METADATA: json.dumps(units).encode(), b"bms_twin.study": study.name.encode()}
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=metadata))


def write_results(table: pa.Table, out_dir: Path) -> Path:
    path = Path(out_dir) / RESULTS
    _write_atomic(table, path)
    return path


def read_table(out_dir):
    """A study's results as a pandas DataFrame; .attrs["units"] maps column -> unit."""
    path = Path(out_dir)
    path = path / RESULTS if path.is_dir() else path
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.attrs["units"] = json.loads(table.schema.metadata.get(UNITS_METADATA, b"{}"))
    return frame
