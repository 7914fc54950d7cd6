"""Replay (controllers.replay): a recorded run of tank-01 (tests/sites/two_tanks.toml),
exported as the historian exports it, fed back through the twin in lock-step."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet
import pytest

import plants
from controllers import build_controller, build_estimator
from controllers.replay import read_recording, replay
from engine.config import TripInterlock, load_site
from engine.gate import PolicyGate
from engine.historian import Historian, export
from engine.history import TickRecord, history_signals, points_of
from engine.history_duckdb import DuckDBStore
from engine.loop import ControlLoop
from engine.simulation import SimulatedPlant

SITE = Path(__file__).resolve().parents[1] / "sites" / "two_tanks.toml"
PERIODS = 15
T0 = 1.7e9
"""A UNIX time, as the historian records."""
TUNING = {"backend": "fast", "horizon": 10}
"""The recorded asset's controller: the kind's weights, a short fast MPC (a cheap test)."""


def tank(**controller) -> object:
    site = plants.resolve_site(load_site(SITE), SITE)
    asset = next(a for a in site.assets if a.id == "tank-01")
    settings = msgspec.structs.replace(asset.resolved_controller(), **TUNING, **controller)
    return msgspec.structs.replace(asset, controller=settings)


def record(asset, path: Path, since_period: int = 0) -> int:
    """Run ``asset`` against its simulated plant (the site's mismatch and noise) as a
    shard does, record every tick as the asset records it (actors.asset.tick_record),
    store it in a DuckDB historian and export its raw history from period
    ``since_period`` on to ``path``, as ``twinloop history export`` does; returns rows."""
    model = plants.model_of(asset)
    plant = SimulatedPlant(asset.id, model, asset.simulation, x0=asset.initial,
                           u0=asset.inputs, d=asset.disturbances, t0=T0,
                           synthesize=plants.synthesizer_of(asset))
    estimator = build_estimator(model, asset.resolved_estimator())
    loop = ControlLoop(asset.id, model, estimator,
                       build_controller(model, asset.resolved_controller(), asset.limits),
                       x0=asset.initial, u0=asset.inputs, d=asset.disturbances,
                       reference=asset.reference, t0=T0)
    gate = PolicyGate(asset, model.inputs.mapping(loop.u), T0)
    records = []
    for k in range(PERIODS + 1):
        t = T0 + k * model.dt
        plant.advance_to(t)
        result = loop.tick(t, plant.measure(), gate)
        plant.apply(result.applied)
        records.append(TickRecord(
            asset=asset.id, time=t, measurement=result.measurement, estimate=result.estimate,
            requested=dict(result.proposal.setpoints), applied=dict(result.applied),
            reference=dict(loop.reference), mode=asset.mode))
    specs = history_signals(asset.id, model, estimated=estimator.parameter_names)
    store = DuckDBStore(path.with_suffix(".duckdb"))
    try:
        store.declare(specs)
        store.append(points_of(records))
        history = Historian(store).recorded([asset.id], [s.signal for s in specs],
                                            T0 + since_period * model.dt,
                                            T0 + PERIODS * model.dt)
        return export(history, path)
    finally:
        store.close()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "history.parquet"
    assert record(tank(), path) > 0
    return path


@pytest.fixture(scope="module")
def recording(recorded):
    return read_recording(recorded, "tank-01")


@pytest.fixture(scope="module")
def same(recording):
    return replay(tank(), recording)


def test_a_replay_with_the_recorded_tuning_reproduces_the_run(same):
    """From the asset's start, the replay's filter is the recorded one: the same
    estimates, NIS and proposals at every tick."""
    measured = np.isfinite(same.recorded_nis)
    assert measured.sum() == PERIODS   # every tick after the first estimate was corrected
    for name, recorded in same.recorded_estimate.items():
        np.testing.assert_allclose(same.replayed_estimate[name][measured], recorded[measured],
                                   rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(same.replayed_nis[measured], same.recorded_nis[measured],
                               rtol=1e-6)
    np.testing.assert_allclose(same.proposed["m_oil"], same.requested["m_oil"], rtol=1e-6)
    np.testing.assert_allclose(same.gated["m_oil"], same.applied["m_oil"], rtol=1e-6)
    summary = same.summary()
    assert summary["anomalies"]["replayed"] == summary["anomalies"]["recorded"]
    assert summary["move"]["m_oil"]["replayed"] == pytest.approx(
        summary["move"]["m_oil"]["recorded"])


def test_a_replay_from_mid_run_stays_close_to_the_recorded_estimates(tmp_path, recording):
    """Started mid-run from a recorded estimate whose covariances were not recorded (a CSV
    export this time), the replayed estimates stay within a fifth of their std of the
    recorded ones (0.11 std at most, k_foul and T_return, when this was written)."""
    path = tmp_path / "mid.csv"
    record(tank(), path, since_period=5)
    result = replay(tank(), read_recording(path, "tank-01"))
    assert result.time[0] == recording["mode"].time[6]
    for name, recorded in result.recorded_estimate.items():
        gap = np.abs(result.replayed_estimate[name] - recorded) / result.replayed_std[name]
        assert np.all(gap < 0.2), (name, gap)


def test_an_export_cut_between_a_measurement_and_its_tick_starts_where_inputs_are_known(
        tmp_path, recording):
    """In real time a tick follows its measurement, so an export may begin with an estimate
    whose tick (and the inputs the plant held) fell outside it: here period 5's tick-time
    values are cut off. The replay starts from the estimate of the first tick with its
    applied inputs known, and stays as close to the record as from a whole tick."""
    path = tmp_path / "cut.parquet"
    record(tank(), path, since_period=5)
    table = pyarrow.parquet.read_table(path)
    first_tick = pc.min(table["time"]).as_py()
    measured = pc.is_in(table["signal"], pa.array(["T_bulk", "T_return", "nis"]))
    keep = pc.or_(pc.or_(measured, pc.starts_with(table["signal"], "estimate.")),
                  pc.or_(pc.starts_with(table["signal"], "parameter."),
                         pc.not_equal(table["time"], first_tick)))
    pyarrow.parquet.write_table(table.filter(keep), path)
    result = replay(tank(), read_recording(path, "tank-01"))
    assert result.time[0] == recording["mode"].time[7]
    for name, recorded in result.recorded_estimate.items():
        gap = np.abs(result.replayed_estimate[name] - recorded) / result.replayed_std[name]
        assert np.all(gap < 0.2), (name, gap)


def test_a_tick_without_a_new_measurement_is_gated_with_the_age_of_the_last(tmp_path,
                                                                            recorded, same):
    """The first replayed tick's measurement is missing (a real-time tick whose sample
    came late): the gate judges the proposal with the start estimate's measurement, 120 s
    old (the watchdog allows 600 s), as the live gate did, and lets it through."""
    table = pyarrow.parquet.read_table(recorded)
    late = pc.and_(pc.is_in(table["signal"], pa.array(["T_bulk", "T_return"])),
                   pc.equal(table["time"], same.time[0]))
    pyarrow.parquet.write_table(table.filter(pc.invert(late)), tmp_path / "late.parquet")
    result = replay(tank(), read_recording(tmp_path / "late.parquet", "tank-01"))
    assert np.isnan(result.replayed_nis[0])
    assert result.gated["m_oil"][0] == pytest.approx(result.proposed["m_oil"][0])


def test_the_gate_judges_the_interlocks_over_the_assets_own_signals(recording, same):
    """A trip on tank-01's T_bulk (above 400 K: tripped all along) holds the oil flow, so
    nothing above what the plant held gets through, though the proposals rise; one
    watching tank-02 (not in the record, so tripped fail-safe if it were judged) would
    close the flow to its safe value, and is left out."""
    hold = TripInterlock(name="hot", when=["tank-01.T_bulk"], above=400.0,
                         hold=["tank-01.m_oil"])
    other = TripInterlock(name="other", when=["tank-02.T_bulk"], above=1e9,
                          close=["tank-01.m_oil"])
    result = replay(tank(), recording, interlocks=[hold, other])
    np.testing.assert_allclose(result.proposed["m_oil"], same.proposed["m_oil"])
    assert result.proposed["m_oil"][0] > result.held["m_oil"][0]
    np.testing.assert_allclose(result.gated["m_oil"], result.held["m_oil"])


def test_more_move_suppression_asks_smaller_moves(recording, same):
    """The same record replayed with move suppression 0.1 -> 10 on the hot-oil flow: the
    controller asks smaller moves from what the plant held; the estimates are the same."""
    result = replay(tank(), recording, {"move_suppression": {"m_oil": 10.0}})
    moves = result.summary()["move"]["m_oil"]
    assert moves["replayed"] < 0.9 * moves["recorded"]
    first = same.requested["m_oil"][0] - same.held["m_oil"][0]
    assert 0 < result.proposed["m_oil"][0] - result.held["m_oil"][0] < first
    for name, replayed in result.replayed_estimate.items():
        np.testing.assert_allclose(replayed, same.replayed_estimate[name])


def test_a_looser_nis_test_flags_more_anomalies(recording, same):
    """Estimator tuning: significance 0.001 -> 0.2 flags more corrections of the same
    record (about one in five), the recorded count staying what it was."""
    result = replay(tank(), recording, {"estimator": {"significance": 0.2}})
    counts = result.summary()["anomalies"]
    assert counts["recorded"] == same.summary()["anomalies"]["recorded"]
    assert counts["replayed"] > counts["recorded"]


def test_bad_input_names_what_is_missing(tmp_path, recorded):
    with pytest.raises(ValueError, match="no history of asset 'tank-02'; it holds tank-01"):
        read_recording(recorded, "tank-02")
    table = pyarrow.parquet.read_table(recorded)
    without = table.filter(pc.not_equal(table["signal"], "T_return"))
    pyarrow.parquet.write_table(without, tmp_path / "without.parquet")
    with pytest.raises(ValueError, match="measured output.s. T_return not recorded"):
        replay(tank(), read_recording(tmp_path / "without.parquet", "tank-01"))
    pyarrow.parquet.write_table(table.drop_columns(["time"]), tmp_path / "no_time.parquet")
    with pytest.raises(ValueError, match="no column time"):
        read_recording(tmp_path / "no_time.parquet", "tank-01")
    with pytest.raises(ValueError, match="must be .parquet or .csv"):
        read_recording(tmp_path / "history.xlsx", "tank-01")
    with pytest.raises(ValueError, match="move_suppression"):
        replay(tank(), read_recording(recorded, "tank-01"), {"move_suppression": {"m_oil": -1}})
