"""The embedded history store: DuckDB in one file (see engine.history_store for why).

Tables: ``series (id, asset, signal, unit, discrete, span)``, ``points (series, time,
value, std)`` appended as Arrow batches in arrival order (DuckDB's per-row-group min/max
of ``time`` prunes a time-range scan), ``rollups (series, interval_s, start, min, max,
mean, last, count, twmean)`` and ``watermarks (interval_s, until)``. Each thread uses its
own cursor on the one database.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from engine import history_cards
from engine.cards import CardRecord
from engine.files import PRIVATE_FILE_MODE, private_directory
from engine.history import SeriesPoints, SeriesSpec
from engine.history_query import AGGREGATES
from engine.history_store import Rollups, split_rows

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, asset VARCHAR NOT NULL,
    signal VARCHAR NOT NULL, unit VARCHAR NOT NULL, discrete BOOLEAN NOT NULL, span DOUBLE,
    UNIQUE (asset, signal));
CREATE TABLE IF NOT EXISTS points (series INTEGER NOT NULL, time DOUBLE NOT NULL,
    value DOUBLE, std DOUBLE);
CREATE TABLE IF NOT EXISTS rollups (series INTEGER NOT NULL, interval_s DOUBLE NOT NULL,
    start DOUBLE NOT NULL, min DOUBLE, max DOUBLE, mean DOUBLE, last DOUBLE,
    count DOUBLE, twmean DOUBLE);
CREATE TABLE IF NOT EXISTS watermarks (interval_s DOUBLE PRIMARY KEY, until DOUBLE);
"""

LOOKBACK_S = 3600.0
"""First window searched for the point just outside a range; it grows 24-fold per miss."""


class DuckDBStore:
    """HistoryStore on a DuckDB file at ``path``, created with its directory, both its
    owner's only (engine.files)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        created = not self.path.exists()
        private_directory(self.path.parent)
        self._db = duckdb.connect(str(self.path))
        if created:  # DuckDB makes the file itself: the owner's only, as the audit database
            os.chmod(self.path, PRIVATE_FILE_MODE)
        self._db.execute(_SCHEMA)
        self._db.execute(history_cards.create_table("cards", "DOUBLE", "DOUBLE[]", "BOOLEAN",
                                                    "VARCHAR"))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}
        self._specs: dict[tuple[str, str], SeriesSpec] = {}
        first, last = self._db.execute("SELECT min(time), max(time) FROM points").fetchall()[0]
        self._extent = None if first is None else (first, last)
        """(first, last) point time, kept by append (after a delete ``first`` may be
        earlier than the first point left: searches that stop at it only look further)."""
        for id_, asset, signal, unit, discrete, span in self._db.execute(
                "SELECT id, asset, signal, unit, discrete, span FROM series").fetchall():
            self._ids[(asset, signal)] = id_
            self._specs[(asset, signal)] = SeriesSpec(asset, signal, unit, discrete,
                                                      math.nan if span is None else span)

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._db.cursor()
        return cursor

    def declare(self, specs: Iterable[SeriesSpec]) -> None:
        with self._lock:
            new = {(s.asset, s.signal): s for s in specs if (s.asset, s.signal) not in self._ids}
            if not new:
                return
            first = len(self._ids) + 1
            rows = list(new.values())
            self._insert("series", pa.table({
                "id": pa.array(range(first, first + len(rows)), pa.int32()),
                "asset": [s.asset for s in rows], "signal": [s.signal for s in rows],
                "unit": [s.unit for s in rows], "discrete": [s.discrete for s in rows],
                "span": pa.array([s.span for s in rows], pa.float64(), from_pandas=True)}))
            for i, (key, spec) in enumerate(new.items()):
                self._ids[key], self._specs[key] = first + i, spec

    def specs(self) -> dict[tuple[str, str], SeriesSpec]:
        return dict(self._specs)

    def _ids_of(self, keys: Iterable[tuple[str, str]]) -> list[int]:
        """Series ids of ``keys``, declaring the unknown ones without a unit."""
        keys = list(keys)
        unknown = [SeriesSpec(a, s, "") for a, s in keys if (a, s) not in self._ids]
        if unknown:
            self.declare(unknown)
        return [self._ids[key] for key in keys]

    def append(self, batch: Sequence[SeriesPoints]) -> int:
        batch = [points for points in batch if len(points)]
        if not batch:
            return 0
        series = self._ids_of((p.asset, p.signal) for p in batch)
        ids = np.repeat(np.asarray(series, np.int32), [len(p) for p in batch])
        std = np.concatenate([p.std if p.std is not None else np.full(len(p), np.nan)
                              for p in batch])
        table = pa.table({
            "series": ids,
            "time": np.concatenate([p.time for p in batch]),
            "value": np.concatenate([p.value for p in batch]),
            "std": pa.array(std, mask=np.isnan(std)),
        })
        self._insert("points", table)
        low, high = float(table.column("time").to_numpy().min()), \
            float(table.column("time").to_numpy().max())
        with self._lock:
            self._extent = (low, high) if self._extent is None else (
                min(low, self._extent[0]), max(high, self._extent[1]))
        return int(ids.size)

    def append_cards(self, cards: Sequence[CardRecord]) -> int:
        """Store stroke card pairs (engine.history_cards); returns how many."""
        if cards:
            self._cursor().executemany(history_cards.insert("cards", "?"),
                                       [history_cards.row(c) for c in cards])
        return len(cards)

    def read_cards(self, asset: str, since: float, until: float,
                   limit: int) -> list[CardRecord]:
        """The newest ``limit`` cards of ``asset`` with since <= time <= until, oldest
        first."""
        rows = self._cursor().execute(history_cards.select("cards", "?"),
                                      [asset, since, until, limit]).fetchall()
        return history_cards.records(rows)

    def _insert(self, name: str, table: pa.Table) -> None:
        cursor = self._cursor()
        cursor.register("incoming", table)
        try:
            cursor.execute(f"INSERT INTO {name} SELECT * FROM incoming")
        finally:
            cursor.unregister("incoming")

    def read(self, keys: Sequence[tuple[str, str]], since: float, until: float, *,
             outside: bool = False) -> list[SeriesPoints]:
        known = [self._ids[k] for k in keys if k in self._ids]
        if not known:
            return [_empty(*k) for k in keys]
        cursor = self._cursor()
        parts = [cursor.sql(
            "SELECT series, time, value, std FROM points WHERE series IN ? AND time >= ? "
            "AND time <= ?", params=[known, since, until]).to_arrow_table()]
        if outside:
            parts += [self._nearest(cursor, known, since, before=True),
                      self._nearest(cursor, known, until, before=False)]
        return _split(pa.concat_tables(parts), keys, self._ids)

    def _nearest(self, cursor: duckdb.DuckDBPyConnection, ids: list[int], time: float,
                 before: bool) -> pa.Table:
        """Per series, the last point before ``time`` or the first after it, searched in
        growing windows (a bounded window lets the scan skip row groups)."""
        extent = self._extent
        if extent is None:
            return _EMPTY
        first, last = extent
        pick, compare = ("arg_max", "<") if before else ("arg_min", ">")
        found: list[pa.Table] = []
        missing, window = list(ids), LOOKBACK_S
        while missing:
            low, high = (time - window, time) if before else (time, time + window)
            table = cursor.sql(
                f"SELECT series, {pick}(time, time), {pick}(value, time), {pick}(std, time) "
                f"FROM points WHERE series IN ? AND time {compare} ? AND time >= ? "
                "AND time <= ? GROUP BY series",
                params=[missing, time, low, high]).to_arrow_table()
            found.append(table.rename_columns(["series", "time", "value", "std"]))
            missing = sorted(set(missing) - set(table.column(0).to_pylist()))
            if (low <= first) if before else (high >= last):
                break
            window *= 24
        return pa.concat_tables(found) if found else _EMPTY

    def write_rollups(self, interval_s: float, rollups: Sequence[Rollups],
                      watermark: float) -> None:
        series = self._ids_of((r.asset, r.signal) for r in rollups)
        tables = [pa.table({"series": np.full(r.start.size, id_, np.int32),
                            "interval_s": np.full(r.start.size, interval_s),
                            "start": r.start, **{n: r.columns[n] for n in AGGREGATES}})
                  for r, id_ in zip(rollups, series, strict=True)]
        cursor = self._cursor()
        cursor.execute("BEGIN")
        try:
            if tables:
                self._insert("rollups", pa.concat_tables(tables))
            cursor.execute("INSERT OR REPLACE INTO watermarks VALUES (?, ?)",
                           [interval_s, watermark])
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise

    def read_rollups(self, keys: Sequence[tuple[str, str]], interval_s: float, since: float,
                     until: float) -> list[Rollups]:
        known = [self._ids[k] for k in keys if k in self._ids]
        table = self._cursor().sql(
            f"SELECT series, start, {', '.join(AGGREGATES)} FROM rollups WHERE series IN ? "
            "AND interval_s = ? AND start >= ? AND start < ? ORDER BY series, start",
            params=[known or [-1], interval_s, since, until]).to_arrow_table()
        series = table.column("series").to_numpy()
        out = []
        for key in keys:
            rows = series == self._ids.get(key, -1)
            out.append(Rollups(*key, interval_s, table.column("start").to_numpy()[rows],
                               {n: table.column(n).to_numpy(zero_copy_only=False)[rows]
                                .astype(float) for n in AGGREGATES}))
        return out

    def watermark(self, interval_s: float) -> float | None:
        rows = self._cursor().execute("SELECT until FROM watermarks WHERE interval_s = ?",
                                      [interval_s]).fetchall()
        return rows[0][0] if rows else None

    def time_range(self) -> tuple[float, float] | None:
        return self._extent

    def delete_before(self, time: float, interval_s: float | None = None) -> None:
        if interval_s is None:
            self._cursor().execute("DELETE FROM points WHERE time < ?", [time])
        else:
            self._cursor().execute("DELETE FROM rollups WHERE interval_s = ? AND start < ?",
                                   [interval_s, time])

    def size_bytes(self) -> int:
        self._cursor().execute("CHECKPOINT")
        wal = self.path.with_name(self.path.name + ".wal")
        return self.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)

    def close(self) -> None:
        self._db.close()


_EMPTY = pa.table({"series": pa.array([], pa.int32()), "time": pa.array([], pa.float64()),
                   "value": pa.array([], pa.float64()), "std": pa.array([], pa.float64())})


def _empty(asset: str, signal: str) -> SeriesPoints:
    return SeriesPoints(asset, signal, np.empty(0), np.empty(0))


def _split(table: pa.Table, keys: Sequence[tuple[str, str]],
           ids: dict[tuple[str, str], int]) -> list[SeriesPoints]:
    """Rows (series, time, value, std) split per key (see split_rows)."""
    table = table.cast(_EMPTY.schema)
    std = table.column("std")
    return split_rows(table.column("series").to_numpy(), table.column("time").to_numpy(),
                      table.column("value").to_numpy(zero_copy_only=False),
                      std.to_numpy(zero_copy_only=False) if std.null_count < len(std) else None,
                      keys, ids)
