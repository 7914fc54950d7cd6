"""Gatekeeper: the safety policy with its memory, for every asset of one site, without Ray.

Per asset it holds the mode, the engineering and operator limits, the last applied
value of each writable signal, the latest measurement (for the interlocks), the queue
of ADVISORY proposals awaiting approval and the interlock writes still to deliver.

:meth:`Gatekeeper.decide_batch` takes one GateRequest per asset due at a tick instant:

1. it notes every measurement of the batch first, so that each decision sees them all;
2. it evaluates the trip interlocks on them: a tripped interlock's ``close`` signals
   above their safe value are written to it at once, in every mode (engine.safety.
   trip_writes), for the assets of the batch now; an asset that is not in the batch (it
   ticks in another shard) gets them with its next request (``pending``), re-checked
   then and audited when delivered;
3. it decides each proposal with the pure policy (engine.safety.decide), after those
   writes, so that no proposal re-opens what a trip closed.

Writes around the gate (GateRequest.external: a PLC register read back holding a value
the gate did not write) are noted before the trips: each gets an audit record (source
``plc``, outcome ``external``) and becomes the signal's last applied value, since it is
what the plant now runs on (so the interlocks and the rate limit start from it). In
AUTONOMOUS mode the gate then takes the signal back in the same instant: it proposes
its own previous value (source ``restore``), gated like any write, so the way back
moves at most ``max_rate (t - since)`` from the external value and stays inside the
limits (a value outside them is brought back inside at once). In every other mode the
external value is held, not overwritten: an operator is in charge.

A measurement is fresh for the interlocks while it is younger than its asset's
``max_measurement_age_s``; an older one counts as not measured, which trips them.

The SafetyActor (actors.safety) commits what a batch changed durably before it answers;
tests and what-if runs use a Gatekeeper in memory.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from engine.alarm_sources import interlock_tripped
from engine.config import AssetConfig, CountInterlock, Interlock, SetpointLimit, TripInterlock
from engine.messages import (
    AuditRecord,
    Decision,
    ExternalWrite,
    GateRequest,
    Measurement,
    Mode,
    Outcome,
    Proposal,
)
from engine.safety import (
    RESTORE,
    Applied,
    SiteView,
    decide,
    operator_limit,
    safe_value,
    trip_text,
    trip_writes,
    tripped_by,
)

QUEUE_LENGTH = 20
"""Proposals kept per asset for approval; older ones drop off the queue."""
PLC = "plc"
"""Source of the audit record of a write around the gate, found in a PLC's registers."""
UNKNOWN_WRITER = "unknown"
"""Its user: whoever wrote at the PLC did not say."""


class AssetGate:
    """What the safety authority knows about one asset."""

    def __init__(self, asset: AssetConfig, initial: Mapping[str, float], t0: float) -> None:
        self.limits: dict[str, SetpointLimit] = dict(asset.limits)
        self.operator_limits: dict[str, SetpointLimit] = {}
        self.mode = Mode(asset.mode)
        self.max_measurement_age = (math.inf if asset.max_measurement_age_s is None
                                    else asset.max_measurement_age_s)
        self.last_applied = {name: Applied(initial[name], t0) for name in self.limits}
        self.measured: dict[str, float] = {}
        self.measured_time = -math.inf
        self.queue: list[dict[str, Any]] = []
        self.next_proposal = 1
        self.pending: dict[str, str] = {}
        """Interlock closes noted by another asset's measurement: signal -> why."""
        self.checkpoint: dict[str, Any] | None = None

    def note_measurement(self, measurement: Measurement) -> None:
        """Keep ``measurement`` unless a newer one is already kept."""
        if measurement.time >= self.measured_time:
            self.measured = {name: float(value) for name, value in measurement.values.items()}
            self.measured_time = measurement.time

    def fresh(self, now: float) -> bool:
        """Is the kept measurement young enough at twin time ``now`` to count?"""
        return now - self.measured_time <= self.max_measurement_age

    def take(self, applied: Mapping[str, float], t: float) -> None:
        self.last_applied.update({name: Applied(value, t) for name, value in applied.items()})

    def to_state(self) -> dict[str, Any]:
        """What the gate must remember across a restart, as JSON-able data (the
        engineering limits are not in it: the safety authority keeps an engineer's
        retune with what else was decided, and the site file gives the rest)."""
        return {
            "mode": self.mode.value,
            "operator_limits": {n: [lim.lower, lim.upper]
                                for n, lim in self.operator_limits.items()},
            "last_applied": {n: [a.value, a.time] for n, a in self.last_applied.items()},
            "measured": self.measured,
            "measured_time": self.measured_time,
            "queue": self.queue,
            "next_proposal": self.next_proposal,
            "pending": self.pending,
        }

    def restore(self, state: Mapping[str, Any]) -> list[str]:
        """Take ``to_state``'s data back (after the engineering limits). What no longer
        fits the asset (a signal it no longer writes; an operator band outside its
        engineering limits now) is skipped: returns why, one line each."""
        skipped: list[str] = []

        def writable(what: str, entries: Mapping[str, Any]) -> dict[str, Any]:
            gone = sorted(set(entries) - set(self.limits))
            if gone:
                skipped.append(f"{what} of {', '.join(gone)} skipped: not a writable signal "
                               "of the asset any more")
            return {name: value for name, value in entries.items() if name in self.limits}

        self.mode = Mode(state["mode"])
        self.operator_limits = {}
        for name, (lower, upper) in writable("operator limits",
                                             state["operator_limits"]).items():
            try:
                self.operator_limits[name] = operator_limit(name, lower, upper, self.limits[name])
            except ValueError as error:
                skipped.append(f"operator limits skipped: {error}")
        self.last_applied.update({n: Applied(v, t) for n, (v, t)
                                  in writable("last applied value", state["last_applied"]).items()})
        self.measured = dict(state["measured"])
        self.measured_time = float(state["measured_time"])
        self.queue = []
        for entry in state["queue"]:
            if set(entry["setpoints"]) <= set(self.limits):
                self.queue.append(entry)
            else:
                writable(f"queued proposal #{entry['n']}", entry["setpoints"])
        self.next_proposal = int(state["next_proposal"])
        self.pending = writable("interlock close", state.get("pending", {}))
        return skipped


class Gatekeeper:
    """The safety policy and its memory for the assets of one site.

    Args:
        assets: the site's resolved assets (their limits are the writable signals).
        interlocks: the site's interlocks.
        initial: per asset, the first value of each writable signal, at twin time ``t0``.
    """

    def __init__(self, assets: Sequence[AssetConfig], interlocks: Sequence[Interlock],
                 initial: Mapping[str, Mapping[str, float]], t0: float) -> None:
        self.interlocks = list(interlocks)
        self.gates = {asset.id: AssetGate(asset, initial[asset.id], t0) for asset in assets}
        # indexes, so that a decision costs what its own interlocks cost, not the site's
        self._locks: dict[str, list[Interlock]] = {a: [] for a in self.gates}
        self._watching: dict[str, list[TripInterlock]] = {a: [] for a in self.gates}
        for lock in self.interlocks:
            acted = lock.hold + lock.close if isinstance(lock, TripInterlock) else lock.signals
            for asset in dict.fromkeys(key.partition(".")[0] for key in acted):
                self._locks.setdefault(asset, []).append(lock)
            if isinstance(lock, TripInterlock):
                for asset in dict.fromkeys(key.partition(".")[0] for key in lock.when):
                    self._watching.setdefault(asset, []).append(lock)
        for lock in self.interlocks:  # a close needs somewhere safe to go: refuse at start
            for key in lock.close if isinstance(lock, TripInterlock) else ():
                asset, _, signal = key.partition(".")
                if asset in self.gates and signal in self.gates[asset].limits:
                    safe_value(key, self.gates[asset].limits[signal])
        self._keys = {asset: (
            _split({k for lock in locks if isinstance(lock, TripInterlock) for k in lock.when}),
            _split({k for lock in locks if isinstance(lock, CountInterlock) for k in lock.signals}))
            for asset, locks in self._locks.items()}

    def gate(self, asset: str) -> AssetGate:
        try:
            return self.gates[asset]
        except KeyError:
            raise KeyError(f"asset {asset!r} is not registered with the safety gate") from None

    def site_view(self, asset: str, now: float) -> SiteView:
        """What the interlocks acting on ``asset`` see at twin time ``now``: the fresh
        measurements of the signals they watch, the last applied values of those they count."""
        watched, counted = self._keys.get(asset, ((), ()))
        applied = {}
        for key, owner, signal in counted:
            gate = self.gates.get(owner)
            if gate is not None and signal in gate.last_applied:
                applied[key] = gate.last_applied[signal].value
        return SiteView(measured=self._measured(watched, now), applied=applied)

    def _measured(self, keys: Sequence[tuple[str, str, str]], now: float) -> dict[str, float]:
        measured = {}
        for key, owner, signal in keys:
            gate = self.gates.get(owner)
            if gate is not None and signal in gate.measured and gate.fresh(now):
                measured[key] = gate.measured[signal]
        return measured

    def decide_batch(self, requests: Sequence[GateRequest]) -> tuple[list[Decision], set[str]]:
        """One decision per request, in order, and the assets whose gate state changed
        (those of the batch, and those given pending interlock writes)."""
        for request in requests:
            self.gate(request.asset)
            if request.measurement is not None:
                self.gates[request.asset].note_measurement(request.measurement)
        changed = {request.asset for request in requests}
        changed |= self._note_pending(requests)
        return [self._decide_request(request) for request in requests], changed

    def _note_pending(self, requests: Sequence[GateRequest]) -> set[str]:
        """Closes that this batch's measurements trip for assets not in it: kept for their
        next request. Returns the assets given one."""
        measured = {r.asset for r in requests if r.measurement is not None}
        if not measured:
            return set()
        now = max(r.time for r in requests)
        present = {r.asset for r in requests}
        locks = {id(lock): lock for asset in measured for lock in self._watching.get(asset, [])}
        noted = set()
        for lock in locks.values():
            targets = [key.partition(".") for key in lock.close]
            if all(asset in present for asset, _, _ in targets):
                continue
            trip = tripped_by(lock, self._measured(_split(set(lock.when)), now))
            if trip is None:
                continue
            for asset, _, signal in targets:
                gate = self.gates.get(asset)
                if gate is None or asset in present or signal not in gate.limits \
                        or signal in gate.pending:
                    continue
                last = gate.last_applied.get(signal)
                if last is None or last.value > safe_value(signal, gate.limits[signal]):
                    gate.pending[signal] = f"{trip_text(lock, *trip)} at twin time {now:.6g}"
                    noted.add(asset)
        return noted

    def _decide_request(self, request: GateRequest) -> Decision:
        gate = self.gates[request.asset]
        external, restore = self._note_external(request)
        measured = self.site_view(request.asset, request.time).measured
        written, records = trip_writes(
            request.asset, request.time, limits=gate.limits, last_applied=gate.last_applied,
            interlocks=self._locks[request.asset], measured=measured, pending=gate.pending)
        tripped = interlock_tripped(request.asset, self._locks[request.asset], measured)
        gate.pending.clear()
        gate.take(written, request.time)
        records = [*external, *records]
        time = request.time
        for proposal in (restore, request.proposal):
            if proposal is not None:
                decision = self.decide_proposal(proposal, request.measurement_age)
                written = {**written, **decision.applied}
                records += decision.records
                time = decision.time
        return Decision(asset=request.asset, time=time, mode=gate.mode, applied=written,
                        records=records, interlock_tripped=tripped)

    def _note_external(self, request: GateRequest) -> tuple[list[AuditRecord], Proposal | None]:
        """Record the request's writes around the gate and take each external value as
        the signal's last applied one (since ``since``); in AUTONOMOUS mode, also the
        proposal that takes those signals back to the gate's values (else None)."""
        gate = self.gates[request.asset]
        records, back = [], {}
        for write in request.external:
            last = gate.last_applied.get(write.signal)
            finite = math.isfinite(write.value)
            if gate.mode is Mode.AUTONOMOUS and last is not None:
                back[write.signal] = last.value
            records.append(AuditRecord(
                time=request.time, asset=request.asset, user=UNKNOWN_WRITER, source=PLC,
                signal=write.signal, requested=None, applied=write.value if finite else None,
                outcome=Outcome.EXTERNAL,
                reason=_external_text(write, gate.mode, write.signal in back)))
            if last is not None and finite:  # a NaN is no value: the gate keeps its own
                gate.last_applied[write.signal] = Applied(write.value, write.since)
        if not back:
            return records, None
        return records, Proposal(
            asset=request.asset, time=request.time, setpoints=back, source=RESTORE,
            user=RESTORE, reason="the gate takes back a signal written around it at the PLC")

    def decide_proposal(self, proposal: Proposal, measurement_age: float) -> Decision:
        """Gate one proposal with the asset's state as it is now; a QUEUED proposal joins
        the approval queue. Updates the last applied values."""
        gate = self.gate(proposal.asset)
        decision = decide(
            proposal, mode=gate.mode, limits=gate.limits, last_applied=gate.last_applied,
            measurement_age=measurement_age, max_measurement_age=gate.max_measurement_age,
            operator_limits=gate.operator_limits, interlocks=self._locks[proposal.asset],
            site=self.site_view(proposal.asset, proposal.time))
        gate.take(decision.applied, decision.time)
        if any(r.outcome is Outcome.QUEUED for r in decision.records):
            gate.queue.append({"n": gate.next_proposal, "time": proposal.time,
                               "measurement_age": measurement_age,
                               "setpoints": dict(proposal.setpoints), "reason": proposal.reason,
                               "status": proposal.status})
            gate.next_proposal += 1
            del gate.queue[:-QUEUE_LENGTH]
        return decision

    def approve(self, asset: str, number: int, user: str, time_now: float) -> Decision:
        """Gate queued proposal ``number`` again, now, as approved by ``user``: limits,
        rates, interlocks and staleness as they are at approval time."""
        entry = self.take_entry(asset, number)
        proposal = Proposal(asset=asset, time=time_now, setpoints=entry["setpoints"],
                            reason=f"approved proposal #{number}: {entry['reason']}",
                            source="approval", user=user, status=entry["status"])
        return self.decide_proposal(proposal, entry["measurement_age"] + (time_now - entry["time"]))

    def reject(self, asset: str, number: int, user: str,
               time_now: float) -> tuple[dict[str, Any], list[AuditRecord]]:
        """Drop queued proposal ``number``; returns it and the records saying who."""
        entry = self.take_entry(asset, number)
        return entry, [AuditRecord(
            time=time_now, asset=asset, user=user, source="operator", signal=signal,
            requested=value, applied=None, outcome=Outcome.REJECTED,
            reason=f"proposal #{number} rejected by {user} | {entry['reason']}",
        ) for signal, value in entry["setpoints"].items()]

    def take_entry(self, asset: str, number: int) -> dict[str, Any]:
        """Remove queued proposal ``number`` from the queue (LookupError if absent)."""
        gate = self.gate(asset)
        for entry in gate.queue:
            if entry["n"] == number:
                gate.queue.remove(entry)
                return entry
        raise LookupError(f"asset {asset!r} has no queued proposal #{number}; queued: "
                          f"{[e['n'] for e in gate.queue]}")


def _external_text(write: ExternalWrite, mode: Mode, restore: bool) -> str:
    what = (f"external write at the PLC: {write.signal} {write.value:.6g} where the gate "
            f"last wrote {write.gated:.6g}")
    if restore:
        return (f"{what}; AUTONOMOUS: the gate writes its own value back now, at the rate "
                "limit, inside the limits")
    return f"{what}; {mode.value}: held, not overwritten"


def _split(keys: set[str]) -> list[tuple[str, str, str]]:
    """``"<asset>.<signal>"`` keys as (key, asset, signal), sorted."""
    return [(key, key.partition(".")[0], key.partition(".")[2]) for key in sorted(keys)]
