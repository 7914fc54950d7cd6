"""The safety policy: a pure function from a proposal and the plant's situation to a decision.

For each requested setpoint, in order:

1. mode: OFF writes nothing; MANUAL refuses controller proposals; ADVISORY queues
   them for an operator's approval; AUTONOMOUS lets them through to the checks below.
   Operator requests are checked the same way in MANUAL, ADVISORY and AUTONOMOUS; an
   approved proposal (source ``"approval"``) in ADVISORY and AUTONOMOUS.
2. watchdog: a controller proposal (or an approval) made on a measurement older than
   ``max_measurement_age`` is refused; outputs hold their last applied value.
3. the signal must be a known writable signal, and the value a finite number.
4. limits: a value outside the operator band [lower, upper] (which lies inside the
   engineering hard limits; without one, the hard limits) is clamped to the violated bound.
5. interlocks (site-wide, see engine.config.TripInterlock and CountInterlock): a tripped
   high trip caps a held input at its last applied value and a closed one at its lower
   limit; a write that would exceed a count of active signals is rejected.
6. rate limit: a change larger than ``max_rate * (t - t_last)`` from the last applied
   value is clamped to that step, so that for every written value u at time t

       lower <= u <= upper   and   |u - u_last| <= max_rate (t - t_last).

A rejected or queued signal is not written; the plant holds its last applied value.
The SafetyActor wraps this function; tests exercise it directly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.config import CountInterlock, Interlock, SetpointLimit, TripInterlock
from engine.messages import AuditRecord, Decision, Mode, Outcome, Proposal


@dataclass(frozen=True)
class Applied:
    """The last value written to one input and when (twin seconds)."""

    value: float
    time: float


@dataclass(frozen=True)
class SiteView:
    """What the interlocks see of the whole site, keyed ``"<asset id>.<signal>"``:
    the latest measured outputs and the last applied values of writable signals."""

    measured: Mapping[str, float] = field(default_factory=dict)
    applied: Mapping[str, float] = field(default_factory=dict)


NO_SITE = SiteView()


def decide(
    proposal: Proposal,
    *,
    mode: Mode,
    limits: Mapping[str, SetpointLimit],
    last_applied: Mapping[str, Applied],
    measurement_age: float,
    max_measurement_age: float = math.inf,
    operator_limits: Mapping[str, SetpointLimit] | None = None,
    interlocks: Sequence[Interlock] = (),
    site: SiteView = NO_SITE,
) -> Decision:
    """Gate ``proposal``; return which setpoints may be written and one record per signal.

    Args:
        proposal: requested setpoints, with source ("controller", "operator" or
            "approval") and user.
        mode: the asset's operating mode.
        limits: engineering hard limits per writable signal; signals without an entry
            cannot be written.
        last_applied: last written value and time per signal, for the rate limit.
        measurement_age: twin seconds since the newest measurement behind the proposal.
        max_measurement_age: watchdog threshold, s.
        operator_limits: operator bands (lower, upper) per signal, inside ``limits``
            (see :func:`operator_limit`); they replace the hard bounds where given.
        interlocks: the site's interlocks; those naming none of this asset's signals
            do nothing.
        site: latest measurements and applied values of the whole site.
    """
    t = proposal.time
    automatic = proposal.source in ("controller", "approval")
    refusal = _mode_refusal(mode, proposal.source)
    if refusal is None and automatic and not measurement_age <= max_measurement_age:
        refusal = (Outcome.REJECTED,
                   f"measurement stale: age {measurement_age:.1f} s > {max_measurement_age:.1f} s; "
                   "holding last applied value")

    bands = {**limits, **(operator_limits or {})}
    active = dict(site.applied)  # updated as this proposal's values pass, for the counts
    locks = _Interlocks(proposal.asset, interlocks, site.measured, active)
    applied: dict[str, float] = {}
    records: list[AuditRecord] = []
    for signal, requested in proposal.setpoints.items():
        if refusal is not None:
            outcome, reason = refusal
            value = None
        else:
            outcome, value, reason = _gate(signal, requested, t, limits, bands, last_applied,
                                           locks)
        if value is not None:
            applied[signal] = value
            active[f"{proposal.asset}.{signal}"] = value
        records.append(AuditRecord(
            time=t, asset=proposal.asset, user=proposal.user, source=proposal.source,
            signal=signal, requested=_finite_or_none(requested), applied=value,
            outcome=outcome, reason=f"{reason} | {proposal.reason}" if proposal.reason else reason,
        ))
    return Decision(asset=proposal.asset, time=t, mode=mode, applied=applied, records=records)


def operator_limit(signal: str, lower: float, upper: float,
                   engineering: SetpointLimit) -> SetpointLimit:
    """An operator band [lower, upper] for ``signal``; it must lie inside the engineering
    limits (ValueError naming the signal and the bound otherwise). Keeps their rate."""
    for name, value in (("lower", lower), ("upper", upper)):
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{signal}: operator {name} limit {value!r} is not a finite number")
    if not lower <= upper:
        raise ValueError(f"{signal}: operator lower limit {lower:g} is above upper limit {upper:g}")
    if lower < engineering.lower:
        raise ValueError(f"{signal}: operator lower limit {lower:g} is below the engineering "
                         f"lower limit {engineering.lower:g}")
    if upper > engineering.upper:
        raise ValueError(f"{signal}: operator upper limit {upper:g} is above the engineering "
                         f"upper limit {engineering.upper:g}")
    return SetpointLimit(lower=float(lower), upper=float(upper), max_rate=engineering.max_rate)


def _mode_refusal(mode: Mode, source: str) -> tuple[Outcome, str] | None:
    if mode is Mode.OFF:
        return Outcome.REJECTED, "asset is OFF: nothing is written"
    if source == "operator":
        return None
    if mode is Mode.MANUAL:
        return Outcome.REJECTED, "MANUAL mode: only operator setpoints are written"
    if source == "controller" and mode is Mode.ADVISORY:
        return Outcome.QUEUED, "ADVISORY mode: awaiting operator approval"
    return None


@dataclass(frozen=True)
class _Interlocks:
    """The interlocks as they bear on one asset's signals now."""

    asset: str
    interlocks: Sequence[Interlock]
    measured: Mapping[str, float]
    active: Mapping[str, float]

    def cap(self, signal: str, last: Applied | None, band: SetpointLimit) -> tuple[float, str]:
        """The highest value tripped interlocks allow ``signal`` (inf if none), and why."""
        key = f"{self.asset}.{signal}"
        cap, why = math.inf, ""
        for lock in self.interlocks:
            if not isinstance(lock, TripInterlock) or key not in (*lock.hold, *lock.close):
                continue
            tripped = [w for w in lock.when if not self.measured.get(w, math.nan) < lock.above]
            if not tripped:
                continue
            held = key in lock.hold and last is not None
            value = band.lower if key in lock.close else (last.value if held else band.lower)
            if value < cap:
                shown = self.measured.get(tripped[0], math.nan)
                cap, why = value, (f"interlock {lock.name!r}: {tripped[0]} {shown:.6g} >= "
                                   f"{lock.above:.6g}; {signal} "
                                   f"{'closed to' if key in lock.close else 'held at'} {value:.6g}")
        return cap, why

    def refusal(self, signal: str, value: float) -> str | None:
        """Why writing ``value`` would activate one signal too many, if it would."""
        key = f"{self.asset}.{signal}"
        for lock in self.interlocks:
            if not isinstance(lock, CountInterlock) or key not in lock.signals:
                continue
            if not value > lock.active_above or self.active.get(key, 0.0) > lock.active_above:
                continue
            others = [s for s in lock.signals
                      if s != key and self.active.get(s, 0.0) > lock.active_above]
            if len(others) >= lock.max_active:
                return (f"interlock {lock.name!r}: at most {lock.max_active} active at once; "
                        f"already active: {', '.join(others)}")
        return None


def _gate(
    signal: str,
    requested: float,
    t: float,
    limits: Mapping[str, SetpointLimit],
    bands: Mapping[str, SetpointLimit],
    last_applied: Mapping[str, Applied],
    interlocks: _Interlocks,
) -> tuple[Outcome, float | None, str]:
    limit = limits.get(signal)
    if limit is None:
        return Outcome.REJECTED, None, f"{signal}: not a writable signal of this asset"
    try:
        value = float(requested)
    except (TypeError, ValueError, OverflowError):
        return Outcome.REJECTED, None, f"{signal}: {requested!r} is not a number"
    if not math.isfinite(value):
        return Outcome.REJECTED, None, f"{signal}: {value} is not a finite number"

    reasons = []
    band = bands[signal]
    kind = "operator " if band is not limit else ""
    if value > band.upper:
        reasons.append(f"{signal} {value:.6g} above {kind}upper limit {band.upper:.6g}")
        value = band.upper
    elif value < band.lower:
        reasons.append(f"{signal} {value:.6g} below {kind}lower limit {band.lower:.6g}")
        value = band.lower

    last = last_applied.get(signal)
    cap, why = interlocks.cap(signal, last, band)
    if value > cap:
        reasons.append(why)
        value = cap
    refused = interlocks.refusal(signal, value)
    if refused is not None:
        return Outcome.REJECTED, None, f"{signal}: {refused}; holding last applied value"

    if last is not None and math.isfinite(limit.max_rate):
        elapsed = max(0.0, t - last.time)
        step = limit.max_rate * elapsed
        if abs(value - last.value) > step:
            target = value
            value = last.value + math.copysign(step, value - last.value)
            value = min(max(value, limit.lower), limit.upper)  # the hard limits stay hard
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
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
