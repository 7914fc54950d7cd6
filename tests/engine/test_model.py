"""PlantModel: named construction, RK4 accuracy, parameter overrides."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.model import PlantModel
from engine.signals import Signal


def first_order(dt=1.0, substeps=4):
    """dx/dt = (K u - x)/tau, y = x: x(t) = K u + (x0 - K u) exp(-t/tau)."""
    return PlantModel.build(
        "first_order",
        states=[Signal("x", "K", 0.0)],
        inputs=[Signal("u", "W", 1.0)],
        disturbances=[],
        parameters=[Signal("K", "K/W", 2.0, 0.0, 10.0), Signal("tau", "s", 5.0, 0.1, 100.0)],
        outputs=[Signal("y", "K", 0.0)],
        dynamics=lambda x, u, d, p: {"x": (p["K"] * u["u"] - x["x"]) / p["tau"]},
        output=lambda x, u, d, p: {"y": x["x"]},
        dt=dt, substeps=substeps,
    )


def test_rk4_step_matches_the_exact_solution_to_fourth_order():
    """Error of RK4 over one step h is O(h^5): with h = dt/substeps = 0.25 s, tau = 5 s,
    the relative error after 1 s is below (h/tau)^5 = 3e-7."""
    model = first_order()
    x1 = model.step([0.0], [1.0], [])[0]
    exact = 2.0 * (1 - math.exp(-1 / 5))
    assert x1 == pytest.approx(exact, rel=3e-7)


def test_step_accepts_another_dt_and_parameters():
    model = first_order()
    x = model.step([0.0], [1.0], [], p=np.array([4.0, 5.0]), dt=0.5)[0]
    assert x == pytest.approx(4.0 * (1 - math.exp(-0.5 / 5)), rel=1e-6)


def test_with_parameters_replaces_values_and_checks_bounds():
    model = first_order().with_parameters({"K": 3.0})
    assert model.parameters["K"].nominal == 3.0
    assert model.dynamics(0, [0.0], [1.0], [])[0] == pytest.approx(3.0 / 5.0)
    with pytest.raises(ValueError, match=r"'tau'.*below its lower bound 0.1"):
        first_order().with_parameters({"tau": 0.0})
    with pytest.raises(ValueError, match="unknown signal 'gain'"):
        first_order().with_parameters({"gain": 1.0})


def test_build_refuses_missing_or_extra_equations():
    with pytest.raises(ValueError, match=r"missing \['x'\]"):
        PlantModel.build(
            "broken", states=[Signal("x", "K", 0.0)], inputs=[], disturbances=[], parameters=[],
            outputs=[], dynamics=lambda x, u, d, p: {}, output=lambda x, u, d, p: {}, dt=1.0)


def test_models_pickle_for_shipping_to_actors():
    import pickle

    model = first_order()
    copy = pickle.loads(pickle.dumps(model))
    assert copy.step([1.0], [1.0], [])[0] == model.step([1.0], [1.0], [])[0]
