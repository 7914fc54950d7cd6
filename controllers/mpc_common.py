"""What the MPC backends share: checks of signal names, input bounds, signal spans (the
normalisation of weights), the human-readable reason of a proposal and the fallback of a
failed solve. Their settings are checked by controllers.backends.check_settings."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from engine.config import SetpointLimit
from engine.messages import Proposal
from engine.model import PlantModel
from engine.signals import SignalSet

DEFAULT_TRACKING = 1.0
DEFAULT_MOVE_SUPPRESSION = 0.1


def require_known(what: str, names: Mapping[str, object], signals: SignalSet) -> None:
    unknown = sorted(set(names) - set(signals.names))
    if unknown:
        raise ValueError(f"{what}: unknown signal(s) {unknown}; known: {', '.join(signals.names)}")


def horizon_profile(what: str, values: float | Sequence[float] | np.ndarray,
                    horizon: int, *, gaps: bool = False) -> np.ndarray:
    """``values`` over a horizon of N steps: a number held, or a sequence of 1 .. N
    values with the last one held. With ``gaps`` a NaN is allowed and means no value at
    that step (an input's target after an approved plan's last hour). ValueError naming
    ``what`` for a wrong length or a non-finite (with ``gaps``: infinite) value."""
    profile = np.atleast_1d(np.asarray(values, dtype=float)).ravel()
    if not 1 <= profile.size <= horizon:
        raise ValueError(f"{what}: expected a number or 1 to {horizon} values "
                         f"(the horizon), got {profile.size}")
    if np.isinf(profile).any() or (not gaps and np.isnan(profile).any()):
        raise ValueError(f"{what}: values must be finite{' or NaN' if gaps else ''}, got "
                         f"{profile.tolist()}")
    return np.concatenate([profile, np.full(horizon - profile.size, profile[-1])])


def input_bounds(
    inputs: SignalSet, limits: Mapping[str, SetpointLimit]
) -> tuple[np.ndarray, np.ndarray]:
    """Each input's signal bounds intersected with its setpoint limit."""
    lower, upper = inputs.lower, inputs.upper
    for name, limit in limits.items():
        i = inputs.index(name)
        lower[i], upper[i] = max(lower[i], limit.lower), min(upper[i], limit.upper)
        if not lower[i] <= upper[i]:
            raise ValueError(
                f"input {name!r}: setpoint limit [{limit.lower:g}, {limit.upper:g}] "
                f"{inputs[name].unit} does not overlap the signal's bounds "
                f"[{inputs[name].lower:g}, {inputs[name].upper:g}] {inputs[name].unit}")
    return lower, upper


def spans(signals: SignalSet) -> np.ndarray:
    """upper - lower per signal, or max(|nominal|, 1) where a bound is infinite."""
    span = signals.upper - signals.lower
    fallback = np.maximum(np.abs(signals.nominal), 1.0)
    return np.where(np.isfinite(span) & (span > 0), span, fallback)


def plan_reason(
    model: PlantModel, reference: Mapping[str, float], outputs_now: np.ndarray,
    outputs_at_end: np.ndarray, u: np.ndarray, setpoint: np.ndarray, horizon: int,
) -> str:
    """"T_bulk 423.1 K -> 428.1 K (predicted 427.9 K in 1 h): m_oil 0.6 -> 10.0 kg/s":
    each tracked output now, its target and its prediction at the horizon's end, then
    each input's move."""
    tracked = [
        f"{name} {number(outputs_now[i])} {sig.unit} -> {number(reference[name])} {sig.unit} "
        f"(predicted {number(outputs_at_end[i])} {sig.unit} in "
        f"{duration(horizon * model.dt)})"
        for i, (name, sig) in enumerate(zip(model.outputs.names, model.outputs, strict=True))
        if name in reference
    ]
    moves = ", ".join(f"{sig.name} {number(u[j])} -> {number(setpoint[j])} {sig.unit}"
                      for j, sig in enumerate(model.inputs))
    return f"{'; '.join(tracked) or 'no reference set'}: {moves}"


def number(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def shifted(plan: np.ndarray) -> np.ndarray:
    """A plan (one row per step) one step on, its last row held."""
    return np.vstack([plan[1:], plan[-1:]])


def plan_proposal(model: PlantModel, t: float, setpoint: np.ndarray,
                  plan_outputs: np.ndarray | None, reason: str, status: str,
                  solve_time: float) -> Proposal:
    """The Proposal of an MPC step: the first move ``setpoint`` and the predicted outputs
    of the plan (one row per step), by name; its ``asset`` is left for the loop."""
    predicted = ({name: plan_outputs[:, i].tolist() for i, name in enumerate(model.outputs.names)}
                 if plan_outputs is not None else {})
    return Proposal(asset="", time=float(t), setpoints=model.inputs.mapping(setpoint),
                    reason=reason, status=status, solve_time_s=solve_time, predicted=predicted)


def held_plan(model: PlantModel, t: float, u: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              plan_inputs: np.ndarray | None, plan_outputs: np.ndarray | None, status: str,
              solve_time: float) -> tuple[Proposal, np.ndarray | None, np.ndarray | None]:
    """What an MPC proposes when its solver failed: the last good plan one step on (and
    that plan, shifted), or without a plan the applied inputs ``u`` held inside
    [lower, upper] (nominal where not finite). Never a non-finite or out-of-bounds move."""
    if plan_inputs is None or plan_outputs is None:
        held = np.clip(np.where(np.isfinite(u), u, model.inputs.nominal), lower, upper)
        proposal = plan_proposal(model, t, held, None, f"solver failed ({status}): no plan yet, "
                                 "holding the applied inputs", f"failed: {status}", solve_time)
        return proposal, None, None
    plan_inputs, plan_outputs = shifted(plan_inputs), shifted(plan_outputs)
    proposal = plan_proposal(model, t, plan_inputs[0], plan_outputs,
                             f"solver failed ({status}): holding last good plan",
                             f"failed: {status}", solve_time)
    return proposal, plan_inputs, plan_outputs


def parameter_vector(model: PlantModel, p: np.ndarray | None) -> np.ndarray:
    """The parameter vector a controller predicts with: ``p`` (model order, parameter
    units, e.g. ControlLoop.parameters with the estimator's estimates) or the nominal
    values if None. A wrong length or a non-finite or out-of-bounds value raises
    ValueError naming the parameter."""
    if p is None:
        return model.parameters.nominal
    p = np.asarray(p, dtype=float).ravel()
    if p.size != len(model.parameters):
        raise ValueError(f"p: expected {len(model.parameters)} parameter values for "
                         f"{list(model.parameters.names)}, got {p.size}")
    for signal, value in zip(model.parameters, p, strict=True):
        if not (math.isfinite(value) and signal.lower <= value <= signal.upper):
            raise ValueError(f"p[{signal.name!r}] = {value} is outside [{signal.lower:g}, "
                             f"{signal.upper:g}] {signal.unit}")
    return p
