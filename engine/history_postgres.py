"""The scale-out history store: PostgreSQL through psycopg 3 (see engine.history_store).

Tables (prefix ``history_``): ``series``, ``points (series, time, value, std)``
range-partitioned by UTC day on ``time`` (declarative partitioning; a partition
``history_points_d<day number>`` is created on the first point of its day, and retention
drops whole partitions), with a B-tree on (series, time) in every partition; ``rollups``
and ``watermarks``. Points go in and out by binary COPY built and parsed with NumPy, so
no Python object is made per point. Each thread has its own autocommit connection.

TimescaleDB's hypertables would do the partitioning themselves; plain declarative
partitioning needs no extension, so it is used wherever PostgreSQL >= 11 runs.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Iterable, Sequence

import numpy as np
import psycopg
from psycopg import sql

from engine import history_cards
from engine.cards import CardRecord
from engine.history import SeriesPoints, SeriesSpec
from engine.history_query import AGGREGATES
from engine.history_store import Rollups, split_rows

DAY_S = 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history_series (id serial PRIMARY KEY, asset text NOT NULL,
    signal text NOT NULL, unit text NOT NULL, discrete boolean NOT NULL,
    span double precision, UNIQUE (asset, signal));
CREATE TABLE IF NOT EXISTS history_points (series integer NOT NULL,
    time double precision NOT NULL, value double precision, std double precision)
    PARTITION BY RANGE (time);
CREATE INDEX IF NOT EXISTS history_points_series_time ON history_points (series, time);
CREATE TABLE IF NOT EXISTS history_rollups (series integer NOT NULL,
    interval_s double precision NOT NULL, start double precision NOT NULL,
    min double precision, max double precision, mean double precision,
    last double precision, count double precision, twmean double precision,
    PRIMARY KEY (series, interval_s, start));
CREATE TABLE IF NOT EXISTS history_watermarks (interval_s double precision PRIMARY KEY,
    until double precision NOT NULL);
"""

_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
_WIDTH = {"i4": 4, "f8": 8}


def _row_type(columns: Sequence[tuple[str, str]]) -> np.dtype:
    """The binary COPY row of fixed-width, non-null ``columns`` (name, "i4" | "f8")."""
    fields: list[tuple[str, str]] = [("fields", ">i2")]
    for name, kind in columns:
        fields += [(f"{name}_length", ">i4"), (name, f">{kind}")]
    return np.dtype(fields)


def _encode(columns: Sequence[tuple[str, str]], values: dict[str, np.ndarray]) -> bytes:
    """Binary COPY data of ``values`` (one array per column)."""
    n = len(next(iter(values.values())))
    rows = np.empty(n, _row_type(columns))
    rows["fields"] = len(columns)
    for name, kind in columns:
        rows[f"{name}_length"] = _WIDTH[kind]
        rows[name] = values[name]
    return _HEADER + rows.tobytes() + _TRAILER


def _decode(columns: Sequence[tuple[str, str]], data: bytes) -> np.ndarray:
    """Rows of binary COPY ``data`` whose columns are fixed-width and never null."""
    body = memoryview(data)[len(_HEADER): len(data) - len(_TRAILER)]
    return np.frombuffer(body, _row_type(columns))


_POINT = (("series", "i4"), ("time", "f8"), ("value", "f8"), ("std", "f8"))
_ROLLUP = (("series", "i4"), ("interval_s", "f8"), ("start", "f8"),
           *((name, "f8") for name in AGGREGATES))


class PostgresStore:
    """HistoryStore on the PostgreSQL database at ``dsn`` (tables made if missing)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._local = threading.local()
        self._lock = threading.RLock()  # declare holds it and may open a connection
        self._connections: list[psycopg.Connection] = []
        self._partitions: set[int] = set()
        self._ids: dict[tuple[str, str], int] = {}
        self._specs: dict[tuple[str, str], SeriesSpec] = {}
        connection = self._connection()
        connection.execute(_SCHEMA)
        connection.execute(history_cards.create_table(
            "history_cards", "double precision", "double precision[]", "boolean", "text"))
        self._load_series()

    def _connection(self) -> psycopg.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = self._local.connection = psycopg.connect(self.dsn, autocommit=True)
            with self._lock:
                self._connections.append(connection)
        return connection

    def _load_series(self) -> None:
        rows = self._connection().execute(
            "SELECT id, asset, signal, unit, discrete, span FROM history_series").fetchall()
        for id_, asset, signal, unit, discrete, span in rows:
            self._ids[(asset, signal)] = id_
            self._specs[(asset, signal)] = SeriesSpec(asset, signal, unit, discrete,
                                                      math.nan if span is None else span)

    def declare(self, specs: Iterable[SeriesSpec]) -> None:
        with self._lock:
            new = [s for s in specs if (s.asset, s.signal) not in self._ids]
            if not new:
                return
            connection = self._connection()
            with connection.transaction(), connection.cursor() as cursor:  # one commit
                cursor.executemany(
                    "INSERT INTO history_series (asset, signal, unit, discrete, span) "
                    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (asset, signal) DO NOTHING",
                    [(s.asset, s.signal, s.unit, s.discrete,
                      None if math.isnan(s.span) else s.span) for s in new])
            self._load_series()

    def specs(self) -> dict[tuple[str, str], SeriesSpec]:
        return dict(self._specs)

    def _ids_of(self, keys: Iterable[tuple[str, str]]) -> list[int]:
        """Series ids of ``keys``, declaring the unknown ones without a unit."""
        keys = list(keys)
        unknown = [SeriesSpec(a, s, "") for a, s in keys if (a, s) not in self._ids]
        if unknown:
            self.declare(unknown)
        return [self._ids[key] for key in keys]

    def _ensure_partitions(self, times: np.ndarray) -> None:
        days = set(np.unique(np.floor(times / DAY_S)).astype(int).tolist()) - self._partitions
        connection = self._connection()
        for day in sorted(days):
            try:
                connection.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} PARTITION OF history_points "
                    "FOR VALUES FROM ({}) TO ({})").format(
                        sql.Identifier(f"history_points_d{day}"), sql.Literal(day * DAY_S),
                        sql.Literal((day + 1) * DAY_S)))
            except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
                pass  # another writer made it at the same moment
            self._partitions.add(day)

    def append(self, batch: Sequence[SeriesPoints]) -> int:
        batch = [points for points in batch if len(points)]
        if not batch:
            return 0
        values = {
            "series": np.repeat(np.asarray(self._ids_of((p.asset, p.signal) for p in batch),
                                           np.int32), [len(p) for p in batch]),
            "time": np.concatenate([p.time for p in batch]),
            "value": np.concatenate([p.value for p in batch]),
            "std": np.concatenate([p.std if p.std is not None else np.full(len(p), np.nan)
                                   for p in batch]),
        }
        self._ensure_partitions(values["time"])
        with self._connection().cursor() as cursor, cursor.copy(
                "COPY history_points (series, time, value, std) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.write(_encode(_POINT, values))
        return int(values["series"].size)

    def append_cards(self, cards: Sequence[CardRecord]) -> int:
        """Store stroke card pairs (engine.history_cards); returns how many."""
        if cards:
            with self._connection().cursor() as cursor:
                cursor.executemany(history_cards.insert("history_cards", "%s"),
                                   [history_cards.row(c) for c in cards])
        return len(cards)

    def read_cards(self, asset: str, since: float, until: float,
                   limit: int) -> list[CardRecord]:
        """The newest ``limit`` cards of ``asset`` with since <= time <= until, oldest
        first."""
        rows = self._connection().execute(history_cards.select("history_cards", "%s"),
                                          [asset, since, until, limit]).fetchall()
        return history_cards.records(rows)

    def _copy_out(self, query: sql.Composable, columns: Sequence[tuple[str, str]]) -> np.ndarray:
        data = bytearray()
        with self._connection().cursor() as cursor, cursor.copy(
                sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)) as copy:
            for chunk in copy:
                data += chunk
        return _decode(columns, bytes(data))

    def _copy_series(self, ids: list[int], since: float, until: float) -> np.ndarray:
        """Points of series ``ids`` in [since, until] as _POINT rows. The server sends one
        row of three float8 arrays per series (a COPY row per point would cost a Python
        call per point), parsed here with NumPy; split_rows puts them in time order."""
        data = bytearray()
        with self._connection().cursor() as cursor, cursor.copy(sql.SQL(
                "COPY (SELECT series, array_agg(time), array_agg(coalesce(value, 'NaN')), "
                "array_agg(coalesce(std, 'NaN')) "
                "FROM history_points WHERE series = ANY({}) AND time >= {} AND time <= {} "
                "GROUP BY series) TO STDOUT (FORMAT BINARY)").format(
                    sql.Literal(ids), sql.Literal(since), sql.Literal(until))) as copy:
            for chunk in copy:
                data += chunk
        parts, position = [], len(_HEADER)
        while struct.unpack_from(">h", data, position)[0] != -1:
            position += 2 + 4
            (series,) = struct.unpack_from(">i", data, position)
            position += 4
            columns = []
            for _ in range(3):  # float8[]: ndim, flags, oid, (size, lower bound), elements
                (length,) = struct.unpack_from(">i", data, position)
                (size,) = struct.unpack_from(">i", data, position + 16)
                elements = np.frombuffer(data, np.dtype([("length", ">i4"), ("value", ">f8")]),
                                         size, position + 4 + 20)
                columns.append(elements["value"])
                position += 4 + length
            rows = np.empty(size, _row_type(_POINT))
            rows["series"], rows["time"], rows["value"], rows["std"] = series, *columns
            parts.append(rows)
        return np.concatenate(parts) if parts else np.empty(0, _row_type(_POINT))

    def read(self, keys: Sequence[tuple[str, str]], since: float, until: float, *,
             outside: bool = False) -> list[SeriesPoints]:
        ids = [self._ids[k] for k in keys if k in self._ids]
        parts = [self._copy_series(ids, since, until)]
        if outside:
            for compare, order, at in (("<", "DESC", since), (">", "ASC", until)):
                parts.append(self._copy_out(sql.SQL(
                    "SELECT s.id, p.time, p.value, coalesce(p.std, 'NaN') "
                    "FROM unnest({}::integer[]) AS s(id) CROSS JOIN LATERAL "
                    "(SELECT time, value, std FROM history_points WHERE series = s.id "
                    f"AND time {compare} {{}} ORDER BY time {order} LIMIT 1) AS p").format(
                        sql.Literal(ids), sql.Literal(at)), _POINT))
        rows = np.concatenate(parts)
        return split_rows(rows["series"].astype(np.int32), rows["time"], rows["value"],
                          rows["std"], keys, self._ids)

    def write_rollups(self, interval_s: float, rollups: Sequence[Rollups],
                      watermark: float) -> None:
        with self._connection().transaction(), self._connection().cursor() as cursor:
            if rollups:
                values = {
                    "series": np.repeat(np.asarray(self._ids_of((r.asset, r.signal)
                                                                for r in rollups), np.int32),
                                        [r.start.size for r in rollups]),
                    "interval_s": np.concatenate([np.full(r.start.size, interval_s)
                                                  for r in rollups]),
                    "start": np.concatenate([r.start for r in rollups]),
                    **{n: np.concatenate([r.columns[n] for r in rollups]) for n in AGGREGATES},
                }
                with cursor.copy(f"COPY history_rollups ({', '.join(n for n, _ in _ROLLUP)}) "
                                 "FROM STDIN (FORMAT BINARY)") as copy:
                    copy.write(_encode(_ROLLUP, values))
            cursor.execute("INSERT INTO history_watermarks VALUES (%s, %s) ON CONFLICT "
                           "(interval_s) DO UPDATE SET until = excluded.until",
                           (interval_s, watermark))

    def read_rollups(self, keys: Sequence[tuple[str, str]], interval_s: float, since: float,
                     until: float) -> list[Rollups]:
        ids = [self._ids[k] for k in keys if k in self._ids]
        rows = self._copy_out(sql.SQL(
            f"SELECT {', '.join(n for n, _ in _ROLLUP)} FROM history_rollups "
            "WHERE series = ANY({}) AND interval_s = {} AND start >= {} AND start < {} "
            "ORDER BY series, start").format(sql.Literal(ids), sql.Literal(interval_s),
                                             sql.Literal(since), sql.Literal(until)), _ROLLUP)
        out = []
        for key in keys:
            mine = rows[rows["series"] == self._ids.get(key, -1)]
            out.append(Rollups(*key, interval_s, mine["start"].astype(float),
                               {n: mine[n].astype(float) for n in AGGREGATES}))
        return out

    def watermark(self, interval_s: float) -> float | None:
        row = self._connection().execute(
            "SELECT until FROM history_watermarks WHERE interval_s = %s",
            (interval_s,)).fetchone()
        return None if row is None else row[0]

    def time_range(self) -> tuple[float, float] | None:
        row = self._connection().execute(
            "SELECT min(time), max(time) FROM history_points").fetchone()
        return None if row is None or row[0] is None else (row[0], row[1])

    def delete_before(self, time: float, interval_s: float | None = None) -> None:
        connection = self._connection()
        if interval_s is not None:
            connection.execute("DELETE FROM history_rollups WHERE interval_s = %s AND start < %s",
                               (interval_s, time))
            return
        names = [name for (name,) in connection.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'history_points'::regclass").fetchall()]
        for name in names:
            day = int(name.removeprefix("history_points_d"))
            if (day + 1) * DAY_S <= time:
                connection.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                self._partitions.discard(day)

    def size_bytes(self) -> int:
        row = self._connection().execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "WHERE c.relname LIKE 'history\\_%' AND c.relkind = 'r'").fetchone()
        return 0 if row is None else int(row[0])

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
