"""Estimated parameters reach the controller's model: every backend plans with the
parameter vector it is given, ControlLoop gives it the filter's estimates, and on a
tank whose coil is fouled the closed loop does no worse for it."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from controllers import build_controller
from controllers.mpc_common import parameter_vector
from engine.config import ControllerSettings, SimulationSettings
from plants import asphalt_tank, rod_pump
from tests.plants.pilot_lockstep import LockStep, pilot_asset

TANK = asphalt_tank.build_model(dt=120.0)
AT_REFERENCE = np.array([433.15, 445.0])
"""T_bulk at its 160 °C reference, the hot-oil return at 445 K."""
HIGH_FLOW = np.array([6.0])
"""kg/s of hot oil: at low flows the coil's exchange is complete whatever its fouling
(NTU = k_foul UA_coil / (m_oil c_oil) >> 1), at 6 kg/s it is not."""


def fouled(model, k_foul: float) -> np.ndarray:
    return model.parameters.vector({"k_foul": k_foul})


@pytest.mark.parametrize("backend", ["do-mpc", "fast"])
def test_an_mpc_plans_more_hot_oil_for_a_fouled_coil(backend):
    """At the reference with 6 kg/s of hot oil, more than it needs, the MPC told that
    the coil passes less heat (k_foul 0.7) throttles the oil less than the one planning
    with the clean coil."""
    settings = msgspec.structs.replace(asphalt_tank.DEFAULTS.controller, backend=backend)
    proposals = {}
    for k_foul in (1.0, 0.7):
        controller = build_controller(TANK, settings, asphalt_tank.DEFAULTS.limits)
        proposals[k_foul] = controller.step(0.0, AT_REFERENCE, HIGH_FLOW,
                                            TANK.disturbances.nominal, {"T_bulk": 433.15},
                                            p=fouled(TANK, k_foul))
    clean, dirty = proposals[1.0], proposals[0.7]
    assert dirty.setpoints["m_oil"] > clean.setpoints["m_oil"] + 0.05


def test_the_fillage_rule_predicts_with_the_given_productivity_index():
    """Told the well gives half the inflow, the rule predicts a lower fillage at the same
    speed and slows the pump more."""
    model = rod_pump.build_model()
    controller = build_controller(model, rod_pump.DEFAULTS.controller, rod_pump.DEFAULTS.limits)
    x = model.states.vector({"submergence": 5.0})
    weak = model.parameters.vector(
        {"productivity_index": 0.5 * model.parameters["productivity_index"].nominal})
    steps = [controller.step(0.0, x, np.array([10.0]), model.disturbances.nominal,
                             {"fillage": 0.9}, p=p) for p in (None, weak)]
    nominal, weaker = steps
    assert weaker.predicted["fillage"][-1] < nominal.predicted["fillage"][-1] - 0.05
    assert weaker.setpoints["SPM"] <= nominal.setpoints["SPM"]
    assert weaker.setpoints["SPM"] != nominal.setpoints["SPM"] or \
        weaker.reason != nominal.reason


def test_the_loop_passes_the_filters_estimates_to_the_controller():
    """ControlLoop.propose plans with the filter's k_foul and k_loss (what the controller
    proposes for that parameter vector), unless told not to (then the nominal one)."""
    run = LockStep(pilot_asset("tank-01"))
    loop = run.loop
    n = len(loop.model.states)
    loop.state.x[n + list(loop.estimator.parameter_names).index("k_foul")] = 0.7
    assert loop.parameters()[loop.model.parameters.index("k_foul")] == 0.7
    estimated = loop.propose(0.0).setpoints["m_oil"]
    loop.estimated_parameters_to_controller = False
    nominal = loop.propose(0.0).setpoints["m_oil"]
    expected = build_controller(loop.model, run.asset.controller, run.asset.limits).step(
        0.0, loop.x, loop.u, loop.d, loop.reference, p=fouled(loop.model, 0.7))
    assert estimated == pytest.approx(expected.setpoints["m_oil"], rel=1e-6)
    assert estimated != pytest.approx(nominal, rel=1e-3)


def test_a_mismatched_tank_is_controlled_no_worse_with_its_estimated_parameters():
    """tank-01 with a badly fouled coil (k_foul 0.7) and poor insulation (loss 1.3) heats
    from 150 °C towards 160 °C for 4 h, once planning with the filter's k_foul and
    k_loss and once with the nominal ones: the estimates reach the controller (the
    plans differ) and the integrated tracking error is no larger with them."""
    asset = msgspec.structs.replace(
        pilot_asset("tank-01"),
        simulation=SimulationSettings(seed=1, mismatch={"k_foul": 0.7, "k_loss": 1.3}))
    error, applied = {}, {}
    for estimated in (True, False):
        run = LockStep(asset)
        run.loop.estimated_parameters_to_controller = estimated
        errors, inputs = [], []
        for _ in range(120):
            run.run(asset.period_s)
            errors.append(abs(run.plant.x[0] - asset.reference["T_bulk"]))
            inputs.append(run.plant.u[0])
        error[estimated], applied[estimated] = sum(errors), inputs
        if estimated:
            k_foul = run.loop.state.x[len(run.loop.model.states)
                                      + run.loop.estimator.parameter_names.index("k_foul")]
            assert k_foul == pytest.approx(0.7, rel=0.05)
    assert applied[True] != applied[False]
    assert error[True] <= error[False] * 1.001


def test_a_bad_parameter_vector_is_refused():
    with pytest.raises(ValueError, match="expected"):
        parameter_vector(TANK, np.ones(3))
    with pytest.raises(ValueError, match="k_foul"):
        parameter_vector(TANK, fouled(TANK, 50.0))
    controller = build_controller(TANK, ControllerSettings(backend="fast", horizon=5,
                                                           tracking={"T_bulk": 1.0}),
                                  asphalt_tank.DEFAULTS.limits)
    with pytest.raises(ValueError, match="k_foul"):
        controller.step(0.0, AT_REFERENCE, TANK.inputs.nominal, TANK.disturbances.nominal,
                        {"T_bulk": 433.15}, p=fouled(TANK, np.nan))
