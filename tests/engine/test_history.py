"""The historian's storage half: stores (DuckDB, and PostgreSQL on a real server),
query modes against known signals, rollups, retention and export."""

from __future__ import annotations

import math

import numpy as np
import pyarrow.csv
import pyarrow.parquet
import pytest

from engine.config import ConfigError, HistorianSettings, parse_site
from engine.historian import Historian, export
from engine.history import SeriesPoints, SeriesSpec
from engine.history_duckdb import DuckDBStore
from engine.history_policy import RollupPolicy

T = np.arange(0.0, 3600.0)
"""One hour of 1-s samples."""
MODE_TIMES, MODE_VALUES = np.array([0.0, 100.0, 200.0]), np.array([1.0, 3.0, 2.0])


def _store(kind: str, tmp_path, request):
    if kind == "duckdb":
        return DuckDBStore(tmp_path / "var" / "history.duckdb")
    from engine.history_postgres import PostgresStore
    return PostgresStore(request.getfixturevalue("postgres_dsn"))


@pytest.fixture(params=["duckdb", "postgres"])
def store(request, tmp_path):
    """A store holding a ramp 2t K (std 0.1 K), a sine of period 60 s and a discrete mode
    of asset "a", and the ramp 3t K of asset "b"."""
    store = _store(request.param, tmp_path, request)
    store.declare([SeriesSpec("a", "ramp", "K"), SeriesSpec("a", "sine", "1"),
                   SeriesSpec("a", "mode", "", discrete=True), SeriesSpec("b", "ramp", "K")])
    store.append([SeriesPoints("a", "ramp", T, 2 * T, np.full(T.size, 0.1)),
                  SeriesPoints("a", "sine", T, np.sin(2 * np.pi * T / 60)),
                  SeriesPoints("a", "mode", MODE_TIMES, MODE_VALUES),
                  SeriesPoints("b", "ramp", T, 3 * T)])
    yield store
    store.close()


def test_recorded_inside_and_outside_boundaries(store):
    historian = Historian(store)
    (inside,) = historian.recorded(["a"], ["ramp"], 10.5, 12.5)
    assert inside.unit == "K"
    assert inside.time.tolist() == [11.0, 12.0]
    assert inside.columns["value"].tolist() == [22.0, 24.0]
    assert inside.columns["std"].tolist() == [0.1, 0.1]
    (outside,) = historian.recorded(["a"], ["ramp"], 10.5, 12.5, boundary="outside")
    assert outside.time.tolist() == [10.0, 11.0, 12.0, 13.0]
    (mode,) = historian.recorded(["a"], ["mode"], 150, 160, boundary="outside")
    assert mode.time.tolist() == [100.0, 200.0]  # nothing inside, the neighbours outside


def test_one_query_spans_many_assets_with_units(store):
    answers = Historian(store).recorded(["a", "b"], ["ramp"], 5, 6)
    assert [(h.asset, h.unit, h.columns["value"].tolist()) for h in answers] == [
        ("a", "K", [10.0, 12.0]), ("b", "K", [15.0, 18.0])]
    with pytest.raises(ValueError, match="signal 'T_bulk': not recorded for asset"):
        Historian(store).recorded(["a"], ["T_bulk"], 0, 1)
    with pytest.raises(ValueError, match="until 1.0 s is before since 2.0 s"):
        Historian(store).recorded(["a"], ["ramp"], 2.0, 1.0)
    with pytest.raises(ValueError, match="step: must be positive seconds, got 0"):
        Historian(store).aggregated(["a"], ["ramp"], 0.0, 1.0, 0)
    # found by schemathesis: a span beyond a float overflowed (a 500)
    with pytest.raises(ValueError, match="is not a finite span"):
        Historian(store).interpolated(["a"], ["ramp"], -1.7976931348623157e308, 5e302, 3.7e16)
    with pytest.raises(ValueError, match="boundary: 'interpolated' is not 'inside' or"):
        Historian(store).recorded(["a"], ["ramp"], 0.0, 1.0, "interpolated")


def test_interpolated_is_linear_between_points_and_a_step_for_discrete_signals(store):
    historian = Historian(store)
    ramp, sine, mode = historian.interpolated(["a"], ["ramp", "sine", "mode"], 10.25, 12.25,
                                              0.5)
    assert ramp.time.tolist() == [10.25, 10.75, 11.25, 11.75, 12.25]
    np.testing.assert_allclose(ramp.columns["value"], 2 * ramp.time)
    # between the samples at 10 s and 11 s the sine is the chord, not the sine
    s10, s11 = np.sin(2 * np.pi * 10 / 60), np.sin(2 * np.pi * 11 / 60)
    assert sine.columns["value"][0] == pytest.approx(0.75 * s10 + 0.25 * s11)
    assert mode.columns["value"].tolist() == [1.0] * 5
    (mode,) = historian.interpolated(["a"], ["mode"], -50, 5000, 50)
    values = dict(zip(mode.time.tolist(), mode.columns["value"].tolist(), strict=True))
    assert math.isnan(values[-50.0])  # before the first point: no value
    assert [values[t] for t in (0.0, 50.0, 100.0, 150.0, 200.0, 5000.0)] == [1, 1, 3, 3, 2, 2]
    (ramp,) = historian.interpolated(["a"], ["ramp"], 3598.0, 3600.0, 1.0)
    assert ramp.columns["value"][:2].tolist() == [7196.0, 7198.0]
    assert np.isnan(ramp.columns["value"][2])  # after the last point (3599 s): no value


def test_aggregates_of_a_ramp_a_sine_and_a_discrete_signal(store):
    historian = Historian(store, HistorianSettings(rollups=[]))
    ramp, sine = historian.aggregated(["a"], ["ramp", "sine"], 0, 600, 60)
    k = np.arange(10)
    assert ramp.time.tolist() == (60.0 * k).tolist()
    assert ramp.columns["min"].tolist() == (120.0 * k).tolist()
    assert ramp.columns["max"].tolist() == (120.0 * k + 118).tolist()
    assert ramp.columns["last"].tolist() == (120.0 * k + 118).tolist()
    assert ramp.columns["count"].tolist() == [60.0] * 10
    np.testing.assert_allclose(ramp.columns["mean"], 120.0 * k + 59)  # mean of the points
    np.testing.assert_allclose(ramp.columns["twmean"], 120.0 * k + 60)  # mid-interval value
    assert sine.columns["min"].tolist() == [-1.0] * 10
    assert sine.columns["max"].tolist() == [1.0] * 10
    np.testing.assert_allclose(sine.columns["mean"], 0, atol=1e-12)
    np.testing.assert_allclose(sine.columns["twmean"], 0, atol=1e-12)
    (mode,) = historian.aggregated(["a"], ["mode"], 0, 300, 50)
    assert mode.columns["count"].tolist() == [1, 0, 1, 0, 1, 0]
    assert mode.columns["last"][[0, 2, 4]].tolist() == [1, 3, 2]
    assert np.isnan(mode.columns["min"][[1, 3, 5]]).all()
    assert mode.columns["twmean"].tolist() == [1, 1, 3, 3, 2, 2]  # held, time-weighted
    (partial,) = historian.aggregated(["a"], ["ramp"], 3570, 3630, 60)
    assert partial.columns["count"].tolist() == [30.0]
    assert np.isnan(partial.columns["twmean"][0])  # the points do not cover the interval


def test_rollups_equal_aggregates_computed_from_the_points(store):
    rolled = Historian(store)  # rollups of 60 s and 3600 s
    rolled.roll_up(3600.0)
    direct = Historian(store, HistorianSettings(rollups=[]))
    for step, source in ((300.0, "rollup:60"), (3600.0, "rollup:3600")):
        from_rollups = rolled.aggregated(["a", "b"], ["ramp", "sine", "mode"], 0, 3600, step)
        from_points = direct.aggregated(["a", "b"], ["ramp", "sine", "mode"], 0, 3600, step)
        assert len(from_rollups) == len(from_points) == 4
        for ours, theirs in zip(from_rollups, from_points, strict=True):
            assert ours.source == source and theirs.source == "raw"
            for name, values in theirs.columns.items():
                np.testing.assert_allclose(ours.columns[name], values, rtol=1e-12, atol=1e-9,
                                           err_msg=f"{ours.asset}/{ours.signal} {name}")
    # not aligned to the rollup interval: from the points
    (odd,) = rolled.aggregated(["a"], ["ramp"], 30, 630, 300)
    assert odd.source == "raw"


def test_retention_drops_only_rolled_up_points(tmp_path):
    store = DuckDBStore(tmp_path / "history.duckdb")
    store.append([SeriesPoints("a", "ramp", T, 2 * T)])
    settings = HistorianSettings(raw_retention_s=600.0, rollups=[
        RollupPolicy(interval_s=60.0, retention_s=1200.0)])
    historian = Historian(store, settings)
    historian.retain(3600.0)  # nothing rolled up yet: nothing may go
    assert historian.recorded(["a"], ["ramp"], 0, 3600)[0].time[0] == 0.0
    historian.roll_up(3600.0)
    historian.retain(3600.0)
    (kept,) = historian.recorded(["a"], ["ramp"], 0, 3600)
    assert kept.time[0] == 3000.0 and kept.time[-1] == 3599.0
    (minutes,) = historian.aggregated(["a"], ["ramp"], 0, 3600, 60)
    assert minutes.source == "rollup:60"
    assert np.isnan(minutes.columns["mean"][:40]).all()  # rollups older than 1200 s gone
    assert minutes.columns["mean"][40:].tolist() == (120.0 * np.arange(40, 60) + 59).tolist()
    store.close()


def test_postgres_retention_drops_whole_day_partitions(postgres_dsn):
    from engine.history_postgres import PostgresStore

    store = PostgresStore(postgres_dsn)
    days = np.array([0.0, 43200.0, 86400.0, 2 * 86400.0 + 5])
    store.append([SeriesPoints("a", "x", days, np.arange(4.0))])
    store.write_rollups(60.0, [], 3 * 86400.0)  # as if rolled up
    Historian(store, HistorianSettings(raw_retention_s=86400.0, rollups=[
        RollupPolicy(interval_s=60.0)])).retain(2 * 86400.0 + 10)
    # the day before 86400 + 10 s is dropped whole; the day it falls in is kept whole
    assert store.read([("a", "x")], 0, 1e6)[0].time.tolist() == [86400.0, 2 * 86400.0 + 5]
    store.close()


def test_export_parquet_and_csv_keep_units_and_values(store, tmp_path):
    answer = Historian(store).recorded(["a", "b"], ["ramp"], 0, 9)
    assert export(answer, tmp_path / "h.parquet") == 20
    table = pyarrow.parquet.read_table(tmp_path / "h.parquet")
    assert set(table.column("unit").to_pylist()) == {"K"}
    assert table.column("value").to_pylist()[10:12] == [0.0, 3.0]  # asset b
    export(answer, tmp_path / "h.csv")
    csv = pyarrow.csv.read_csv(tmp_path / "h.csv")
    assert csv.column("time").to_pylist() == table.column("time").to_pylist()
    assert csv.column("std").to_pylist()[:2] == [0.1, 0.1]
    json_ready = answer[1].as_dict()  # asset b's ramp has no std: null, not NaN
    assert (json_ready["unit"], json_ready["value"][:2], json_ready["std"][:2]) == (
        "K", [0.0, 3.0], [None, None])
    with pytest.raises(ValueError, match="must be .parquet or .csv"):
        export(answer, tmp_path / "h.xlsx")


def test_export_keeps_a_series_without_points_in_the_range(tmp_path):
    """A series with nothing in the range (a mode set once, long before) exports with the
    others instead of failing on its empty columns."""
    store = DuckDBStore(tmp_path / "history.duckdb")
    store.declare([SeriesSpec("a", "ramp", "K"), SeriesSpec("a", "mode", "", discrete=True)])
    store.append([SeriesPoints("a", "ramp", T, 2 * T), SeriesPoints("a", "mode", T[:1], T[:1])])
    answer = Historian(store).recorded(["a"], ["mode", "ramp"], 10, 12)
    store.close()
    assert export(answer, tmp_path / "h.parquet") == 3
    table = pyarrow.parquet.read_table(tmp_path / "h.parquet")
    assert table.column("signal").to_pylist() == ["ramp"] * 3


def test_open_store_opens_the_selected_backend(tmp_path, postgres_dsn):
    from engine.historian import open_store
    from engine.history_postgres import PostgresStore

    embedded = open_store(HistorianSettings(path=str(tmp_path / "var" / "h.duckdb")))
    assert isinstance(embedded, DuckDBStore) and (tmp_path / "var" / "h.duckdb").exists()
    embedded.close()
    server = open_store(HistorianSettings(backend="postgres", dsn=postgres_dsn))
    assert isinstance(server, PostgresStore)
    server.close()


def test_site_file_selects_the_backend():
    site = parse_site(b'[site]\nname = "x"\n[historian]\nbackend = "postgres"\n'
                      b'dsn = "host=127.0.0.1 dbname=h"\n'
                      b'[historian.signals."estimate.*"]\ncompression_deviation = 0.5\n')
    assert site.historian.backend == "postgres"
    assert site.historian.signals["estimate.*"].compression_deviation == 0.5
    assert parse_site(b'[site]\nname = "x"\n').historian.path == "var/history.duckdb"
    with pytest.raises(ConfigError, match="historian.dsn: the postgres backend needs a conn"):
        parse_site(b'[site]\nname = "x"\n[historian]\nbackend = "postgres"\n')
    with pytest.raises(ConfigError, match="historian.backend"):
        parse_site(b'[site]\nname = "x"\n[historian]\nbackend = "sqlite"\n')


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_points_appended_out_of_order_are_read_in_time_order(kind, tmp_path, request):
    store = _store(kind, tmp_path, request)
    store.append([SeriesPoints("a", "x", np.array([10.0, 11.0]), np.array([1.0, 2.0]))])
    store.append([SeriesPoints("a", "x", np.array([5.0, 12.0]), np.array([0.5, 3.0]))])
    (points,) = Historian(store).recorded(["a"], ["x"], 0, 20)
    assert points.time.tolist() == [5.0, 10.0, 11.0, 12.0]
    assert points.columns["value"].tolist() == [0.5, 1.0, 2.0, 3.0]
    store.close()


def test_two_postgres_writers_share_one_catalog(postgres_dsn):
    from engine.history_postgres import PostgresStore

    first, second = PostgresStore(postgres_dsn), PostgresStore(postgres_dsn)
    first.declare([SeriesSpec("a", "x", "Pa")])
    second.append([SeriesPoints("a", "x", np.array([1.0]), np.array([2.0]))])
    first.append([SeriesPoints("a", "x", np.array([2.0]), np.array([3.0]))])
    (points,) = Historian(second).recorded(["a"], ["x"], 0, 5)
    assert points.unit == "Pa" and points.columns["value"].tolist() == [2.0, 3.0]
    first.close()
    second.close()


_APPENDER = """
import sys
import numpy as np
from engine.history import SeriesPoints
from engine.history_duckdb import DuckDBStore
store = DuckDBStore(sys.argv[1])
for k in range(1_000_000):
    t = 100.0 * k + np.arange(100.0)
    store.append([SeriesPoints("a", "x", t, np.full(100, float(k)))])
    print(k, flush=True)
"""


def test_a_killed_duckdb_writer_loses_at_most_the_append_in_flight(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "history.duckdb"
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen([sys.executable, "-c", _APPENDER, str(path)],
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(root)})
    acknowledged = [int(child.stdout.readline()) for _ in range(20)]
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    store = DuckDBStore(path)  # replays the write-ahead log
    (points,) = store.read([("a", "x")], 0, 1e12)
    batches = sorted(set(points.value.astype(int).tolist()))
    assert batches[: len(acknowledged)] == acknowledged  # every acknowledged append is there
    assert batches == list(range(len(batches)))  # and no hole after them
    assert len(points) == 100 * len(batches)  # whole appends only
    store.close()


def test_postgres_declares_from_a_thread_that_has_no_connection_yet(postgres_dsn):
    """A historian actor declares on whichever of its threads takes the call: the first
    call on a new thread opened its connection under the lock declare held (deadlock)."""
    import threading

    from engine.history_postgres import PostgresStore

    store = PostgresStore(postgres_dsn)
    worker = threading.Thread(target=store.declare, args=([SeriesSpec("p", "head", "m")],),
                              daemon=True)
    worker.start()
    worker.join(60.0)
    assert store.specs()[("p", "head")].unit == "m"
    store.close()
