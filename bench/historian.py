"""What the historian's stores cost, against baselines measured in the same run.

    python bench/historian.py

Data: one day of 1-s samples of 10 signals of one asset (864,000 points: noisy sines,
ramps and steps, as measurements look), appended an hour at a time (36,000 points per
append, the writer's merged batches).

- Ingest, points/s: ``DuckDBStore.append`` of the day into a new file (median of 3),
  against writing the same hourly batches to a Parquet file with pyarrow (the baseline:
  a plain columnar write, no database; median of 3); ``PostgresStore.append`` (binary COPY into day partitions with their
  (series, time) index, on a throw-away server with fsync on) against a plain
  ``executemany`` INSERT of the same rows (measured on the first 20,000 points).
  ``writer_points_per_s``: TickRecords of 100 assets with 10 values each through
  ``HistoryWriter`` (points made from records, policy, append) into DuckDB.
- Query, ms (median of 5): the day's 10 signals raw (``Historian.recorded``) and at
  1-min aggregates, from the points and from the 1-min rollups; against reading the
  same points from the Parquet file (the baseline). Goal: <= 100 ms.
- Bytes per stored point: the store's size on disk over the points, against the
  in-memory size of the rows (series int32, time, value, std float64: 28 bytes).

Results are merged into ``bench/results.json`` under the key ``"historian"``.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.pg_server

import results_file

from engine.config import HistorianSettings
from engine.historian import Historian
from engine.history import SeriesPoints, TickRecord
from engine.history_duckdb import DuckDBStore
from engine.history_writer import HistoryWriter
from engine.messages import Measurement
from tests.pg_server import postgres_bin, temporary_postgres

DAY = 86400
SIGNALS = [f"signal_{i}" for i in range(10)]
T0 = 1.7e9 - 1.7e9 % DAY  # midnight UTC
ROW_BYTES = 4 + 8 + 8 + 8
REPEATS = 5
INGEST_REPEATS = 3


def day_of_data() -> list[list[SeriesPoints]]:
    """24 hourly batches of the 10 signals."""
    rng = np.random.default_rng(1)
    t = T0 + np.arange(DAY, dtype=float)
    values = []
    for i, _ in enumerate(SIGNALS):
        kind = i % 3
        if kind == 0:
            v = 400 + 10 * np.sin(2 * np.pi * t / (3600 * (i + 1))) + rng.normal(0, 0.05, DAY)
        elif kind == 1:
            v = np.cumsum(rng.normal(0, 0.01, DAY)) + 5.0
        else:
            v = np.repeat(rng.integers(0, 4, DAY // 600).astype(float), 600)
        values.append(np.round(v, 3))
    return [[SeriesPoints("asset-0", name, t[h * 3600:(h + 1) * 3600],
                          values[i][h * 3600:(h + 1) * 3600]) for i, name in enumerate(SIGNALS)]
            for h in range(24)]


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median_ms(action) -> float:
    return 1e3 * statistics.median(timed(action) for _ in range(REPEATS))


def parquet_baseline(batches, path: Path) -> tuple[float, float, int]:
    """(points/s written, ms to read the day back, file bytes) with plain pyarrow."""
    def write() -> None:
        writer = None
        for batch in batches:
            table = pa.table({
                "series": np.concatenate([np.full(len(p), i, np.int32)
                                          for i, p in enumerate(batch)]),
                "time": np.concatenate([p.time for p in batch]),
                "value": np.concatenate([p.value for p in batch]),
                "std": pa.nulls(sum(len(p) for p in batch), pa.float64())})
            writer = writer or pyarrow.parquet.ParquetWriter(path, table.schema)
            writer.write_table(table)
        writer.close()
    points = sum(len(p) for batch in batches for p in batch)
    rate = points / statistics.median(timed(write) for _ in range(INGEST_REPEATS))
    read_ms = median_ms(lambda: pyarrow.parquet.read_table(path).column("value").to_numpy())
    return rate, read_ms, path.stat().st_size


def duckdb_ingest_s(batches, directory: Path) -> float:
    """Median seconds of appending the day to a new DuckDB file."""
    def once(k: int) -> float:
        store = DuckDBStore(directory / f"ingest-{k}.duckdb")
        elapsed = timed(lambda: [store.append(batch) for batch in batches])
        store.close()
        return elapsed
    return statistics.median(once(k) for k in range(INGEST_REPEATS))


def measure_store(store, batches, ingest_s: float | None = None) -> dict:
    """Ingest (unless measured already: ``ingest_s``), the three queries and bytes per
    point of one store."""
    points = sum(len(p) for batch in batches for p in batch)
    appended = timed(lambda: [store.append(batch) for batch in batches])
    ingest_s = appended if ingest_s is None else ingest_s
    historian = Historian(store)
    since, until = T0, T0 + DAY
    raw_ms = median_ms(lambda: historian.recorded(["asset-0"], SIGNALS, since, until))
    raw_rows = sum(h.time.size for h in historian.recorded(["asset-0"], SIGNALS, since, until))
    aggregate_ms = median_ms(lambda: Historian(store, HistorianSettings(rollups=[])).aggregated(
        ["asset-0"], SIGNALS, since, until, 60))
    rollup_s = timed(lambda: historian.roll_up(until + 1))
    (minutes, *_) = historian.aggregated(["asset-0"], SIGNALS, since, until, 60)
    assert minutes.source == "rollup:60", minutes.source
    rollup_ms = median_ms(lambda: historian.aggregated(["asset-0"], SIGNALS, since, until, 60))
    return {"points": points, "ingest_points_per_s": points / ingest_s,
            "raw_query_ms": raw_ms, "raw_query_points": raw_rows,
            "aggregate_1min_from_points_ms": aggregate_ms,
            "aggregate_1min_from_rollups_ms": rollup_ms, "rollup_day_s": rollup_s,
            "bytes_per_point": store.size_bytes() / points}


def writer_rate(path: Path) -> float:
    """Points/s through HistoryWriter: 100 assets x 10 measured values per tick."""
    store = DuckDBStore(path)
    writer = HistoryWriter(Historian(store), queue_batches=100_000, maintain_every_s=1e12)
    ticks = [[TickRecord(f"asset-{a}", T0 + k, Measurement(
        f"asset-{a}", T0 + k, {name: float(k + a) for name in SIGNALS})) for a in range(100)]
        for k in range(600)]

    def run() -> None:
        for batch in ticks:
            writer.submit(batch)
        writer.flush()
    elapsed = timed(run)
    stats = writer.stats()
    writer.close()
    store.close()
    if stats.dropped_records:
        raise RuntimeError(f"the writer dropped {stats.dropped_records} records")
    return stats.written_points / elapsed


def insert_loop_rate(dsn: str, batches) -> float:
    """Points/s of a plain executemany INSERT (the first 20,000 points)."""
    import psycopg

    rows = [(i, float(t), float(v)) for i, p in enumerate(batches[0])
            for t, v in zip(p.time[:2000], p.value[:2000])]
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("CREATE TABLE baseline (series integer, time double precision, "
                           "value double precision, std double precision)")
        with connection.cursor() as cursor:
            elapsed = timed(lambda: cursor.executemany(
                "INSERT INTO baseline (series, time, value) VALUES (%s, %s, %s)", rows))
    return len(rows) / elapsed


def main() -> None:
    batches = day_of_data()
    result: dict = {"when": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": platform.processor() or platform.machine(),
                    "points_per_day": DAY * len(SIGNALS), "signals": len(SIGNALS)}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        rate, read_ms, parquet_bytes = parquet_baseline(batches, directory / "day.parquet")
        result["baseline"] = {"parquet_write_points_per_s": rate, "parquet_read_day_ms": read_ms,
                              "parquet_bytes_per_point": parquet_bytes / (DAY * len(SIGNALS)),
                              "row_bytes": ROW_BYTES}
        ingest_s = duckdb_ingest_s(batches, directory)
        store = DuckDBStore(directory / "history.duckdb")
        duck = measure_store(store, batches, ingest_s)
        store.close()
        duck["ingest_vs_parquet_write"] = duck["ingest_points_per_s"] / rate
        duck["raw_query_vs_parquet_read"] = duck["raw_query_ms"] / read_ms
        duck["bytes_per_point_vs_row"] = duck["bytes_per_point"] / ROW_BYTES
        duck["writer_points_per_s"] = writer_rate(directory / "writer.duckdb")
        result["duckdb"] = duck
    if postgres_bin() is None:
        result["postgres"] = {"skipped": "PostgreSQL is not installed"}
    else:
        from engine.history_postgres import PostgresStore
        with temporary_postgres(durable=True) as dsn:
            store = PostgresStore(dsn)
            pg = measure_store(store, batches)
            store.close()
            baseline = insert_loop_rate(dsn, batches)
        pg["insert_loop_points_per_s"] = baseline
        pg["ingest_vs_insert_loop"] = pg["ingest_points_per_s"] / baseline
        pg["raw_query_vs_parquet_read"] = pg["raw_query_ms"] / read_ms
        pg["bytes_per_point_vs_row"] = pg["bytes_per_point"] / ROW_BYTES
        result["postgres"] = pg
    result["goals"] = {
        "duckdb_ingest_at_least_1e6_points_per_s": result["duckdb"]["ingest_points_per_s"] >= 1e6,
        "duckdb_raw_day_query_at_most_100_ms": result["duckdb"]["raw_query_ms"] <= 100,
        "duckdb_1min_day_query_at_most_100_ms":
            result["duckdb"]["aggregate_1min_from_rollups_ms"] <= 100}
    results_file.save("historian", result)
    print(__import__("json").dumps(result, indent=2))


if __name__ == "__main__":
    main()
