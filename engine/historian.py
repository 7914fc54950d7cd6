"""Historian: queries, rollups, retention and export over a HistoryStore, without Ray.

The fleet's historian actor (or one writer per shard) is a thin layer over this and
:class:`engine.history_writer.HistoryWriter`: it opens the store of the site file's
``[historian]`` (:func:`open_store`), declares each asset's series
(``engine.history.history_signals``), hands every tick's TickRecords to the writer, and
answers HTTP queries with the methods below. Query modes and boundary rules are in
``engine.history_query``; every answer carries each series' SI unit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet

from engine.config import HistorianSettings
from engine.history import SeriesSpec
from engine.history_query import aggregate, check_range, combine_rollups, interpolate
from engine.history_store import HistoryStore, Rollups

Boundary = Literal["inside", "outside"]
ROLLUP_CHUNK_S = 3600.0
ROLLUP_SERIES = 256
"""Raw points are rolled up an hour (or one interval) and 256 series at a time, to bound
memory: under a million points per read at 1-s sampling."""


@dataclass(frozen=True)
class SeriesHistory:
    """A query's answer for one series: ``time`` (UNIX s: point times, interpolation
    times or interval starts) and one array per column (``value`` and ``std`` for raw,
    ``value`` for interpolated, AGGREGATES for aggregates), in ``unit`` (SI).
    ``source`` says where it came from: ``raw`` or ``rollup:<interval s>``."""

    asset: str
    signal: str
    unit: str
    mode: str
    time: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "raw"

    def as_dict(self) -> dict:
        """JSON-ready: NaN becomes None."""
        def clean(values: np.ndarray) -> list:
            return [None if math.isnan(v) else v for v in values.tolist()]
        return {"asset": self.asset, "signal": self.signal, "unit": self.unit,
                "mode": self.mode, "source": self.source, "time": self.time.tolist(),
                **{name: clean(values) for name, values in self.columns.items()}}


def open_store(settings: HistorianSettings) -> HistoryStore:
    """The store the site file's ``[historian]`` selects."""
    if settings.backend == "postgres":
        from engine.history_postgres import PostgresStore
        return PostgresStore(settings.dsn)
    from engine.history_duckdb import DuckDBStore
    return DuckDBStore(settings.path)


class Historian:
    """Queries over ``store``; rollups and retention by ``settings``."""

    def __init__(self, store: HistoryStore, settings: HistorianSettings | None = None) -> None:
        self.store = store
        self.settings = settings or HistorianSettings()

    def _keys(self, assets: Iterable[str], signals: Iterable[str]) -> list[SeriesSpec]:
        """The recorded series of every asset and signal asked for; each signal must be
        recorded for at least one of the assets."""
        known = self.store.specs()
        assets, signals = list(assets), list(signals)
        specs = [known[(a, s)] for a in assets for s in signals if (a, s) in known]
        for signal in signals:
            if not any(spec.signal == signal for spec in specs):
                names = sorted({s for (a, s) in known if a in assets})
                raise ValueError(f"signal {signal!r}: not recorded for asset(s) "
                                 f"{', '.join(assets)}; recorded: {', '.join(names)}")
        return specs

    def recorded(self, assets: Iterable[str], signals: Iterable[str], since: float,
                 until: float, boundary: Boundary = "inside") -> list[SeriesHistory]:
        """The stored points in [since, until] (boundary "inside"), or those and the
        points just outside it (boundary "outside")."""
        check_range(since, until)
        if boundary not in ("inside", "outside"):
            raise ValueError(f"boundary: {boundary!r} is not 'inside' or 'outside'")
        specs = self._keys(assets, signals)
        read = self.store.read([(s.asset, s.signal) for s in specs], since, until,
                               outside=boundary == "outside")
        return [SeriesHistory(s.asset, s.signal, s.unit, "recorded", p.time,
                              {"value": p.value,
                               "std": p.std if p.std is not None else np.full(len(p), np.nan)})
                for s, p in zip(specs, read, strict=True)]

    def interpolated(self, assets: Iterable[str], signals: Iterable[str], since: float,
                     until: float, step: float) -> list[SeriesHistory]:
        """Values at since + k step (<= until): linear, or held for discrete signals."""
        n = check_range(since, until, step)
        times = since + step * np.arange(n + 1, dtype=float)
        times = times[times <= until]
        specs = self._keys(assets, signals)
        read = self.store.read([(s.asset, s.signal) for s in specs], since, until, outside=True)
        return [SeriesHistory(s.asset, s.signal, s.unit, "interpolated", times,
                              {"value": interpolate(p, times, s.discrete)})
                for s, p in zip(specs, read, strict=True)]

    def aggregated(self, assets: Iterable[str], signals: Iterable[str], since: float,
                   until: float, step: float) -> list[SeriesHistory]:
        """AGGREGATES per interval [since + k step, since + (k+1) step). From the
        coarsest rollup whose interval divides ``step`` and ``since`` and that is
        complete up to ``until``; else from the raw points."""
        check_range(since, until, step)
        specs = self._keys(assets, signals)
        keys = [(s.asset, s.signal) for s in specs]
        interval = self._rollup_for(since, until, step)
        if interval is not None:
            rollups = self.store.read_rollups(keys, interval, since, until)
            out = []
            for s, r in zip(specs, rollups, strict=True):
                starts, columns = combine_rollups(r.start, r.columns, interval, since, until,
                                                  step)
                out.append(SeriesHistory(s.asset, s.signal, s.unit, "aggregate", starts,
                                         columns, f"rollup:{interval:g}"))
            return out
        read = self.store.read(keys, since, until, outside=True)
        return [SeriesHistory(s.asset, s.signal, s.unit, "aggregate",
                              *aggregate(p, since, until, step, s.discrete))
                for s, p in zip(specs, read, strict=True)]

    def _rollup_for(self, since: float, until: float, step: float) -> float | None:
        for rollup in sorted(self.settings.rollups, key=lambda r: -r.interval_s):
            interval = rollup.interval_s
            aligned = math.isclose(step / interval, round(step / interval)) and \
                math.isclose(since / interval, round(since / interval))
            watermark = self.store.watermark(interval) if aligned else None
            if watermark is not None and until <= watermark:
                return interval
        return None

    def roll_up(self, until: float) -> None:
        """Store every rollup interval's aggregates of all series for the intervals
        complete before ``until`` and not rolled up yet."""
        specs = self.store.specs()
        keys = list(specs)
        span = self.store.time_range()
        if span is None or not keys:
            return
        for rollup in self.settings.rollups:
            interval = rollup.interval_s
            start = self.store.watermark(interval)
            if start is None:
                start = math.floor(span[0] / interval) * interval
            end = math.floor(until / interval) * interval
            while start < end:
                stop = min(end, start + max(interval, ROLLUP_CHUNK_S // interval * interval))
                rows = []
                for first in range(0, len(keys), ROLLUP_SERIES):
                    group = keys[first: first + ROLLUP_SERIES]
                    read = self.store.read(group, start, stop, outside=True)
                    for (asset, signal), points in zip(group, read, strict=True):
                        discrete = specs[(asset, signal)].discrete
                        starts, columns = aggregate(points, start, stop, interval, discrete)
                        keep = (columns["count"] > 0) | np.isfinite(columns["twmean"])
                        if keep.any():
                            rows.append(Rollups(asset, signal, interval, starts[keep],
                                                {n: c[keep] for n, c in columns.items()}))
                self.store.write_rollups(interval, rows, stop)
                start = stop

    def retain(self, now: float) -> None:
        """Drop raw points older than ``raw_retention_s`` (only those already rolled up
        into every rollup interval) and rollups older than their retention."""
        cutoff = now - self.settings.raw_retention_s
        for rollup in self.settings.rollups:
            watermark = self.store.watermark(rollup.interval_s)
            cutoff = min(cutoff, -math.inf if watermark is None else watermark)
            if math.isfinite(rollup.retention_s):
                self.store.delete_before(now - rollup.retention_s, rollup.interval_s)
        if math.isfinite(cutoff):
            self.store.delete_before(cutoff)


def to_table(history: Sequence[SeriesHistory]) -> pa.Table:
    """One long table of ``history``: asset, signal, unit, mode, time and the columns."""
    names = list(dict.fromkeys(n for h in history for n in h.columns))
    def text(value: str, size: int) -> pa.Array:  # typed: an empty series is no null column
        return pa.array([value] * size, pa.string())

    tables = [pa.table({"asset": text(h.asset, h.time.size),
                        "signal": text(h.signal, h.time.size),
                        "unit": text(h.unit, h.time.size), "mode": text(h.mode, h.time.size),
                        "time": pa.array(h.time, pa.float64()),
                        **{n: pa.array(h.columns.get(n, np.full(h.time.size, np.nan)),
                                       pa.float64(), from_pandas=True) for n in names}})
              for h in history]
    return pa.concat_tables(tables) if tables else pa.table({})


def export(history: Sequence[SeriesHistory], path: str | Path) -> int:
    """Write ``history`` as Parquet (``.parquet``) or CSV (``.csv``); returns rows.
    NaN is written as an empty (null) value."""
    path = Path(path)
    table = to_table(history)
    if path.suffix == ".parquet":
        pyarrow.parquet.write_table(table, path)
    elif path.suffix == ".csv":
        pyarrow.csv.write_csv(table, path)
    else:
        raise ValueError(f"export path {str(path)!r}: the suffix must be .parquet or .csv")
    return table.num_rows
