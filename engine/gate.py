"""PolicyGate: the pure safety policy as a ControlLoop gate, without Ray or an audit.

For everything that runs a loop in one process: ``twinloop tune`` (step responses),
what-if runs, benchmarks and tests. It holds what the safety actor holds for one asset
(mode, limits, last applied values) and decides each GateRequest's proposal with
engine.safety.decide; a request without a proposal writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from engine.config import SetpointLimit
from engine.messages import Decision, GateRequest, Mode
from engine.safety import Applied, decide


class PolicyGate:
    """Gates one asset's requests with the pure policy (engine.safety.decide).

    Args:
        limits: engineering limits per writable signal.
        initial: the value each writable signal holds at ``t0`` (twin s), the start of
            the rate limit.
        mode: the asset's mode.
        max_measurement_age: watchdog threshold, twin s.
    """

    def __init__(self, limits: Mapping[str, SetpointLimit], initial: Mapping[str, float],
                 t0: float = 0.0, mode: Mode = Mode.AUTONOMOUS,
                 max_measurement_age: float = math.inf) -> None:
        self.limits = dict(limits)
        self.mode = Mode(mode)
        self.max_measurement_age = max_measurement_age
        self.last_applied = {name: Applied(float(initial[name]), t0) for name in self.limits}

    def __call__(self, request: GateRequest) -> Decision:
        if request.proposal is None:
            return Decision(asset=request.asset, time=request.time, mode=self.mode, applied={},
                            records=[])
        decision = decide(request.proposal, mode=self.mode, limits=self.limits,
                          last_applied=self.last_applied,
                          measurement_age=request.measurement_age,
                          max_measurement_age=self.max_measurement_age)
        self.last_applied.update({name: Applied(value, decision.time)
                                  for name, value in decision.applied.items()})
        return decision
