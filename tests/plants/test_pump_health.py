"""Pump health index and remaining useful life on lock-step runs of the pilot's pumps: the
simulated plant's health factors drift, the real EKF estimates them, and the degradation-path
fit (Lu & Meeker 1993) extrapolates the estimates to HealthLimits."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

import plants
from controllers import build_estimator
from engine.config import load_site
from engine.remaining_life import History
from engine.simulation import SimulatedPlant
from plants.centrifugal_pump import HealthLimits
from plants.pump_health import (
    NewPumpValues,
    PumpHealth,
    PumpHistory,
    new_pump_values,
    pump_health,
)

PILOT = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"
SITE = plants.resolve_site(load_site(PILOT), PILOT)
HOUR, DAY = 3600.0, 86400.0
HEAD_RATE = 0.05 / (2 * DAY)
"""Injected head loss: the 5 % limit two days after a new pump."""
EFFICIENCY_RATE = 0.05 / (4 * DAY)


def asset(name):
    return next(a for a in SITE.assets if a.id == name)


def lock_step(name, hours, *, head_rate=0.0, efficiency_rate=0.0, every_hours=None):
    """Run the pilot asset ``name`` for ``hours`` from the twin's nominal estimate: the
    plant's head and efficiency factors fall at the given rates (1/s) from their initial
    values, the EKF estimates them each period. Returns the model and the recorded
    (time, PumpHistory) every ``every_hours`` (default: once, at the end)."""
    pump = asset(name)
    model = plants.model_of(pump)
    ekf = build_estimator(model, pump.estimator)
    plant = SimulatedPlant(pump.id, model, pump.simulation, x0=pump.initial, u0=pump.inputs,
                           d=pump.disturbances)
    state = ekf.initial_state(model.states.nominal)
    factors = {n: model.states.index(n) for n in ("head_factor", "efficiency_factor")}
    start = {n: plant.x[i] for n, i in factors.items()}
    rates = {"head_factor": head_rate, "efficiency_factor": efficiency_rate}
    ambient = model.disturbances.mapping(plant.d)["T_ambient"]
    columns = {n: ([], [], []) for n in (*factors, "oil_rise", "vibration")}
    every = int((every_hours or hours) * HOUR / pump.period_s)
    snapshots = []
    for tick in range(1, int(hours * HOUR / pump.period_s) + 1):
        plant.advance(pump.period_s)
        for n, i in factors.items():
            plant.x[i] = start[n] - rates[n] * plant.t
        measured = plant.measure().values
        state = ekf.step(state, plant.u, plant.d, measured, pump.period_s)
        samples = {n: (state.x[i], np.sqrt(state.P[i, i])) for n, i in factors.items()}
        samples["oil_rise"] = (measured["T_bearing"] - ambient, model.outputs["T_bearing"].std)
        samples["vibration"] = (measured["vibration"], model.outputs["vibration"].std)
        for n, (value, sigma) in samples.items():
            for column, entry in zip(columns[n], (plant.t, value, sigma)):
                column.append(float(entry))
        if tick % every == 0:
            snapshots.append((plant.t, PumpHistory(**{
                n: History(*(list(column) for column in c)) for n, c in columns.items()})))
    return model, snapshots


@pytest.fixture(scope="module")
def wearing():
    """pump-01 (new) with its impeller wearing to the 5 % head limit in 2 days and its
    efficiency to 5 % in 4, for 36 h, recorded every 12 h."""
    return lock_step("pump-01", 36, head_rate=HEAD_RATE, efficiency_rate=EFFICIENCY_RATE,
                     every_hours=12)


def test_remaining_life_falls_as_the_injected_wear_grows_and_brackets_the_truth(wearing):
    """At 12, 24 and 36 h (12 h window) the head is the limiting signal; its median life
    falls each time by about the 12 h elapsed (within 2 h) and the 10-90 % band holds the
    true time to the 5 % limit, 2 d minus the elapsed time. The health index falls too."""
    model, snapshots = wearing
    results = [(t, pump_health(h, new_pump_values(model), window_s=12 * HOUR))
               for t, h in snapshots]
    lives = []
    for t, health in results:
        truth = 2 * DAY - t
        assert health.limiting_signal == "head_factor", health.reason
        assert health.rul_low_s < truth < health.rul_high_s, (t, health.reason)
        assert health.slope < 0 and abs(health.slope - -HEAD_RATE) < 3 * health.slope_std
        lives.append(health.rul_median_s)
    assert np.diff(lives) == pytest.approx([-12 * HOUR] * 2, abs=2 * HOUR)
    indices = [health.health_index for _, health in results]
    assert indices[0] > indices[1] > indices[2]


def test_efficiency_wear_is_seen_but_is_not_the_first_limit(wearing):
    """The efficiency factor, falling at half the head's rate, has a degradation trend whose
    median life is longer than the head's."""
    model, snapshots = wearing
    health = pump_health(snapshots[-1][1], new_pump_values(model), window_s=12 * HOUR)
    subs = {s.signal: s for s in health.sub_indices}
    efficiency = subs["efficiency_factor"].trend
    assert efficiency.degrading
    assert efficiency.rul_median_s > health.rul_median_s


def test_a_healthy_pump_has_no_trend_and_a_health_index_near_one():
    """pump-01 new and unworn for a day: no signal has a significant trend, the life is
    unknown (None) and the health index is above 0.9 (the factors' estimates wander by
    their std, 0.0016, a thirtieth of the 5 % allowance)."""
    model, [(_, history)] = lock_step("pump-01", 24)
    health = pump_health(history, new_pump_values(model), window_s=12 * HOUR)
    assert health.health_index > 0.9
    assert all(not s.trend.degrading for s in health.sub_indices), health.reason
    assert health.rul_median_s is None and health.rul_low_s is None
    assert "no degradation trend" in health.reason


def test_the_pilots_worn_pump_is_at_its_head_limit():
    """pump-02 runs a worn impeller (head factor 0.94, efficiency 0.95): once the EKF has
    converged (last 3 of 6 h) head is past its 5 % limit, so the health index is 0 with head
    as the worst signal and no life left on it."""
    model, [(_, history)] = lock_step("pump-02", 6)
    health = pump_health(history, new_pump_values(model), window_s=3 * HOUR)
    subs = {s.signal: s for s in health.sub_indices}
    assert health.health_index == 0.0
    assert subs["head_factor"].index == 0.0
    assert subs["head_factor"].trend.rul_median_s == 0.0
    assert health.limiting_signal in ("head_factor", "efficiency_factor")
    assert health.rul_median_s == 0.0


def test_a_new_pump_value_beyond_its_limit_is_refused():
    history = History([0.0, 1.0, 2.0], [1.0, 1.0, 1.0], [1e-3] * 3)
    pumps = PumpHistory(head_factor=history, efficiency_factor=history, oil_rise=history,
                        vibration=history)
    with pytest.raises(ValueError, match=r"oil_rise: the new pump's value 35 K is not on the "
                                         r"healthy side of the limit 30 K"):
        pump_health(pumps, NewPumpValues(oil_rise=35.0, vibration=1.5e-3), HealthLimits())


def test_a_bad_history_names_the_signal():
    good = History([0.0, 1.0, 2.0], [1.0, 1.0, 1.0], [1e-3] * 3)
    unsorted = History([0.0, 2.0, 1.0], [1.5e-3] * 3, [1e-4] * 3)
    pumps = PumpHistory(head_factor=good, efficiency_factor=good, oil_rise=good,
                        vibration=unsorted)
    with pytest.raises(ValueError, match=r"vibration\.times must increase strictly"):
        pump_health(pumps, NewPumpValues(oil_rise=16.0, vibration=1.5e-3))


def test_the_health_crosses_a_process_as_json(wearing):
    """PumpHealth and PumpHistory round-trip through msgspec JSON unchanged (they will cross
    from the asset's shard to the API)."""
    model, snapshots = wearing
    history = snapshots[0][1]
    health = pump_health(history, new_pump_values(model), window_s=12 * HOUR)
    assert msgspec.json.decode(msgspec.json.encode(health), type=PumpHealth) == health
    assert msgspec.json.decode(msgspec.json.encode(history), type=PumpHistory) == history
