"""SafetyActor: the only path from a proposal to an output.

Wraps the pure policy of :mod:`engine.safety`, remembers each asset's mode and last
applied setpoints, and appends one durable audit record per signal decision before
it answers, so nothing is written that is not on record.
"""

from __future__ import annotations

from typing import Any

import ray

from engine.audit import AuditLog
from engine.config import SetpointLimit
from engine.messages import AuditRecord, Decision, Mode, Outcome, Proposal
from engine.safety import Applied, decide


class AssetGate:
    """What the safety actor knows about one asset."""

    def __init__(self, limits: dict[str, SetpointLimit], mode: Mode, max_measurement_age: float,
                 initial: dict[str, float], t0: float) -> None:
        self.limits = limits
        self.mode = mode
        self.max_measurement_age = max_measurement_age
        self.last_applied = {name: Applied(value, t0) for name, value in initial.items()}


@ray.remote(num_cpus=0)
class SafetyActor:
    """Gates the setpoints of every asset of one site; see engine.safety for the rules."""

    def __init__(self, site: str, audit_db: str) -> None:
        self.site = site
        self.audit = AuditLog(audit_db)
        self.gates: dict[str, AssetGate] = {}

    def register(self, asset: str, limits: dict[str, SetpointLimit], mode: Mode,
                 max_measurement_age: float, initial: dict[str, float], t0: float) -> None:
        """Declare an asset's limits, mode and initial outputs (idempotent)."""
        if asset not in self.gates:
            self.gates[asset] = AssetGate(limits, Mode(mode), max_measurement_age, initial, t0)

    def decide(self, proposal: Proposal, measurement_age: float) -> Decision:
        gate = self._gate(proposal.asset)
        decision = decide(proposal, mode=gate.mode, limits=gate.limits,
                          last_applied=gate.last_applied, measurement_age=measurement_age,
                          max_measurement_age=gate.max_measurement_age)
        self.audit.append(decision.records)
        for name, value in decision.applied.items():
            gate.last_applied[name] = Applied(value, decision.time)
        return decision

    def set_limits(self, asset: str, limits: dict[str, SetpointLimit], user: str,
                   time: float) -> dict[str, SetpointLimit]:
        """Replace an asset's setpoint limits (already checked against the engineering
        bounds by ``controllers.tuning``), one audit record per changed input."""
        gate = self._gate(asset)
        records = [AuditRecord(
            time=time, asset=asset, user=user, source="operator", signal=name,
            requested=None, applied=None, outcome=Outcome.ACCEPTED,
            reason=f"limits {name} {_limit_text(gate.limits.get(name))} -> {_limit_text(limit)}",
        ) for name, limit in limits.items() if gate.limits.get(name) != limit]
        self.audit.append(records)
        gate.limits = dict(limits)
        return gate.limits

    def limits(self, asset: str) -> dict[str, SetpointLimit]:
        return dict(self._gate(asset).limits)

    def note(self, records: list[AuditRecord]) -> None:
        """Record operator actions that are not setpoint decisions (reference changes)."""
        self.audit.append(records)

    def set_mode(self, asset: str, mode: Mode, user: str, time: float) -> Mode:
        gate = self._gate(asset)
        new = Mode(mode)
        self.audit.append([AuditRecord(
            time=time, asset=asset, user=user, source="operator", signal="mode",
            requested=None, applied=None, outcome=Outcome.ACCEPTED,
            reason=f"mode {gate.mode.value} -> {new.value}",
        )])
        gate.mode = new
        return new

    def mode(self, asset: str) -> Mode:
        return self._gate(asset).mode

    def last_applied(self, asset: str) -> dict[str, dict[str, float]]:
        return {name: {"value": a.value, "time": a.time}
                for name, a in self._gate(asset).last_applied.items()}

    def audit_records(self, asset: str, since: float | None = None, until: float | None = None,
                      outcome: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        records = self.audit.query(asset, since=since, until=until, outcome=outcome, limit=limit)
        return [_record_dict(r) for r in records]

    def _gate(self, asset: str) -> AssetGate:
        try:
            return self.gates[asset]
        except KeyError:
            raise KeyError(f"asset {asset!r} is not registered with safety:{self.site}") from None


def _limit_text(limit: SetpointLimit | None) -> str:
    if limit is None:
        return "none"
    return f"[{limit.lower:g}, {limit.upper:g}] at most {limit.max_rate:g}/s"


def _record_dict(record: AuditRecord) -> dict[str, Any]:
    return {"time": record.time, "user": record.user, "source": record.source,
            "signal": record.signal, "requested": record.requested, "applied": record.applied,
            "outcome": record.outcome.value, "reason": record.reason}
