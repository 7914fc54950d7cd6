"""What a tick records, and the writer that stores it off the control path."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import plants
from engine.config import HistorianSettings
from engine.historian import Historian
from engine.history import MODE_CODES, TickRecord, history_signals, points_of
from engine.history_duckdb import DuckDBStore
from engine.history_policy import StoragePolicy
from engine.history_writer import HistoryWriter
from engine.messages import Estimate, Measurement, Mode


def _tick(k: int, asset: str = "tank-01") -> TickRecord:
    """Tick k of a tank every 60 s, measured 5 s before the tick."""
    t = 1.7e9 + 60.0 * k
    return TickRecord(
        asset=asset, time=t,
        measurement=Measurement(asset, t - 5.0, {"T_bulk": 433.0 + k, "T_return": 440.0}),
        estimate=Estimate(asset, t - 5.0, {"T_bulk": 433.1 + k, "T_coil": 450.0},
                          {"T_bulk": 0.2, "T_coil": 1.0}, nis=1.5,
                          parameters={"UA_loss": 1.2e4}, parameter_std={"UA_loss": 50.0}),
        requested={"m_oil": 2.0}, applied={"m_oil": 1.5}, reference={"T_bulk": 443.15},
        mode=Mode.AUTONOMOUS, kpis={"specific_energy": 3.2e4})


def test_history_signals_carry_the_models_si_units():
    model = plants.build_model("asphalt_tank", dt=120.0)
    specs = {s.signal: s for s in history_signals("tank-01", model, estimated=["UA_loss"],
                                                  kpi_units={"specific_energy": "J/kg"})}
    assert specs["T_bulk"].unit == "K" and specs["T_bulk"].span == pytest.approx(200.0)
    assert specs["estimate.T_bulk"].unit == "K"
    assert specs["parameter.UA_loss"].unit == "W/K"
    assert specs["requested.m_oil"].unit == specs["applied.m_oil"].unit == "kg/s"
    assert specs["reference.T_bulk"].unit == "K"
    assert specs["nis"].unit == "1"
    assert specs["mode"].discrete and not specs["T_bulk"].discrete
    assert specs["kpi.specific_energy"].unit == "J/kg"


def test_a_tick_becomes_points_with_the_measurement_sample_time():
    points = {p.signal: p for p in points_of([_tick(0), _tick(1)])}
    t0 = 1.7e9
    assert points["T_bulk"].time.tolist() == [t0 - 5, t0 + 55]  # sample times, not ticks
    assert points["T_bulk"].value.tolist() == [433.0, 434.0] and points["T_bulk"].std is None
    assert points["estimate.T_bulk"].std.tolist() == [0.2, 0.2]
    assert points["parameter.UA_loss"].std.tolist() == [50.0, 50.0]
    assert points["nis"].value.tolist() == [1.5, 1.5]
    assert points["requested.m_oil"].time.tolist() == [t0, t0 + 60]
    assert points["applied.m_oil"].value.tolist() == [1.5, 1.5]
    assert points["mode"].value.tolist() == [MODE_CODES[Mode.AUTONOMOUS]] * 2
    assert points["kpi.specific_energy"].value.tolist() == [3.2e4] * 2


def test_writer_stores_every_ticks_value_and_answers_in_si_units(tmp_path):
    store = DuckDBStore(tmp_path / "history.duckdb")
    store.declare(history_signals("tank-01", plants.build_model("asphalt_tank", dt=60.0)))
    historian = Historian(store, HistorianSettings(signals={
        "reference.*": StoragePolicy(exception_deviation=0.0)}))  # store on change
    writer = HistoryWriter(historian)
    for k in range(0, 100, 10):
        assert writer.submit([_tick(j) for j in range(k, k + 10)])
    writer.close()
    (t_bulk, reference) = historian.recorded(["tank-01"], ["T_bulk", "reference.T_bulk"],
                                             1.7e9 - 60, 1.7e9 + 6000)
    assert t_bulk.unit == "K"
    assert t_bulk.columns["value"].tolist() == [433.0 + k for k in range(100)]
    assert reference.time.tolist() == [1.7e9, 1.7e9 + 99 * 60]  # the first and the snapshot
    stats = writer.stats()
    assert stats.written_records == 100 and stats.dropped_records == 0
    store.close()


class SlowStore(DuckDBStore):
    """A DuckDB store on a disk that stalls: append waits until ``release`` is set."""

    def __init__(self, path) -> None:
        super().__init__(path)
        self.entered, self.release = threading.Event(), threading.Event()

    def append(self, batch):
        self.entered.set()
        self.release.wait()
        return super().append(batch)


def test_a_stalled_store_never_blocks_submit_it_drops_and_counts(tmp_path):
    store = SlowStore(tmp_path / "history.duckdb")
    writer = HistoryWriter(Historian(store), queue_batches=2)
    assert writer.submit([_tick(0)])
    assert store.entered.wait(30)  # the writer is stuck in append
    accepted = [writer.submit([_tick(k), _tick(k, "tank-02")]) for k in range(1, 6)]
    assert accepted == [True, True, False, False, False]  # returned at once: queue of 2
    stats = writer.stats()
    assert (stats.dropped_batches, stats.dropped_records, stats.queued_batches) == (3, 6, 2)
    store.release.set()
    assert writer.flush(30)
    stats = writer.stats()
    assert stats.written_records == 5 and stats.dropped_records == 6
    (t_bulk,) = Historian(store).recorded(["tank-01"], ["T_bulk"], 0, 2e9)
    assert t_bulk.columns["value"].tolist() == [433.0, 434.0, 435.0]
    writer.close()
    store.close()


def test_a_failed_append_is_counted_and_the_writer_goes_on(tmp_path):
    store = DuckDBStore(tmp_path / "history.duckdb")
    writer = HistoryWriter(Historian(store))
    store.close()  # every append now fails
    assert writer.submit([_tick(0), _tick(1)])
    assert writer.flush(30)
    stats = writer.stats()
    assert stats.failed_appends == 1 and stats.dropped_records == 2
    assert "closed" in stats.last_error.lower()
    assert writer.submit([_tick(2)])  # still taking batches
    assert writer.flush(30) and writer.stats().failed_appends == 2
    writer.close()


def test_points_need_equally_long_arrays():
    from engine.history import SeriesPoints
    with pytest.raises(ValueError, match="series a/x: time, value and std must be equally"):
        SeriesPoints("a", "x", np.arange(3.0), np.arange(2.0))


def test_percent_deadband_of_a_series_declared_after_the_writer_started(tmp_path):
    store = DuckDBStore(tmp_path / "history.duckdb")
    historian = Historian(store, HistorianSettings(signals={
        "T_bulk": StoragePolicy(exception_deviation=1.0, percent=True),  # 2 K of 200 K
        "nis": StoragePolicy(exception_deviation=1.0, percent=True)}))
    writer = HistoryWriter(historian)
    store.declare(history_signals("tank-01", plants.build_model("asphalt_tank", dt=60.0)))
    assert writer.submit([_tick(k) for k in range(6)])  # T_bulk 433, 434, ... 438 K
    assert writer.flush(30)
    (t_bulk,) = historian.recorded(["tank-01"], ["T_bulk"], 0, 2e9)
    assert t_bulk.columns["value"].tolist() == [433.0, 435.0, 436.0]  # 436 with 435 before it
    (nis,) = historian.recorded(["tank-01"], ["nis"], 0, 2e9)
    assert nis.time.size == 6  # nis has no span: all its values are kept, and why is said
    assert writer.stats().failed_appends == 0
    assert writer.stats().policy_problems == [(
        "signal tank-01/nis: a percent deadband needs a finite span (upper - lower bound), "
        "it has nan: all its values are kept")]
    writer.close()
    store.close()


def test_the_writer_rolls_up_as_twin_time_passes(tmp_path):
    store = DuckDBStore(tmp_path / "history.duckdb")
    historian = Historian(store)  # rollups of 60 s and 3600 s
    writer = HistoryWriter(historian, maintain_every_s=600.0)
    for k in range(0, 120, 10):  # two hours of ticks, a minute apart
        writer.submit([_tick(j) for j in range(k, k + 10)])
    writer.close()
    watermark = store.watermark(60.0)
    assert watermark is not None and watermark >= 1.7e9 + 6000  # rolled up while writing
    (minutes,) = historian.aggregated(["tank-01"], ["T_bulk"], 1.7e9 - 1.7e9 % 60, watermark,
                                      60)
    assert minutes.source == "rollup:60"
    assert np.nansum(minutes.columns["count"]) == np.sum(
        historian.recorded(["tank-01"], ["T_bulk"], 0, watermark - 1e-6)[0].time.size)
    store.close()
