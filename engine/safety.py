"""The safety policy: a pure function from a proposal and the plant's situation to a decision.

For each requested setpoint, in order:

1. mode: OFF writes nothing; MANUAL refuses controller proposals; ADVISORY queues
   them for an operator's approval; AUTONOMOUS lets them through to the checks below.
   Operator requests are checked the same way in MANUAL, ADVISORY and AUTONOMOUS.
2. watchdog: a controller proposal made on a measurement older than
   ``max_measurement_age`` is refused; outputs hold their last applied value.
3. the signal must be a known input, and the value a finite number.
4. hard limits: a value outside [lower, upper] is clamped to the violated bound.
5. rate limit: a change larger than ``max_rate * (t - t_last)`` from the last applied
   value is clamped to that step.

A rejected or queued signal is not written; the plant holds its last applied value.
The SafetyActor wraps this function; tests exercise it directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from engine.config import SetpointLimit
from engine.messages import AuditRecord, Decision, Mode, Outcome, Proposal


@dataclass(frozen=True)
class Applied:
    """The last value written to one input and when (twin seconds)."""

    value: float
    time: float


def decide(
    proposal: Proposal,
    *,
    mode: Mode,
    limits: Mapping[str, SetpointLimit],
    last_applied: Mapping[str, Applied],
    measurement_age: float,
    max_measurement_age: float = math.inf,
) -> Decision:
    """Gate ``proposal``; return which setpoints may be written and one record per signal.

    Args:
        proposal: requested setpoints, with source ("controller" or "operator") and user.
        mode: the asset's operating mode.
        limits: hard limits per input name; inputs without an entry cannot be written.
        last_applied: last written value and time per input, for the rate limit.
        measurement_age: twin seconds since the newest measurement behind the proposal.
        max_measurement_age: watchdog threshold, s.
    """
    t = proposal.time
    from_controller = proposal.source == "controller"
    refusal = _mode_refusal(mode, from_controller)
    if refusal is None and from_controller and not measurement_age <= max_measurement_age:
        refusal = (Outcome.REJECTED,
                   f"measurement stale: age {measurement_age:.1f} s > {max_measurement_age:.1f} s; "
                   "holding last applied value")

    applied: dict[str, float] = {}
    records: list[AuditRecord] = []
    for signal, requested in proposal.setpoints.items():
        if refusal is not None:
            outcome, reason = refusal
            value = None
        else:
            outcome, value, reason = _gate(signal, requested, t, limits, last_applied)
        if value is not None:
            applied[signal] = value
        records.append(AuditRecord(
            time=t, asset=proposal.asset, user=proposal.user, source=proposal.source,
            signal=signal, requested=_finite_or_none(requested), applied=value,
            outcome=outcome, reason=f"{reason} | {proposal.reason}" if proposal.reason else reason,
        ))
    return Decision(asset=proposal.asset, time=t, mode=mode, applied=applied, records=records)


def _mode_refusal(mode: Mode, from_controller: bool) -> tuple[Outcome, str] | None:
    if mode is Mode.OFF:
        return Outcome.REJECTED, "asset is OFF: nothing is written"
    if from_controller and mode is Mode.MANUAL:
        return Outcome.REJECTED, "MANUAL mode: only operator setpoints are written"
    if from_controller and mode is Mode.ADVISORY:
        return Outcome.QUEUED, "ADVISORY mode: awaiting operator approval"
    return None


def _gate(
    signal: str,
    requested: float,
    t: float,
    limits: Mapping[str, SetpointLimit],
    last_applied: Mapping[str, Applied],
) -> tuple[Outcome, float | None, str]:
    limit = limits.get(signal)
    if limit is None:
        return Outcome.REJECTED, None, f"{signal}: not a writable input of this asset"
    try:
        value = float(requested)
    except (TypeError, ValueError):
        return Outcome.REJECTED, None, f"{signal}: {requested!r} is not a number"
    if not math.isfinite(value):
        return Outcome.REJECTED, None, f"{signal}: {value} is not a finite number"

    reasons = []
    if value > limit.upper:
        reasons.append(f"{signal} {value:.6g} above upper limit {limit.upper:.6g}")
        value = limit.upper
    elif value < limit.lower:
        reasons.append(f"{signal} {value:.6g} below lower limit {limit.lower:.6g}")
        value = limit.lower

    last = last_applied.get(signal)
    if last is not None and math.isfinite(limit.max_rate):
        elapsed = max(0.0, t - last.time)
        step = limit.max_rate * elapsed
        if abs(value - last.value) > step:
            target = value
            value = last.value + math.copysign(step, value - last.value)
            value = min(max(value, limit.lower), limit.upper)
            reasons.append(
                f"{signal} change {target - last.value:+.6g} in {elapsed:.6g} s exceeds rate "
                f"limit {limit.max_rate:.6g}/s"
            )
    if reasons:
        return Outcome.CLAMPED, value, "; ".join(reasons) + f" -> {value:.6g}"
    return Outcome.ACCEPTED, value, "within limits"


def _finite_or_none(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
