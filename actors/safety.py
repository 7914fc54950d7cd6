"""SafetyActor: the only path from a proposal to an output.

Wraps the pure policy of :mod:`engine.safety` for every asset of one site: each
asset's mode, engineering and operator limits, last applied values, the latest
measurements the site's interlocks watch, and the queue of ADVISORY proposals waiting
for an operator. Every decision's audit records and the state it changes are committed
to SQLite (WAL, full sync) in one transaction before it answers, so nothing is written
that is not on record, and a restarted actor (``max_restarts``) resumes exactly where
the killed one stopped.

Fail closed: a caller passes the wall-clock ``deadline`` after which it stops waiting
and holds its outputs (or reports that nothing changed); a request that reaches the
actor after its deadline (queued while the actor was restarting) is dropped
unrecorded, because nobody acts on its answer.

Interlocks see each asset's latest measurement while it is younger than that asset's
``max_measurement_age_s``; an older one counts as not measured, which trips them.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import ray

from engine.audit import AuditLog
from engine.config import AssetConfig, SetpointLimit, SiteConfig
from engine.messages import AuditRecord, Decision, Measurement, Mode, Outcome, Proposal
from engine.safety import Applied, SiteView, decide, operator_limit

QUEUE_LENGTH = 20
"""Proposals kept per asset for approval; older ones drop off the queue."""
DEADLINE_MARGIN_S = 0.2
"""Wall seconds before a caller's deadline after which a request is no longer decided."""


class AssetGate:
    """What the safety actor knows about one asset."""

    def __init__(self, asset: AssetConfig, initial: dict[str, float], t0: float) -> None:
        self.limits: dict[str, SetpointLimit] = dict(asset.limits)
        self.operator_limits: dict[str, SetpointLimit] = {}
        self.mode = Mode(asset.mode)
        self.max_measurement_age = asset.max_measurement_age_s
        self.last_applied = {name: Applied(initial[name], t0) for name in self.limits}
        self.measured: dict[str, float] = {}
        self.measured_time = -math.inf
        self.queue: list[dict[str, Any]] = []
        self.next_proposal = 1
        self.checkpoint: dict[str, Any] | None = None

    def note_measurement(self, measurement: Measurement) -> None:
        self.measured = {name: float(value) for name, value in measurement.values.items()}
        self.measured_time = measurement.time

    def to_state(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "limits": {n: [lim.lower, lim.upper, lim.max_rate] for n, lim in self.limits.items()},
            "operator_limits": {n: [lim.lower, lim.upper] for n, lim in self.operator_limits.items()},
            "last_applied": {n: [a.value, a.time] for n, a in self.last_applied.items()},
            "measured": self.measured,
            "measured_time": self.measured_time,
            "queue": self.queue,
            "next_proposal": self.next_proposal,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.mode = Mode(state["mode"])
        self.limits.update({n: SetpointLimit(lower=lower, upper=upper, max_rate=rate)
                            for n, (lower, upper, rate) in state.get("limits", {}).items()})
        self.operator_limits = {n: operator_limit(n, lower, upper, self.limits[n])
                                for n, (lower, upper) in state["operator_limits"].items()}
        self.last_applied.update({n: Applied(v, t) for n, (v, t) in state["last_applied"].items()})
        self.measured = dict(state["measured"])
        self.measured_time = float(state["measured_time"])
        self.queue = list(state["queue"])
        self.next_proposal = int(state["next_proposal"])


@ray.remote(num_cpus=0, max_restarts=-1)
class SafetyActor:
    # Restarts without limit: while it is down every asset fails closed, so it must return.
    """Gates the setpoints of every asset of one site; see engine.safety for the rules."""

    def __init__(self, site: SiteConfig, initial: dict[str, dict[str, float]], t0: float) -> None:
        """``site`` resolved; ``initial`` the first value of each writable signal per
        asset (see actors.fleet.initial_outputs) at twin time ``t0``; both are only the
        starting point: what the durable store holds wins."""
        self.site = site.site.name
        self.interlocks = list(site.interlocks)
        self.audit = AuditLog(site.site.audit_db)
        self.gates = {asset.id: AssetGate(asset, initial[asset.id], t0) for asset in site.assets}
        stored = self.audit.state()
        for asset, gate in self.gates.items():
            if f"gate:{asset}" in stored:
                gate.restore(stored[f"gate:{asset}"])
            gate.checkpoint = stored.get(f"checkpoint:{asset}")

    def pid(self) -> int:
        """The worker process id (tests kill it)."""
        return os.getpid()

    # -- decisions -----------------------------------------------------------------------

    def decide(self, proposal: Proposal, measurement_age: float,
               measurement: Measurement | None = None,
               deadline: float = math.inf) -> Decision | None:
        """Gate ``proposal`` (noting ``measurement`` for the interlocks first); None if
        the caller's wall-clock ``deadline`` has passed and it no longer waits."""
        if _late(deadline):
            return None
        gate = self._gate(proposal.asset)
        if measurement is not None:
            gate.note_measurement(measurement)
        decision = self._decide(gate, proposal, measurement_age)
        if any(r.outcome is Outcome.QUEUED for r in decision.records):
            gate.queue.append({"n": gate.next_proposal, "time": proposal.time,
                               "measurement_age": measurement_age,
                               "setpoints": dict(proposal.setpoints), "reason": proposal.reason,
                               "status": proposal.status})
            gate.next_proposal += 1
            del gate.queue[:-QUEUE_LENGTH]
        self._commit(proposal.asset, gate, decision.records)
        return decision

    def approve(self, asset: str, number: int, user: str, time_now: float,
                deadline: float = math.inf) -> Decision | None:
        """Gate queued proposal ``number`` again, now, as approved by ``user``: limits,
        rates, interlocks and staleness as they are at approval time."""
        if _late(deadline):
            return None
        gate = self._gate(asset)
        entry = self._entry(asset, gate, number)
        gate.queue.remove(entry)
        proposal = Proposal(asset=asset, time=time_now, setpoints=entry["setpoints"],
                            reason=f"approved proposal #{number}: {entry['reason']}",
                            source="approval", user=user, status=entry["status"])
        age = entry["measurement_age"] + (time_now - entry["time"])
        decision = self._decide(gate, proposal, age)
        self._commit(asset, gate, decision.records)
        return decision

    def reject(self, asset: str, number: int, user: str, time_now: float,
               deadline: float = math.inf) -> dict[str, Any]:
        """Drop queued proposal ``number``; nothing is written, and the audit says who."""
        _refuse_if_late(deadline)
        gate = self._gate(asset)
        entry = self._entry(asset, gate, number)
        gate.queue.remove(entry)
        records = [AuditRecord(
            time=time_now, asset=asset, user=user, source="operator", signal=signal,
            requested=value, applied=None, outcome=Outcome.REJECTED,
            reason=f"proposal #{number} rejected by {user} | {entry['reason']}",
        ) for signal, value in entry["setpoints"].items()]
        self._commit(asset, gate, records)
        return entry

    def proposals(self, asset: str) -> list[dict[str, Any]]:
        """The queue of ADVISORY proposals awaiting approval, oldest first."""
        return list(self._gate(asset).queue)

    def _entry(self, asset: str, gate: AssetGate, number: int) -> dict[str, Any]:
        for entry in gate.queue:
            if entry["n"] == number:
                return entry
        raise LookupError(f"asset {asset!r} has no queued proposal #{number}; queued: "
                          f"{[e['n'] for e in gate.queue]}")

    def _decide(self, gate: AssetGate, proposal: Proposal, age: float) -> Decision:
        decision = decide(
            proposal, mode=gate.mode, limits=gate.limits, last_applied=gate.last_applied,
            measurement_age=age, max_measurement_age=gate.max_measurement_age,
            operator_limits=gate.operator_limits, interlocks=self.interlocks,
            site=self._site_view(proposal.time))
        for name, value in decision.applied.items():
            gate.last_applied[name] = Applied(value, decision.time)
        return decision

    def _site_view(self, now: float) -> SiteView:
        """Measurements fresh at twin time ``now`` and last applied values, site-wide."""
        return SiteView(
            measured={f"{a}.{n}": v for a, g in self.gates.items()
                      if now - g.measured_time <= g.max_measurement_age
                      for n, v in g.measured.items()},
            applied={f"{a}.{n}": x.value for a, g in self.gates.items()
                     for n, x in g.last_applied.items()})

    def _commit(self, asset: str, gate: AssetGate, records: list[AuditRecord]) -> None:
        self.audit.append(records, {f"gate:{asset}": gate.to_state()})

    # -- operator settings ---------------------------------------------------------------

    def set_limits(self, asset: str, limits: dict[str, SetpointLimit], user: str,
                   time: float, deadline: float = math.inf) -> dict[str, dict[str, float]]:
        """Replace an asset's engineering limits (an engineer's retune, already checked
        against the signals' bounds by ``controllers.tuning``): one audit record per
        changed signal, committed with the state. An operator band that would fall
        outside its new limits refuses the whole change (ValueError naming both)."""
        _refuse_if_late(deadline)
        gate = self._gate(asset)
        for name, band in gate.operator_limits.items():
            limit = limits.get(name, gate.limits[name])
            if not limit.lower <= band.lower <= band.upper <= limit.upper:
                raise ValueError(
                    f"signal {name!r}: engineering limits [{limit.lower:g}, {limit.upper:g}] "
                    f"would not contain the operator limits [{band.lower:g}, {band.upper:g}]; "
                    "widen or clear the operator limits first")
        records = [AuditRecord(
            time=time, asset=asset, user=user, source="operator", signal=name,
            requested=None, applied=None, outcome=Outcome.ACCEPTED,
            reason=f"engineering limits {name} {_limit_text(gate.limits.get(name))} -> "
                   f"{_limit_text(limit)}",
        ) for name, limit in limits.items() if gate.limits.get(name) != limit]
        gate.limits = {**gate.limits, **limits}
        self._commit(asset, gate, records)
        return self.limits(asset)

    def note(self, records: list[AuditRecord], deadline: float = math.inf) -> None:
        """Record operator actions that are not setpoint decisions (reference changes)."""
        _refuse_if_late(deadline)
        self.audit.append(records)

    def set_mode(self, asset: str, mode: Mode, user: str, time: float,
                 deadline: float = math.inf) -> Mode:
        _refuse_if_late(deadline)
        gate = self._gate(asset)
        new = Mode(mode)
        record = AuditRecord(
            time=time, asset=asset, user=user, source="operator", signal="mode",
            requested=None, applied=None, outcome=Outcome.ACCEPTED,
            reason=f"mode {gate.mode.value} -> {new.value}",
        )
        gate.mode = new
        self._commit(asset, gate, [record])
        return new

    def mode(self, asset: str) -> Mode:
        return self._gate(asset).mode

    def set_operator_limits(self, asset: str, bands: dict[str, tuple[float, float]], user: str,
                            time: float, deadline: float = math.inf) -> dict[str, dict[str, float]]:
        """Narrow writable signals to operator bands (lower, upper); each must lie inside
        the engineering limits, or nothing changes (ValueError naming signal and bound)."""
        _refuse_if_late(deadline)
        gate = self._gate(asset)
        unknown = sorted(set(bands) - set(gate.limits))
        if unknown:
            raise ValueError(f"unknown writable signal(s) {unknown}; known: "
                             f"{', '.join(gate.limits)}")
        new = {name: operator_limit(name, lower, upper, gate.limits[name])
               for name, (lower, upper) in bands.items()}
        records = [AuditRecord(
            time=time, asset=asset, user=user, source="operator", signal=name,
            requested=None, applied=None, outcome=Outcome.ACCEPTED,
            reason=f"operator limits {name} [{band.lower:.6g}, {band.upper:.6g}] inside "
                   f"engineering limits [{gate.limits[name].lower:.6g}, "
                   f"{gate.limits[name].upper:.6g}]",
        ) for name, band in new.items()]
        gate.operator_limits.update(new)
        self._commit(asset, gate, records)
        return self.limits(asset)

    def limits(self, asset: str) -> dict[str, dict[str, float]]:
        """Engineering and operator limits (where set) of each writable signal."""
        gate = self._gate(asset)
        out = {}
        for name, limit in gate.limits.items():
            out[name] = {"lower": limit.lower, "upper": limit.upper, "max_rate": limit.max_rate}
            band = gate.operator_limits.get(name)
            if band is not None:
                out[name] |= {"operator_lower": band.lower, "operator_upper": band.upper}
        return out

    # -- every tick: measurements and checkpoints ------------------------------------------

    def observe(self, asset: str, measurement: Measurement | None,
                checkpoint: dict[str, Any]) -> None:
        """After each tick, in any mode: the asset's latest ``measurement`` (for the
        interlocks) and its plain-data ``checkpoint`` (for its restart), kept durably."""
        gate = self._gate(asset)
        if measurement is not None:
            gate.note_measurement(measurement)
        gate.checkpoint = checkpoint
        self.audit.append([], {f"gate:{asset}": gate.to_state(), f"checkpoint:{asset}": checkpoint})

    def restore_point(self, asset: str) -> dict[str, Any]:
        """What a restarted asset actor resumes from: its checkpoint (or None), its
        mode and the last applied values (the truth of what its plant was given)."""
        gate = self._gate(asset)
        return {"checkpoint": gate.checkpoint, "mode": gate.mode.value,
                "last_applied": {n: [a.value, a.time] for n, a in gate.last_applied.items()}}

    def last_applied(self, asset: str) -> dict[str, dict[str, float]]:
        return {name: {"value": a.value, "time": a.time}
                for name, a in self._gate(asset).last_applied.items()}

    # -- audit ---------------------------------------------------------------------------

    def audit_records(self, asset: str, since: float | None = None, until: float | None = None,
                      outcome: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        records = self.audit.query(asset, since=since, until=until, outcome=outcome, limit=limit)
        return [_record_dict(r) for r in records]

    def _gate(self, asset: str) -> AssetGate:
        try:
            return self.gates[asset]
        except KeyError:
            raise KeyError(f"asset {asset!r} is not registered with safety:{self.site}") from None


def _late(deadline: float) -> bool:
    """Has the caller's wall-clock deadline (nearly) passed, so that it no longer waits?"""
    return time.time() > deadline - DEADLINE_MARGIN_S


def _refuse_if_late(deadline: float) -> None:
    if _late(deadline):
        raise TimeoutError("request reached the safety actor after its caller's deadline; "
                           "nothing changed")


def _limit_text(limit: SetpointLimit | None) -> str:
    if limit is None:
        return "none"
    return f"[{limit.lower:g}, {limit.upper:g}] at most {limit.max_rate:g}/s"


def _record_dict(record: AuditRecord) -> dict[str, Any]:
    return {"time": record.time, "user": record.user, "source": record.source,
            "signal": record.signal, "requested": record.requested, "applied": record.applied,
            "outcome": record.outcome.value, "reason": record.reason}

