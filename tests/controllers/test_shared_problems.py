"""Problems shared by every asset of a structure in a process (controllers.casadi_compile
.shared): two assets of a kind use one compiled problem, yet each keeps its own
parameters, limits and warm start, and gets the answer it would get alone."""

from __future__ import annotations

import numpy as np
import pytest

from controllers import build_controller, build_estimator
from engine.config import ControllerSettings, EstimatorSettings, SetpointLimit
from plants import asphalt_tank, build_model

TANK = build_model("asphalt_tank", dt=asphalt_tank.DEFAULTS.period_s)
HEAVY_TANK = TANK.with_parameters({"mass": 6.0e5})
"""The pilot's tank-02: the same structure, another inventory (kg)."""
WIDE = {"m_oil": SetpointLimit(lower=0.1, upper=10.0)}
NARROW = {"m_oil": SetpointLimit(lower=0.1, upper=2.0)}
COLD = np.array([423.15, 430.0])
"""T_bulk, T_return (K): 10 K below the reference, so the controller wants all the heat
its limits allow."""
REFERENCE = {"T_bulk": 433.15}
BACKENDS = [
    ControllerSettings(backend="fast", horizon=15, tracking={"T_bulk": 100.0, "T_return": 0.0},
                       move_suppression={"m_oil": 0.1}),
    ControllerSettings(backend="do-mpc", horizon=15, tracking={"T_bulk": 100.0, "T_return": 0.0},
                       move_suppression={"m_oil": 0.1}),
]


def shared_problem(controller):
    """The object every controller of the same problem shape shares."""
    return controller._step.function if controller.backend == "fast" else controller._problem


def first_move(controller, model, x=COLD):
    u, d = model.inputs.nominal, model.disturbances.nominal
    proposal = controller.step(0.0, x, u, d, REFERENCE)
    return proposal, model.inputs.vector(proposal.setpoints)


def test_models_of_one_structure_share_their_functions():
    assert HEAVY_TANK.F is TANK.F and HEAVY_TANK.structure == TANK.structure
    assert HEAVY_TANK.parameters["mass"].nominal == 6.0e5 != TANK.parameters["mass"].nominal
    # another build of the same kind and period: equal structure, not the same objects
    assert build_model("asphalt_tank", dt=120.0).structure == TANK.structure
    assert build_model("asphalt_tank", dt=60.0).structure != TANK.structure
    assert (build_model("asphalt_terminal", dt=300.0, structure={"tanks": 2}).structure
            != build_model("asphalt_terminal", dt=300.0, structure={"tanks": 3}).structure)


@pytest.mark.parametrize("settings", BACKENDS, ids=lambda s: s.backend)
def test_two_tanks_share_one_problem_and_keep_their_own_limits_and_parameters(settings):
    wide = build_controller(TANK, settings, WIDE)
    narrow = build_controller(HEAVY_TANK, settings, NARROW)
    assert shared_problem(wide) is shared_problem(narrow)

    proposal, u_wide = first_move(wide, TANK)
    assert u_wide[0] > 3.0  # kg/s: above the other tank's 2 kg/s limit
    proposal_narrow, u_narrow = first_move(narrow, HEAVY_TANK)
    assert u_narrow[0] == pytest.approx(2.0, abs=1e-6)
    # each plan is predicted with its own tank's inventory: the first predicted T_bulk
    # is that tank's model one step on with the proposed move
    for model, prediction, u in ((TANK, proposal, u_wide), (HEAVY_TANK, proposal_narrow, u_narrow)):
        x_next = model.step(COLD, u, model.disturbances.nominal)
        expected = model.output(0.0, x_next, u, model.disturbances.nominal)[0]
        assert prediction.predicted["T_bulk"][0] == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("settings", BACKENDS, ids=lambda s: s.backend)
def test_one_assets_warm_start_does_not_reach_another(settings):
    """A cold first solve gives the same move whether or not another controller of the
    same problem has solved (and warm-started itself) meanwhile."""
    first = build_controller(TANK, settings, WIDE)
    proposal, u = first_move(first, TANK)
    x, d = COLD, TANK.disturbances.nominal
    for k in range(1, 6):  # the first controller runs on, warm
        x = TANK.step(x, u, d)
        u = TANK.inputs.vector(first.step(k * TANK.dt, x, u, d, {"T_bulk": 438.15}).setpoints)
    later = build_controller(TANK, settings, WIDE)
    assert shared_problem(later) is shared_problem(first)
    later_proposal, _ = first_move(later, TANK)
    assert later_proposal.setpoints == proposal.setpoints
    assert later_proposal.predicted == proposal.predicted


def filter_function(estimator):
    return (estimator._predict if estimator.kind == "ekf" else estimator._transition)._call.function


@pytest.mark.parametrize(("kind", "tolerance"), [("ekf", 1e-9), ("ukf", 1e-5)])
def test_two_filters_share_their_functions_and_predict_with_their_own_parameters(
        kind, tolerance):
    """One step without a measurement is the filter's own model one step on (to
    rounding for the EKF; within the UKF's second-order term, about 4e-6 K here), and
    the two tanks' predictions differ by their inventories' effect (4e-4 K)."""
    settings = EstimatorSettings(kind=kind)
    light = build_estimator(TANK, settings)
    heavy = build_estimator(HEAVY_TANK, settings)
    assert filter_function(light) is filter_function(heavy)
    u, d = TANK.inputs.nominal, TANK.disturbances.nominal
    predicted = {}
    for model, estimator in ((TANK, light), (HEAVY_TANK, heavy)):
        predicted[model] = estimator.step(estimator.initial_state(COLD), u, d, {}, TANK.dt).x
        assert predicted[model][:2] == pytest.approx(model.step(COLD, u, d), abs=tolerance)
    assert abs(predicted[TANK][0] - predicted[HEAVY_TANK][0]) > 1e-4


def test_two_linear_filters_expand_their_own_models():
    light = build_estimator(TANK, EstimatorSettings(kind="kf"))
    heavy = build_estimator(HEAVY_TANK, EstimatorSettings(kind="kf"))
    for model, estimator in ((TANK, light), (HEAVY_TANK, heavy)):
        x, u, d, _ = model.steady_input_vectors()
        assert estimator.f0[:2] == pytest.approx(model.dynamics(0.0, x, u, d), rel=1e-12)
    assert not np.allclose(light.Ac, heavy.Ac)
