"""The storage interface of the historian, and the choice of backend from the site file.

Two backends implement :class:`HistoryStore`:

- ``engine.history_duckdb.DuckDBStore`` (the embedded default): one file under
  ``var/``, no server. DuckDB is columnar and in-process: appends of Arrow batches run
  at millions of points per second, aggregates are vectorised scans, each column is
  compressed (the series id run-length, times and values with ALP), and the same engine
  writes Parquet. One process writes a file (a historian actor, or one file per shard).
- ``engine.history_postgres.PostgresStore`` (scale-out): PostgreSQL through psycopg 3,
  points in a table range-partitioned by day (declarative partitioning; retention drops
  whole partitions), an index on (series, time) per partition, ingest by binary COPY.
  Many writers may share one server.

Both store points in the long/narrow model of ``engine.history`` and rollups per
interval; queries (``engine.historian.Historian``) are computed from what they return.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine.cards import CardRecord
from engine.history import SeriesPoints, SeriesSpec


@dataclass(frozen=True)
class Rollups:
    """Stored aggregates of one series at one interval: ``start`` of each interval (UNIX
    s) and a column per name of ``engine.history_query.AGGREGATES``."""

    asset: str
    signal: str
    interval_s: float
    start: np.ndarray
    columns: dict[str, np.ndarray]


def split_rows(series: np.ndarray, time: np.ndarray, value: np.ndarray,
               std: np.ndarray | None, keys: Sequence[tuple[str, str]],
               ids: dict[tuple[str, str], int]) -> list[SeriesPoints]:
    """One SeriesPoints per key, in time order, from rows of series ids; a series whose
    std is NaN (or NULL) throughout gets ``std`` None."""
    series = np.asarray(series, np.int64)  # searched with Python ints: no copy per search
    order = np.argsort(series, kind="stable")  # a series' rows mostly come in time order
    series = series[order]
    time, value = time.astype(float, copy=False)[order], value.astype(float, copy=False)[order]
    std = None if std is None else std.astype(float, copy=False)[order]
    out = []
    for key in keys:
        id_ = ids.get(key, -1)
        rows = slice(np.searchsorted(series, id_), np.searchsorted(series, id_, side="right"))
        t, v, e = time[rows], value[rows], None if std is None else std[rows]
        if t.size > 1 and not (np.diff(t) >= 0).all():
            by_time = np.argsort(t, kind="stable")
            t, v, e = t[by_time], v[by_time], None if e is None else e[by_time]
        out.append(SeriesPoints(*key, t, v, None if e is None or np.isnan(e).all() else e))
    return out


class HistoryStore(Protocol):
    """Where points and rollups live. Every method may be called from any thread."""

    def declare(self, specs: Iterable[SeriesSpec]) -> None:
        """Register series with their units (a known series keeps its first spec)."""
        ...

    def specs(self) -> dict[tuple[str, str], SeriesSpec]:
        """Every known series by (asset, signal)."""
        ...

    def append(self, batch: Sequence[SeriesPoints]) -> int:
        """Store the points (undeclared series are declared without a unit); returns
        how many were stored."""
        ...

    def read(self, keys: Sequence[tuple[str, str]], since: float, until: float, *,
             outside: bool = False) -> list[SeriesPoints]:
        """Points of each (asset, signal) with since <= time <= until, in time order;
        ``outside`` adds the last point before ``since`` and the first after ``until``."""
        ...

    def write_rollups(self, interval_s: float, rollups: Sequence[Rollups],
                      watermark: float) -> None:
        """Store rollup rows of ``interval_s`` and mark it rolled up to ``watermark``, in
        one transaction."""
        ...

    def read_rollups(self, keys: Sequence[tuple[str, str]], interval_s: float, since: float,
                     until: float) -> list[Rollups]:
        """Rollup rows of each series at ``interval_s`` starting in [since, until)."""
        ...

    def watermark(self, interval_s: float) -> float | None:
        """Time up to which ``interval_s`` rollups are complete (None: never rolled up)."""
        ...

    def time_range(self) -> tuple[float, float] | None:
        """(first, last) recorded point time, None when empty; after a delete ``first``
        may lie before the first point left."""
        ...

    def delete_before(self, time: float, interval_s: float | None = None) -> None:
        """Drop raw points (``interval_s`` None) or rollups of ``interval_s`` before
        ``time``; a partitioned backend drops only whole partitions before it."""
        ...

    def size_bytes(self) -> int:
        """Bytes the store occupies on disk."""
        ...

    def append_cards(self, cards: Sequence[CardRecord]) -> int:
        """Store stroke card pairs (engine.history_cards); returns how many."""
        ...

    def read_cards(self, asset: str, since: float, until: float,
                   limit: int) -> list[CardRecord]:
        """The newest ``limit`` cards of ``asset`` with since <= time <= until, oldest
        first."""
        ...

    def close(self) -> None: ...
