"""The centrifugal pump's default controller (the "fast" backend, one SQP iteration per
step) controls the pump as well as the reference do-mpc backend (IPOPT to convergence)
with the same tuning: on pump-01's noisy simulated plant at the kind's 10 s period, a flow
reference step from the design flow 0.10 m3/s down to 0.085 m3/s (by speed, the valve held)
settles as soon, overshoots no more, tracks with no more integrated error, does not hunt
afterwards, and every proposal keeps the speed and valve within their limits and rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np
import pytest

from engine.config import ControllerSettings
from plants.centrifugal_pump import DEFAULTS
from tests.plants.pilot_lockstep import LockStep, pilot_asset

PERIOD_S = DEFAULTS.period_s
START_FLOW, STEP_FLOW = 0.10, 0.085
"""m3/s: the design flow and a flow reachable by speed alone (about 91 % of rated)."""
SETTLE_BAND = 0.05 * abs(START_FLOW - STEP_FLOW)
"""Settled: the true flow within 5 % of the step of the reference, m3/s."""
WARM_UP_S, AFTER_STEP_S = 60.0, 900.0
TAIL_S = 300.0
"""The last 5 min of the run, long after settling: where hunting would show."""


@dataclass
class StepResponse:
    flow: np.ndarray
    """True plant flow after each tick from the step on, m3/s."""
    proposed: list[dict[str, float]]
    """The controller's proposals, one per tick from the step on."""
    applied_before: list[dict[str, float]]
    """The inputs the plant held when each proposal was made."""

    @property
    def settling_time_s(self) -> float:
        """Time after the step from which the flow stays in the settle band."""
        outside = np.nonzero(np.abs(self.flow - STEP_FLOW) > SETTLE_BAND)[0]
        return 0.0 if outside.size == 0 else float(outside[-1] + 1) * PERIOD_S

    @property
    def overshoot(self) -> float:
        """Largest flow past the reference (below it: the step is down), m3/s."""
        return float(max(0.0, np.max(STEP_FLOW - self.flow)))

    @property
    def integrated_error(self) -> float:
        """Integral of |Q - Q_ref| dt after the step, m3."""
        return float(np.sum(np.abs(self.flow - STEP_FLOW)) * PERIOD_S)

    def tail_swing(self, name: str) -> float:
        """Peak-to-peak of an input's proposals over the tail."""
        values = [p[name] for p in self.proposed[-round(TAIL_S / PERIOD_S):]]
        return max(values) - min(values)


def step_response(settings: ControllerSettings) -> StepResponse:
    """pump-01 of the pilot at the kind's period on ``settings``: warm up at the design
    flow, step the reference, record every tick for AFTER_STEP_S."""
    asset = pilot_asset("pump-01")
    asset = msgspec.structs.replace(asset, period_s=PERIOD_S, controller=settings)
    run = LockStep(asset)
    run.run(WARM_UP_S)
    run.loop.set_reference({"flow": STEP_FLOW})
    flow, proposed, applied_before = [], [], []
    for _ in range(round(AFTER_STEP_S / PERIOD_S)):
        t = run.plant.t + PERIOD_S
        run.plant.advance_to(t)
        held = run.plant.truth()["inputs"]
        result = run.loop.tick(t, run.plant.measure(), run.gate)
        assert result.proposal is not None
        assert not result.proposal.status.startswith("failed"), result.proposal.status
        run.plant.apply(result.applied)
        flow.append(run.plant.truth()["states"]["flow"])
        proposed.append(dict(result.proposal.setpoints))
        applied_before.append(dict(held))
    assert run.persistent == 0, f"{settings.backend}: persistent anomaly"
    return StepResponse(np.array(flow), proposed, applied_before)


@pytest.fixture(scope="module")
def responses() -> dict[str, StepResponse]:
    tuning = DEFAULTS.controller
    reference = ControllerSettings(backend="do-mpc", horizon=tuning.horizon,
                                   tracking=tuning.tracking,
                                   move_suppression=tuning.move_suppression)
    return {"default": step_response(tuning), "do-mpc": step_response(reference)}


def test_the_default_is_the_fast_backend_with_do_mpcs_tuning():
    """Only the solver differs from the reference: same horizon, weights and limits."""
    tuning = DEFAULTS.controller
    assert tuning.backend == "fast"
    assert (tuning.horizon, tuning.tracking, tuning.move_suppression) == \
        (30, {"flow": 1.0}, {"speed": 0.1, "valve_opening": 1.0})


def test_the_default_settles_a_flow_step_as_soon_and_as_closely_as_do_mpc(responses):
    """Settling within one period of do-mpc's, overshoot within 5 % of the step of
    do-mpc's, integrated error within 10 % of do-mpc's, and the final flow in the band."""
    default, reference = responses["default"], responses["do-mpc"]
    assert reference.settling_time_s < AFTER_STEP_S - TAIL_S  # the comparison means something
    assert default.settling_time_s <= reference.settling_time_s + PERIOD_S
    assert default.overshoot <= reference.overshoot + 0.05 * abs(START_FLOW - STEP_FLOW)
    assert default.integrated_error <= 1.1 * reference.integrated_error
    assert abs(default.flow[-1] - STEP_FLOW) <= SETTLE_BAND


def test_the_default_does_not_hunt_after_settling(responses):
    """Over the last 5 min each input's proposals swing no more than twice do-mpc's (they
    answer the same flowmeter noise through the same filter), or 0.1 % of its range."""
    default, reference = responses["default"], responses["do-mpc"]
    for name, limit in DEFAULTS.limits.items():
        span = limit.upper - limit.lower
        assert default.tail_swing(name) <= max(2 * reference.tail_swing(name), 1e-3 * span), name


def test_every_default_proposal_keeps_the_limits_and_rates(responses):
    """The controller itself, before the safety gate clips anything, proposes speed and
    valve inside their bounds and moves them no faster than max_rate over a period."""
    default = responses["default"]
    for proposal, held in zip(default.proposed, default.applied_before, strict=True):
        for name, limit in DEFAULTS.limits.items():
            value = proposal[name]
            span = limit.upper - limit.lower
            assert limit.lower - 1e-6 * span <= value <= limit.upper + 1e-6 * span, name
            assert abs(value - held[name]) <= limit.max_rate * PERIOD_S * (1 + 1e-6), name
