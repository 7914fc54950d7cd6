"""SafetyActor: the only path from a proposal to an output.

Wraps the policy and its memory (engine.gatekeeper.Gatekeeper, engine.safety) for every
asset of one site, and makes every decision durable before it answers: the audit records
of a whole batch of decisions (one call per shard per tick instant, ``decide_batch``)
and the gate state they change are committed to SQLite (WAL, full sync) in ONE
transaction, one fsync (group commit), so nothing is written that is not on record, and
a restarted actor (``max_restarts``) resumes exactly where the killed one stopped.
Asset checkpoints are off this path: ``store_checkpoints`` keeps them durably without a
sync of their own.

What operators and engineers decide is committed with its audit record in the same
transaction: modes, operator limits and the approval queue in the gate's state
(``gate:<asset>``); references, controller tuning and engineering limits in
``decided:<asset>``. A site started again on the same database (a new process after
kill -9 of the whole site) takes all of it back: the gates here at once, each asset from
its restore point (``restore_points``). What no longer fits the site file (an asset or a
signal gone) is skipped and reported (``restore_report``), never a failed start.

Fail closed: a caller passes the wall-clock ``deadline`` after which it stops waiting
and holds its outputs (or reports that nothing changed); a request that reaches the
actor after its deadline (queued while the actor was restarting) is dropped
unrecorded, because nobody acts on its answer.

``SafetyAuthority`` is the actor's code as a plain class (benchmarks and tests use it
without Ray); ``SafetyActor`` is the Ray actor.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import msgspec
import ray

from engine.audit import AuditLog
from engine.config import SetpointLimit, SiteConfig
from engine.gatekeeper import AssetGate, Gatekeeper
from engine.messages import (
    AuditRecord,
    Decision,
    GateRequest,
    Measurement,
    Mode,
    Outcome,
    Proposal,
    RefusedWrite,
)
from engine.safety import operator_limit, safe_value

log = logging.getLogger(__name__)
DEADLINE_MARGIN_S = 0.2
"""Wall seconds before a caller's deadline after which a request is no longer decided."""


class SafetyAuthority:
    """Gates the setpoints of every asset of one site; see engine.safety for the rules."""

    def __init__(self, site: SiteConfig, initial: dict[str, dict[str, float]], t0: float) -> None:
        """``site`` resolved; ``initial`` the first value of each writable signal per
        asset (see actors.fleet.initial_outputs) at twin time ``t0``; both are only the
        starting point: what the durable store holds wins."""
        self.site = site.site.name
        self.audit = AuditLog(site.site.audit_db)
        self.keeper = Gatekeeper(site.assets, site.interlocks, initial, t0)
        self.gates = self.keeper.gates
        self.decided: dict[str, dict[str, Any]] = {}
        """Per asset: its ``reference`` (output -> value, SI), ``tuning``
        (ControllerSettings as builtins) and retuned engineering ``limits``, as decided."""
        self.report: list[str] = []
        """What the durable store held that no longer fits the site, and was skipped."""
        stored = self.audit.state()
        for asset in sorted({key.partition(":")[2] for key in stored} - set(self.gates)):
            self._skip(f"asset {asset!r} is not in the site any more: what was decided for "
                       "it is skipped")
        for asset, gate in self.gates.items():
            self.decided[asset] = self._decided_limits(asset, stored.get(f"decided:{asset}", {}))
            if f"gate:{asset}" in stored:
                for why in gate.restore(stored[f"gate:{asset}"]):
                    self._skip(f"asset {asset!r}: {why}")
            gate.checkpoint = stored.get(f"checkpoint:{asset}")

    def _decided_limits(self, asset: str, decided: dict[str, Any]) -> dict[str, Any]:
        """Put an engineer's retuned engineering limits back on the asset's gate; those of
        signals it no longer writes are skipped. Returns ``decided`` with the rest."""
        gate = self.gates[asset]
        limits = msgspec.convert(decided.get("limits", {}), dict[str, SetpointLimit])
        gone = sorted(set(limits) - set(gate.limits))
        if gone:
            self._skip(f"asset {asset!r}: engineering limits of {', '.join(gone)} skipped: "
                       "not a writable signal of the asset any more")
        gate.limits.update({name: limit for name, limit in limits.items() if name not in gone})
        return {**decided, "limits": {name: msgspec.to_builtins(limit)
                                      for name, limit in limits.items() if name not in gone}}

    def _skip(self, why: str) -> None:
        log.warning("safety:%s restore: %s", self.site, why)
        self.report.append(why)

    def restore_report(self) -> list[str]:
        """What the durable store held at start that no longer fits the site, and was
        skipped (an asset's own restore reports what it skipped of its restore point)."""
        return list(self.report)

    def newest_time(self) -> float:
        """The latest twin time on record, s (-inf on a new database): of any audit
        record, applied value, measurement or checkpoint. A restarted site's clock
        resumes after it (engine.clock.ClockSpec.resumed)."""
        times = [self.audit.newest_time()]
        for gate in self.gates.values():
            times += [a.time for a in gate.last_applied.values()]
            times.append(gate.measured_time)
            if gate.checkpoint is not None:
                times.append(gate.checkpoint["clock"])
        return max(times)

    def pid(self) -> int:
        """The worker process id (tests kill it)."""
        return os.getpid()

    # -- decisions -----------------------------------------------------------------------

    def decide_batch(self, requests: Sequence[GateRequest],
                     deadline: float = math.inf) -> list[Decision] | None:
        """Decide one tick instant of many assets (engine.gatekeeper: measurements noted
        first, trips act, then each proposal); one decision per request, in order. Every
        record and gate state of the batch is committed in one transaction, one fsync,
        before it returns. None if the caller's wall-clock ``deadline`` has passed."""
        if _late(deadline):
            return None
        decisions, changed = self.keeper.decide_batch(requests)
        self.audit.append([record for decision in decisions for record in decision.records],
                          {f"gate:{asset}": self.gates[asset].to_state() for asset in changed})
        return decisions

    def decide(self, proposal: Proposal, measurement_age: float,
               measurement: Measurement | None = None,
               deadline: float = math.inf) -> Decision | None:
        """One asset's request: ``decide_batch`` of one (the one-at-a-time
        baseline of bench/safety.py; the interlock writes it forces come back in the
        decision's ``applied`` too)."""
        decisions = self.decide_batch([GateRequest(
            asset=proposal.asset, time=proposal.time, measurement=measurement,
            measurement_age=measurement_age, proposal=proposal)], deadline)
        return None if decisions is None else decisions[0]

    def approve(self, asset: str, number: int, user: str, time_now: float,
                deadline: float = math.inf) -> Decision | None:
        """Gate queued proposal ``number`` again, now, as approved by ``user``: limits,
        rates, interlocks and staleness as they are at approval time."""
        if _late(deadline):
            return None
        decision = self.keeper.approve(asset, number, user, time_now)
        self._commit(asset, decision.records)
        return decision

    def reject(self, asset: str, number: int, user: str, time_now: float,
               deadline: float = math.inf) -> dict[str, Any]:
        """Drop queued proposal ``number``; nothing is written, and the audit says who."""
        _refuse_if_late(deadline)
        entry, records = self.keeper.reject(asset, number, user, time_now)
        self._commit(asset, records)
        return entry

    def proposals(self, asset: str) -> list[dict[str, Any]]:
        """The queue of ADVISORY proposals awaiting approval, oldest first."""
        return list(self._gate(asset).queue)

    def _commit(self, asset: str, records: list[AuditRecord], *, decided: bool = False) -> None:
        """Records with the asset's gate state (and what was decided for it) in one
        transaction."""
        state = {f"gate:{asset}": self._gate(asset).to_state()}
        if decided:
            state[f"decided:{asset}"] = self.decided[asset]
        self.audit.append(records, state)

    # -- operator settings ---------------------------------------------------------------

    def set_tuning(self, asset: str, tuning: dict[str, Any], limits: dict[str, SetpointLimit],
                   notes: list[AuditRecord], user: str, time: float,
                   deadline: float = math.inf) -> dict[str, dict[str, float]]:
        """An engineer's retune: the controller ``tuning`` (ControllerSettings as builtins,
        already checked by ``controllers.tuning``) and the new engineering ``limits``,
        committed with ``notes`` (the tuning's audit record) and one audit record per
        changed limit in one transaction. An operator band that would fall outside its
        new limits refuses the whole change (ValueError naming both)."""
        _refuse_if_late(deadline)
        gate = self._gate(asset)
        limits = {name: _keep_safe(limit, gate.limits.get(name)) for name, limit in limits.items()}
        for name, band in gate.operator_limits.items():
            limit = limits.get(name, gate.limits[name])
            if not limit.lower <= band.lower <= band.upper <= limit.upper:
                raise ValueError(
                    f"signal {name!r}: engineering limits [{limit.lower:g}, {limit.upper:g}] "
                    f"would not contain the operator limits [{band.lower:g}, {band.upper:g}]; "
                    "widen or clear the operator limits first")
        changed = {name: limit for name, limit in limits.items() if gate.limits.get(name) != limit}
        records = [AuditRecord(
            time=time, asset=asset, user=user, source="operator", signal=name,
            requested=None, applied=None, outcome=Outcome.ACCEPTED,
            reason=f"engineering limits {name} {_limit_text(gate.limits.get(name))} -> "
                   f"{_limit_text(limit)}",
        ) for name, limit in changed.items()]
        gate.limits = {**gate.limits, **changed}
        decided = self.decided[asset]
        decided["tuning"] = tuning
        decided["limits"] = {**decided["limits"], **{
            name: msgspec.to_builtins(limit) for name, limit in changed.items()}}
        self._commit(asset, [*records, *notes], decided=True)
        return self.limits(asset)

    def note_refused(self, refusals: list[RefusedWrite]) -> int:
        """Record writes an edge refused (actors.refusals batches them), outcome
        ``refused``, at the twin time of each asset's latest tick this actor has seen, in
        one transaction without a sync of its own: a refusal changed nothing, so nothing
        waits for it to reach the disk (the next decision's commit syncs it). Refusals
        for assets this actor does not know are dropped. Returns how many were recorded."""
        records = [AuditRecord(
            time=self._twin_time(r.asset), asset=r.asset, user=r.user, source=r.source,
            signal=r.signal, requested=r.requested, applied=None, outcome=Outcome.REFUSED,
            reason=r.reason) for r in refusals if r.asset in self.gates]
        return self.audit.append(records, durable=False)

    def _twin_time(self, asset: str) -> float:
        """The latest twin time this actor knows of ``asset``: its newest measurement or
        applied value."""
        gate = self.gates[asset]
        return max([gate.measured_time, *(a.time for a in gate.last_applied.values())])

    def set_reference(self, asset: str, reference: dict[str, float],
                      records: list[AuditRecord], deadline: float = math.inf) -> None:
        """An operator's new output targets (output -> value, SI; checked by the asset),
        committed with their audit ``records`` in one transaction."""
        _refuse_if_late(deadline)
        self._gate(asset)
        decided = self.decided[asset]
        decided["reference"] = {**decided.get("reference", {}), **reference}
        self.audit.append(records, {f"decided:{asset}": decided})

    def note(self, records: list[AuditRecord], deadline: float = math.inf) -> None:
        """Record operator actions that change no state kept here."""
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
        self._commit(asset, [record])
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
        self._commit(asset, records)
        return self.limits(asset)

    def limits(self, asset: str) -> dict[str, dict[str, float]]:
        """Engineering limits, safe value and operator limits (where set) of each
        writable signal."""
        gate = self._gate(asset)
        out = {}
        for name, limit in gate.limits.items():
            out[name] = {"lower": limit.lower, "upper": limit.upper, "max_rate": limit.max_rate,
                         "safe": safe_value(name, limit)}
            band = gate.operator_limits.get(name)
            if band is not None:
                out[name] |= {"operator_lower": band.lower, "operator_upper": band.upper}
        return out

    # -- checkpoints, off the gating path -------------------------------------------------

    def store_checkpoints(self, checkpoints: dict[str, dict[str, Any]]) -> None:
        """Keep each asset's plain-data checkpoint (for its restart), durably but without
        a sync of its own (engine.audit: ``durable=False``)."""
        for asset, checkpoint in checkpoints.items():
            self._gate(asset).checkpoint = checkpoint
        self.audit.append([], {f"checkpoint:{a}": c for a, c in checkpoints.items()},
                          durable=False)

    def restore_points(self, asset_ids: list[str],
                       checkpoints: bool = True) -> dict[str, dict[str, Any]]:
        """What each asset resumes from: its mode, what was decided for it (reference,
        tuning, engineering limits), the last applied values (the truth of what its plant
        was given) and, with ``checkpoints`` (a restarted shard; not a new site, whose
        plants start afresh), its checkpoint (or None)."""
        return {asset: self.restore_point(asset, checkpoints) for asset in asset_ids}

    def restore_point(self, asset: str, checkpoint: bool = True) -> dict[str, Any]:
        gate = self._gate(asset)
        decided = self.decided[asset]
        return {"checkpoint": gate.checkpoint if checkpoint else None, "mode": gate.mode.value,
                "reference": decided.get("reference", {}), "tuning": decided.get("tuning"),
                "limits": msgspec.to_builtins(gate.limits),
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


@ray.remote(num_cpus=0, max_restarts=-1)
class SafetyActor(SafetyAuthority):
    # Restarts without limit: while it is down every asset fails closed, so it must return.
    """The site's SafetyAuthority as a Ray actor (named ``safety:<site>``)."""


def _late(deadline: float) -> bool:
    """Has the caller's wall-clock deadline (nearly) passed, so that it no longer waits?"""
    return time.time() > deadline - DEADLINE_MARGIN_S


def _refuse_if_late(deadline: float) -> None:
    if _late(deadline):
        raise TimeoutError("request reached the safety actor after its caller's deadline; "
                           "nothing changed")


def _keep_safe(limit: SetpointLimit, before: SetpointLimit | None) -> SetpointLimit:
    """A retune that does not name a safe value keeps the configured one."""
    if limit.safe is not None or before is None or before.safe is None:
        return limit
    return msgspec.structs.replace(limit, safe=before.safe)


def _limit_text(limit: SetpointLimit | None) -> str:
    if limit is None:
        return "none"
    return f"[{limit.lower:g}, {limit.upper:g}] at most {limit.max_rate:g}/s"


def _record_dict(record: AuditRecord) -> dict[str, Any]:
    return {"time": record.time, "user": record.user, "source": record.source,
            "signal": record.signal, "requested": record.requested, "applied": record.applied,
            "outcome": record.outcome.value, "reason": record.reason}

