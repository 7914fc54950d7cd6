"""Every asset kind of the pilot site closes its loop without Ray: a simulated plant
(measured through its own instruments where the kind defines them, e.g. the rod pump's
dynamometer card) -> EKF -> controller -> safety policy -> plant."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import plants
from controllers import build_controller, build_estimator
from engine.config import load_site
from engine.loop import ControlLoop
from engine.messages import Outcome
from engine.safety import Applied, decide
from engine.simulation import SimulatedPlant

PILOT = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"
SITE = plants.resolve_site(load_site(PILOT), PILOT)
ONE_PER_KIND = list({asset.kind: asset for asset in reversed(SITE.assets)}.values())
TICKS = 5


def test_the_pilot_site_has_every_kind():
    assert {a.kind for a in SITE.assets} == set(plants.BUILDERS)


@pytest.mark.parametrize("asset", ONE_PER_KIND, ids=lambda a: a.kind)
def test_each_kind_closes_its_loop_within_its_limits(asset):
    model = plants.model_of(asset)
    loop = ControlLoop(asset.id, model, build_estimator(model, asset.estimator),
                       build_controller(model, asset.controller, asset.limits),
                       x0=asset.initial, u0=asset.inputs, d=asset.disturbances,
                       reference=asset.reference)
    plant = SimulatedPlant(asset.id, model, asset.simulation, x0=asset.initial,
                           u0=asset.inputs, d=asset.disturbances,
                           synthesize=plants.synthesizer_of(asset))
    last = {name: Applied(value, 0.0) for name, value in model.inputs.mapping(plant.u).items()}
    for k in range(1, TICKS + 1):
        t = k * asset.period_s
        plant.advance_to(t)
        measurement = plant.measure()
        assert set(measurement.values) == set(model.outputs.names)
        loop.observe(measurement)
        proposal = loop.propose(t)
        assert proposal.reason, "every proposal explains itself"
        decision = decide(proposal, mode=asset.mode, limits=asset.limits, last_applied=last,
                          measurement_age=0.0)
        assert all(r.outcome in (Outcome.ACCEPTED, Outcome.CLAMPED) for r in decision.records)
        plant.apply(decision.applied)
        loop.applied(decision.applied)
        last.update({n: Applied(v, t) for n, v in decision.applied.items()})
        for name, value in decision.applied.items():
            limit = asset.limits[name]
            assert limit.lower <= value <= limit.upper and math.isfinite(value)
    assert np.all(np.isfinite(loop.state.x)) and np.all(np.isfinite(loop.state.P))


@pytest.mark.parametrize("asset", SITE.assets, ids=lambda a: a.id)
def test_estimates_track_the_simulated_plant(asset):
    """Every pilot asset's EKF tracks its simulated plant, whose parameters differ from the
    twin's (the site's ``mismatch``) and whose sensors are noisy: 60 periods, every input
    stepped 10 % of its span after 20, and over the last 10 periods each output the twin
    predicts from its estimate, h(x_hat; p_hat), is on average within 3 noise standard
    deviations or 5 % of the plant's true output h(x; true p): the twin reproduces the
    plant, with its estimated multipliers absorbing the mismatched parameters. A rod pump
    is measured through its dynamometer card, which its slow model matches to 10 %
    (test_rod_pump.py), so its outputs get 10 %."""
    relative = 0.10 if plants.synthesizer_of(asset) is not None else 0.05
    model = plants.model_of(asset)
    estimator = build_estimator(model, asset.estimator)
    plant = SimulatedPlant(asset.id, model, asset.simulation, x0=asset.initial,
                           u0=asset.inputs, d=asset.disturbances,
                           synthesize=plants.synthesizer_of(asset))
    state = estimator.initial_state(model.states.vector(model.states.check(asset.initial)))
    u, d = plant.u.copy(), model.disturbances.vector(model.disturbances.check(asset.disturbances))
    lower, upper = model.inputs.lower, model.inputs.upper
    errors = []
    for k in range(1, 61):
        if k == 20:
            u = np.clip(u + 0.1 * (upper - lower) * np.sign((lower + upper) / 2 - u), lower, upper)
            plant.apply(model.inputs.mapping(u))
        plant.advance_to(k * asset.period_s)
        state = estimator.step(state, u, d, plant.measure().values, asset.period_s)
        n = len(model.states)  # estimated parameters follow the states
        p = model.parameters.vector(dict(zip(estimator.parameter_names, state.x[n:], strict=True)))
        predicted = model.output(plant.t, state.x[:n], u, d, p)
        true = model.output(plant.t, plant.x, plant.u, plant.d, plant.p)
        error = np.abs(predicted - true)
        errors.append(np.minimum(error / (3 * model.outputs.std),
                                 error / (relative * np.abs(true))))
    worst = np.mean(errors[-10:], axis=0)
    assert np.all(worst <= 1.0), dict(zip(model.outputs.names, worst.round(2), strict=True))

