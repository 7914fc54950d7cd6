"""Rod-pump fillage controller: moves, limits, Goodman protection and its reasons."""

from __future__ import annotations

import re

import numpy as np
import pytest

from controllers.fillage import FillageController
from engine.config import ControllerSettings, SetpointLimit
from plants import rod_pump

MODEL = rod_pump.build_model()
LIMITS = rod_pump.DEFAULTS.limits
MAX_STEP = LIMITS["SPM"].max_rate * MODEL.dt  # 1 SPM per 120 s step
REFERENCE = {"fillage": 0.90}


def _state(**values):
    return MODEL.states.vector(values)


def _outputs(x, speed, model=MODEL):
    u = np.array([speed])
    return model.outputs.mapping(model.output(0.0, x, u, model.disturbances.nominal))


def _propose(x, speed, controller=None, reference=REFERENCE):
    controller = controller or FillageController(MODEL, rod_pump.DEFAULTS.controller, LIMITS)
    proposal = controller.step(0.0, x, np.array([speed]), MODEL.disturbances.nominal, reference)
    return proposal, proposal.setpoints["SPM"]


def test_low_fillage_lowers_spm_to_prevent_fluid_pound():
    """A weak well (productivity x 0.7) pounds at 8 SPM (fillage < 70 %): the speed
    drops, by at most one step, and the reason states the fillage, 70 % and both speeds."""
    x = _state(productivity_multiplier=0.7, submergence=0.0)
    fillage = _outputs(x, 8.0)["fillage"]
    assert fillage < 0.7
    proposal, new = _propose(x, 8.0)
    assert 8.0 - MAX_STEP - 1e-9 <= new < 8.0
    assert f"Fillage {100 * fillage:.0f} % < 70 %" in proposal.reason
    assert f"SPM 8.0 -> {new:.1f}" in proposal.reason and "fluid pound" in proposal.reason


def test_full_pump_raises_spm_to_draw_the_well_down():
    """With 100 m of fluid over the pump the pump is full: the speed rises within one
    step and the reason says fillage >= target with both speeds."""
    x = _state(submergence=100.0)
    proposal, new = _propose(x, 6.0)
    assert 6.0 < new <= 6.0 + MAX_STEP + 1e-9
    assert "Fillage 100 % >= target 90 %" in proposal.reason
    assert f"SPM 6.0 -> {new:.1f}" in proposal.reason and "draw the well down" in proposal.reason


def test_fillage_at_target_holds_speed():
    """At the nominal steady state (fillage ≈ 90 %) the speed is held (deadband ±2 %)."""
    proposal, new = _propose(MODEL.states.nominal, 8.0)
    assert new == 8.0
    assert "hold SPM 8.0" in proposal.reason


def test_speed_stays_within_spm_limits():
    """A site limit of 2–9 SPM caps a raise at 9.0 and a cut at 2.0, and says so."""
    limits = {"SPM": SetpointLimit(lower=2.0, upper=9.0, max_rate=1.0 / 120.0)}
    controller = FillageController(MODEL, rod_pump.DEFAULTS.controller, limits)
    proposal, new = _propose(_state(submergence=100.0), 8.8, controller)
    assert new == pytest.approx(9.0)
    assert proposal.status == "limited" and "2.0..9.0 SPM" in proposal.reason
    _, new = _propose(_state(productivity_multiplier=0.2, submergence=0.0), 2.5, controller)
    assert new == pytest.approx(2.0)


def test_goodman_limit_caps_a_speed_increase():
    """A raise never takes the predicted rod loading (model output) above the allowed
    Goodman loading: capped in between, or held, the reason naming the speed it would
    have gone to and the model's loading there (rounded to 1 %)."""
    x = _state(submergence=100.0)
    now, after_full_step = _outputs(x, 8.0)["rod_loading"], _outputs(x, 9.0)["rod_loading"]
    settings = rod_pump.DEFAULTS.controller
    middle = (now + after_full_step) / 2
    capped = FillageController(MODEL, settings, LIMITS, max_rod_loading=middle)
    proposal, new = _propose(x, 8.0, capped)
    assert 8.0 < new < 9.0
    assert _outputs(x, new)["rod_loading"] <= middle + 1e-9
    assert proposal.status == "limited" and "Goodman" in proposal.reason
    held = FillageController(MODEL, settings, LIMITS, max_rod_loading=now + 1e-4)
    proposal, new = _propose(x, 8.0, held)
    assert new == 8.0
    match = re.search(r"Goodman load (\d+) % of allowable at SPM ([\d.]+)", proposal.reason)
    assert match and "hold SPM 8.0" in proposal.reason
    percent, candidate = int(match.group(1)), float(match.group(2))
    assert candidate > 8.0
    assert percent == round(100 * _outputs(x, candidate)["rod_loading"])


def test_rods_outside_the_goodman_diagram_are_relieved():
    """Grade C rods at service factor 0.75 are overloaded (> 100 % of the allowable range):
    the speed drops even though the pump is full."""
    weak = MODEL.with_parameters({"tensile_strength": rod_pump.TENSILE_STRENGTH["C"],
                                  "service_factor": 0.75})
    x = _state(submergence=100.0)
    assert _outputs(x, 8.0, weak)["rod_loading"] > 1.0
    controller = FillageController(weak, rod_pump.DEFAULTS.controller, LIMITS)
    proposal = controller.step(0.0, x, np.array([8.0]), weak.disturbances.nominal, REFERENCE)
    assert proposal.setpoints["SPM"] < 8.0
    assert "relieve the rods" in proposal.reason


def test_closed_loop_settles_at_target_fillage():
    """On the model itself, starting pumped off and pounding (productivity x 0.7 at
    8 SPM), the loop brings fillage into the ±2 % deadband of 90 % within 30 steps (1 h),
    with every move within one step and the limits."""
    controller = FillageController(MODEL, rod_pump.DEFAULTS.controller, LIMITS)
    x = _state(productivity_multiplier=0.7, submergence=0.0)
    d = MODEL.disturbances.nominal
    speed = 8.0
    for k in range(30):
        proposal = controller.step(k * MODEL.dt, x, np.array([speed]), d, REFERENCE)
        new = proposal.setpoints["SPM"]
        assert abs(new - speed) <= MAX_STEP + 1e-9
        assert LIMITS["SPM"].lower <= new <= LIMITS["SPM"].upper
        speed = new
        x = MODEL.step(x, np.array([speed]), d)
    assert _outputs(x, speed)["fillage"] == pytest.approx(0.90, abs=0.025)
    assert len(proposal.predicted["fillage"]) == rod_pump.DEFAULTS.controller.horizon


def test_wrong_backend_is_refused():
    """The controller is built only for the "fillage-rule" backend."""
    with pytest.raises(ValueError, match="fillage-rule"):
        FillageController(MODEL, ControllerSettings(backend="do-mpc"), LIMITS)
