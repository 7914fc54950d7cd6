"""The safety policy: a pure function from a proposal and the plant's situation to a decision.

For each requested setpoint, in order:

1. mode: OFF writes nothing; MANUAL refuses controller proposals; ADVISORY queues
   them for an operator's approval; AUTONOMOUS lets them through to the checks below.
   Operator requests are checked the same way in MANUAL, ADVISORY and AUTONOMOUS; an
   approved proposal (source ``"approval"``) in ADVISORY and AUTONOMOUS. A safe-state
   command (source ``"safe-state"``) passes in every mode, OFF included: each signal it
   names is written its safe value (SetpointLimit.safe, default the lower limit, inside
   the engineering limits), at once (no rate limit), whatever value it carries.
2. watchdog: a controller proposal (or an approval) made on a measurement older than
   ``max_measurement_age`` is refused; outputs hold their last applied value.
3. the signal must be a known writable signal, and the value a finite number.
4. limits: a value outside the operator band [lower, upper] (which lies inside the
   engineering hard limits; without one, the hard limits) is clamped to the violated bound.
5. interlocks (site-wide, see engine.config.TripInterlock and CountInterlock): a tripped
   high trip caps a held input at its last applied value and a closed one at its safe
   value; a write that would exceed a count of active signals is rejected.
6. rate limit: a change larger than ``max_rate * (t - t_last)`` from the last applied
   value is clamped to that step, so that for every written value u at time t

       lower <= u <= upper   and   |u - u_last| <= max_rate (t - t_last),

   except a move to a signal's safe value forced by a trip or a safe-state command,
   which goes out at once.

A rejected or queued signal is not written; the plant holds its last applied value.

Trips also act by themselves (:func:`trip_writes`): on every measurement the safety
authority evaluates the trip interlocks, and a ``close`` signal of a tripped one that
stands above its safe value is written to it at once, in every mode, audited with outcome
``interlock``. A watched signal not measured (or NaN) counts as tripped: fail safe.
The SafetyActor (through engine.gatekeeper) wraps these functions; tests exercise them
directly.
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

SAFE_STATE = "safe-state"
"""Proposal source of a safe-state command: every named signal to its safe value, any mode."""
INTERLOCK = "interlock"
"""Source and user of the writes tripped interlocks force."""
RESTORE = "restore"
"""Source and user of the writes by which the gate takes back a signal written around it
(at the PLC) in AUTONOMOUS mode: its own value, at the rate limit, inside the limits."""


def safe_value(signal: str, limit: SetpointLimit) -> float:
    """The value ``signal`` is driven to by a trip or a safe-state command: its configured
    ``safe`` value (default: its lower limit), kept inside its engineering limits (a retune
    may have narrowed them since). ValueError naming the signal if that is not finite."""
    value = limit.lower if limit.safe is None else min(max(limit.safe, limit.lower), limit.upper)
    if not math.isfinite(value):
        raise ValueError(f"signal {signal!r}: no finite safe value (lower limit {limit.lower:g}, "
                         f"safe {limit.safe}); set its limits' lower or safe")
    return value


def tripped_by(lock: TripInterlock, measured: Mapping[str, float]) -> tuple[str, float] | None:
    """The first watched signal that trips ``lock`` and its value (NaN: not measured,
    or measured NaN), or None while every watched signal is measured below its bound."""
    for watched in lock.when:
        value = measured.get(watched, math.nan)
        if not value < lock.above:
            return watched, value
    return None


def trip_text(lock: TripInterlock, watched: str, value: float) -> str:
    """Why ``lock`` is tripped, with the measured value against its bound."""
    shown = "not measured (fail safe)" if math.isnan(value) else f"{value:.6g} >= {lock.above:.6g}"
    return f"interlock {lock.name!r}: {watched} {shown}"


def trips_closing(asset: str, interlocks: Sequence[Interlock],
                  measured: Mapping[str, float]) -> dict[str, str]:
    """The signals of ``asset`` that tripped interlocks close now, each with why (the
    first interlock that closes it, in site-file order)."""
    closing: dict[str, str] = {}
    prefix = f"{asset}."
    for lock in interlocks:
        if not isinstance(lock, TripInterlock):
            continue
        signals = [key[len(prefix):] for key in lock.close if key.startswith(prefix)]
        if not signals:
            continue
        trip = tripped_by(lock, measured)
        if trip is not None:
            for signal in signals:
                closing.setdefault(signal, trip_text(lock, *trip))
    return closing


def trip_writes(
    asset: str,
    t: float,
    *,
    limits: Mapping[str, SetpointLimit],
    last_applied: Mapping[str, Applied],
    interlocks: Sequence[Interlock] = (),
    measured: Mapping[str, float],
    pending: Mapping[str, str] | None = None,
) -> tuple[dict[str, float], list[AuditRecord]]:
    """The writes tripped interlocks force on ``asset`` at twin time ``t``.

    Each ``close`` signal of a tripped TripInterlock (``measured``: the site's latest
    fresh measurements, ``"<asset>.<output>"``), and each signal of ``pending`` (signal ->
    why, a trip noted earlier by a measurement of another asset), whose last applied value
    is above its safe value is written to its safe value at once: no rate limit, no mode.
    One record each, outcome INTERLOCK, user and source ``"interlock"``, the reason naming
    the interlock and the measured value against its bound. A signal already at or below
    its safe value is not written again, so a standing trip writes (and audits) once.
    """
    closing = {**(pending or {}), **trips_closing(asset, interlocks, measured)}
    applied: dict[str, float] = {}
    records: list[AuditRecord] = []
    for signal, why in closing.items():
        limit = limits.get(signal)
        if limit is None:
            continue
        safe = safe_value(signal, limit)
        last = last_applied.get(signal)
        if last is not None and not last.value > safe:
            continue
        before = "unknown" if last is None else f"{last.value:.6g}"
        applied[signal] = safe
        records.append(AuditRecord(
            time=t, asset=asset, user=INTERLOCK, source=INTERLOCK, signal=signal,
            requested=None, applied=safe, outcome=Outcome.INTERLOCK,
            reason=f"{why}; {signal} closed from {before} to its safe value {safe:.6g} at once"))
    return applied, records


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
        proposal: requested setpoints, with source ("controller", "operator",
            "approval" or "safe-state") and user.
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
                                           locks, safe_state=proposal.source == SAFE_STATE)
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
    if source == SAFE_STATE:
        return None
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

    def cap(self, signal: str, last: Applied | None, band: SetpointLimit,
            limit: SetpointLimit) -> tuple[float, str, bool]:
        """The highest value tripped interlocks allow ``signal`` (inf if none), why, and
        whether that cap closes it (to its safe value: a move that waits for no rate)."""
        key = f"{self.asset}.{signal}"
        cap, why, closes = math.inf, "", False
        for lock in self.interlocks:
            if not isinstance(lock, TripInterlock) or key not in (*lock.hold, *lock.close):
                continue
            trip = tripped_by(lock, self.measured)
            if trip is None:
                continue
            closing = key in lock.close or last is None
            value = safe_value(signal, limit) if key in lock.close else (
                band.lower if last is None else last.value)
            if value < cap:
                cap, closes = value, closing
                why = (f"{trip_text(lock, *trip)}; {signal} "
                       f"{'closed to' if key in lock.close else 'held at'} {value:.6g}")
        return cap, why, closes

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
    safe_state: bool = False,
) -> tuple[Outcome, float | None, str]:
    limit = limits.get(signal)
    if limit is None:
        return Outcome.REJECTED, None, f"{signal}: not a writable signal of this asset"
    if safe_state:
        return _safe_state(signal, requested, limit, last_applied.get(signal), interlocks)
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
    interlocked = _interlocked(signal, value, last, band, limit, interlocks, reasons)
    if isinstance(interlocked, str):
        return Outcome.REJECTED, None, interlocked
    value, closed = interlocked

    if last is not None and math.isfinite(limit.max_rate) and not closed:
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


def _safe_state(signal: str, requested: float, limit: SetpointLimit, last: Applied | None,
                interlocks: _Interlocks) -> tuple[Outcome, float | None, str]:
    """A safe-state command on ``signal``: its safe value, at once; tripped interlocks
    may still hold it lower, and a count interlock refuse it."""
    value = safe_value(signal, limit)
    reasons = [f"safe state: {signal} to its safe value {value:.6g} at once"]
    interlocked = _interlocked(signal, value, last, limit, limit, interlocks, reasons)
    if isinstance(interlocked, str):
        return Outcome.REJECTED, None, interlocked
    value, _ = interlocked
    exact = _finite_or_none(requested) == value and len(reasons) == 1
    return (Outcome.ACCEPTED if exact else Outcome.CLAMPED), value, "; ".join(reasons)


def _interlocked(signal: str, value: float, last: Applied | None, band: SetpointLimit,
                 limit: SetpointLimit, interlocks: _Interlocks,
                 reasons: list[str]) -> tuple[float, bool] | str:
    """``value`` under the interlocks: capped by a tripped one (its reason appended to
    ``reasons``), with whether a trip's close takes it there at once rather than at the
    rate limit; or, as a string, why a count interlock refuses it."""
    cap, why, closes = interlocks.cap(signal, last, band, limit)
    closed = value >= cap and closes
    if value > cap:
        reasons.append(why)
        value = cap
    refused = interlocks.refusal(signal, value)
    if refused is not None:
        return f"{signal}: {refused}; holding last applied value"
    return value, closed


def _finite_or_none(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None
