"""One hosted asset of an asset shard (actors.shard): its twin, link, mode and status.

Each tick (period ``period_s`` of twin time), at an instant t the shard runs for every
asset due then:

    measurement = link.measure()                       (the twin's only view of the plant)
    held        = link.read_back()                     (the PLC's output registers: a value
                                                        the gate did not write is an
                                                        external write, sent to the gate)
    request     = loop.advance(t, measurement)         (EKF, MPC on the shard's threads;
                                                        no proposal when OFF)
    decisions   = safety.decide_batch(requests of every asset due at t)   (one call)
    link.apply(decision.applied)                       (only what the gate let through,
                                                        interlock writes in any mode)
    result      = loop.complete(request, decision, applied_at)
                                                       (engine.loop.TickResult; applied_at:
                                                        twin time the writes reached the
                                                        plant)

The link (actors.plant_link) is the plant's PLC over Modbus TCP, the simulated plant in
its plant shard called directly (lock-step tests), or measurements ingested from MQTT.
A rod pump's surface card (engine.cards) comes with its simulated plant's measurement, or
over MQTT or HTTP (``receive_card``): it is diagnosed to its downhole card
(plants.rod_pump.diagnose_card), kept as the asset's last card pair (its screen shows it)
and sent to the historian; the tick's measurement goes on without it.
When no new measurement arrives, the last one ages; the safety watchdog refuses
controller writes once it is older than the asset's ``max_measurement_age_s``.

A write around the gate (at the PLC) is read back at the next tick: the gate records it
(engine.gatekeeper: source ``plc``, outcome ``external``) and, in AUTONOMOUS mode, writes
its own value back at the rate limit; in the other modes the asset holds the external
value as its input (it is what the plant runs on, and later writes of the PLC's other
registers keep it). The status lists the latest external write of each signal
(``external_writes``).

If the safety actor is unreachable or too slow nothing is written, the outputs hold
their last safe value, and the status says so: fail closed. The asset's plain-data
checkpoint (estimator, controller plan, reference, disturbances, tuning, whether it was
running) goes to the safety actor after every tick, off the gating path; a restarted
shard restores it (``restore``). What an operator or engineer decides (reference,
tuning, mode) is committed by the safety actor with its audit record before it takes
effect here, and comes back on any start (``restore``); so does an approved plan, kept in
the site's plan store (``restore_plan``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

import msgspec
import numpy as np
import ray

from actors.plant_link import DirectLink, IngestLink, ModbusLink, PlantLink
from controllers import CONTROLLER_BACKENDS, build_controller, build_estimator
from controllers.backends import check_settings
from controllers.tuning import changes, describe, retune
from engine.alarm_sources import tick_values
from engine.alarm_states import AlarmEvent, AlarmState
from engine.alarms import AlarmSet, AlarmStatus
from engine.cards import CardRecord, SurfaceCard
from engine.config import AssetConfig, ControllerSettings, ModbusSettings, SetpointLimit
from engine.forecast import Forecast, plan_forecast, site_forecast
from engine.history import SeriesSpec, TickRecord, history_signals
from engine.loop import ControlLoop, TickResult
from engine.messages import (
    AuditRecord,
    Decision,
    ExternalWrite,
    GateRequest,
    Measurement,
    MeasurementPayload,
    Mode,
    Outcome,
    Proposal,
    Setpoint,
)
from engine.metrics import AssetMetrics
from engine.plan_store import PlanStore
from engine.registers import PlcMap
from engine.safety import SAFE_STATE, safe_value
from engine.status import (
    AssetStatus,
    AssetSummary,
    ControllerStatus,
    EstimatedQuantity,
    EstimatorStatus,
    ExternalWriteSeen,
    HealthStatus,
    LinkStatus,
    Quantity,
    TimedQuantity,
    annunciated,
    finite_or_none,
)
from plants import (
    card_diagnosis_of,
    health_tracker_of,
    kpi_units_of,
    kpis_of,
    model_of,
    view_of,
)
from plants.pump_health import health_kpis, health_status

log = logging.getLogger(__name__)
SAFETY_TIMEOUT_S = 2.0
"""Wall seconds to wait for the safety actor before failing closed."""
SAFETY_DOWN = "safety unreachable"
ALARM_SOURCE = "alarm"
"""Audit source of alarm transitions (signal: the alarm's name, user: who acted)."""
ANNUNCIATED_ACTIVE = (AlarmState.UNACKNOWLEDGED, AlarmState.ACKNOWLEDGED)
"""States counted by the twinloop_alarms_active gauge."""

Decide = Callable[[list[GateRequest]], Awaitable[tuple[list[Decision] | None, str | None]]]
"""The shard's gate: one decide_batch call; (decisions, None), or (None, why) when the
safety actor did not answer in time."""


def safety_down(error: BaseException, consequence: str) -> str:
    return f"{SAFETY_DOWN} ({type(error).__name__}): {consequence}"


def build_loop(asset: AssetConfig, t0: float) -> ControlLoop:
    """The asset's ControlLoop: its (shared) model, estimator and controller, at twin
    time ``t0``, with the forecast of its site file (engine.forecast.site_forecast). The
    slow part of hosting an asset (seconds for a large do-mpc problem), so a shard runs
    it on its threads."""
    model = model_of(asset)
    return ControlLoop(asset.id, model, build_estimator(model, asset.resolved_estimator()),
                       build_controller(model, asset.resolved_controller(), asset.limits),
                       x0=asset.initial, u0=asset.inputs, d=asset.disturbances,
                       reference=asset.reference, t0=t0,
                       forecast=site_forecast(asset, model, t0))


class HostedAsset:
    """Twin state, estimator, controller, link and status of one asset in a shard."""

    def __init__(self, asset: AssetConfig, loop: ControlLoop, t0: float,
                 now: Callable[[], float], safety, decide: Decide, numerics: Executor,
                 plant=None, plc: PlcMap | None = None,
                 modbus: ModbusSettings = ModbusSettings(), phase: float = 0.0) -> None:
        """``loop`` is the asset's ControlLoop (build_loop), ``now`` the shard's twin
        clock, ``decide`` its batched gate and ``numerics`` its thread pool. ``plant`` is
        the asset's simulated plant (an AssetHandle onto its plant shard; None for a plant
        outside the twin); given ``plc``, its register map, the asset talks to the plant's
        PLC over Modbus TCP. ``phase`` (twin s) offsets its deadlines within its period
        (engine.tick_phases)."""
        self.config = asset
        self.id = asset.id
        self.plant = plant
        self.safety = safety
        self.now = now
        self._decide = decide
        self._numerics = numerics
        self.link: PlantLink
        if asset.measurement_source == "mqtt":
            self.link = IngestLink(asset.id)
        elif plc is not None:
            self.link = ModbusLink(plc, timeout_s=modbus.timeout_s,
                                   retry_initial_s=modbus.retry_initial_s,
                                   retry_max_s=modbus.retry_max_s)
        else:
            self.link = DirectLink(plant)
        self.publisher = None
        self._samples = msgspec.msgpack.Decoder(list[MeasurementPayload])
        self.model = loop.model
        self.loop = loop
        self.site_forecast = loop.forecast
        """The site file's forecast (engine.forecast), under an approved plan's."""
        self.period = asset.resolved_period_s()
        self.epoch = t0 + phase
        """Deadlines are epoch + k period: the site clock's epoch, shared by every shard,
        plus the asset's phase, so that assets of equal periods and phases meet at the
        same instants."""
        self.k: int | None = None
        """Index of the next deadline; None while not running."""
        self.last_tick = t0
        self.overruns = 0
        self.mode = Mode(asset.mode)
        self.metrics = AssetMetrics()
        self.setpoint_times = dict.fromkeys(asset.limits, t0)
        self.proposal: Proposal | None = None
        self.result: TickResult | None = None
        self.safety_error: str | None = None
        self.tick_error: str | None = None
        self.restarted = False
        self.lock = asyncio.Lock()
        self._tuning_lock = asyncio.Lock()
        self.on_status: Callable[[AssetStatus], None] | None = None
        """Where each status built goes (the shard's push to the status board)."""
        self.revision = 0
        self.external_writes: dict[str, ExternalWriteSeen] = {}
        """The latest write around the gate of each signal, as the status shows it."""
        self.restore_report: list[str] = []
        """What this asset's restore point held that no longer fits it, and was skipped."""
        self.built_at: float | None = None
        """Wall-clock time of the latest status built (engine.status.AssetStatus.built_at)."""
        self.alarms = AlarmSet(asset.id, asset.alarms)
        self._diagnose_card = card_diagnosis_of(asset)
        self.card: CardRecord | None = None
        """The newest card pair received (a rod pump's surface card and its diagnosed
        downhole card), None before the first."""
        self.on_card: Callable[[CardRecord], None] | None = None
        """Where each card pair goes (the shard's historian feed)."""
        self.kpi_units = kpi_units_of(asset)
        self.kpis: dict[str, float] = {}
        """The kind's KPIs at the last tick's estimate and newest card (plants.kpis_of), SI."""
        self.health_tracker = health_tracker_of(asset, self.model)
        self.health: HealthStatus | None = None
        self.kpi_error: str | None = None
        self._alarm_time = -math.inf
        """Twin time of the last alarm evaluation or action: alarm time never goes back
        (an operator action may come between a tick's instant and its completion)."""

    # -- restarts --------------------------------------------------------------------------

    def restore(self, point: dict[str, Any], restarted: bool) -> dict[str, Any]:
        """Take a restore point of the safety actor: mode, decided tuning (with the
        gate's engineering limits) and reference, last applied values and, ``restarted``
        (this process replaces a killed one), the checkpoint (None before the first tick).
        A decided reference of an output the asset no longer has, or a tuning its model
        no longer takes, is skipped and logged (``restore_report``). Returns the
        checkpoint (empty if none)."""
        self.restarted = restarted
        self.mode = Mode(point["mode"])
        settings = self.config.resolved_controller()
        if point["tuning"] is not None:
            try:
                settings = msgspec.convert(point["tuning"], ControllerSettings)
            except msgspec.ValidationError as error:
                self._skip(f"controller tuning skipped: {error}")
        limits = msgspec.convert(point["limits"], dict[str, SetpointLimit])
        try:
            check_settings(self.model, settings, limits, CONTROLLER_BACKENDS)
        except ValueError as error:
            self._skip(f"controller tuning skipped: {error}")
            settings = self.config.resolved_controller()
        self._retuned(settings, limits)
        checkpoint = point["checkpoint"]
        if checkpoint is not None:
            self.loop.restore(checkpoint["loop"])
            if checkpoint["tuning"] == msgspec.to_builtins(settings):  # its plan fits
                self.loop.controller.restore(checkpoint["controller"])
            self.setpoint_times.update(checkpoint["setpoint_times"])
            self.last_tick = checkpoint["clock"]
            if "alarms" in checkpoint:
                self.alarms.restore(checkpoint["alarms"])
                self._alarm_time = checkpoint["alarms"]["time"] or -math.inf
        for name, value in point["reference"].items():
            try:
                self.loop.set_reference({name: value})
            except ValueError as error:
                self._skip(f"reference {name} = {value:g} skipped: {error}")
        applied = {name: value for name, (value, _) in point["last_applied"].items()}
        self.loop.applied(applied)
        return checkpoint or {}

    def _skip(self, why: str) -> None:
        log.warning("asset %s restore: %s", self.id, why)
        self.restore_report.append(f"asset {self.id!r}: {why}")

    def checkpoint(self) -> dict[str, Any]:
        """Plain-data state a restarted shard resumes from; ``tuning`` says which
        controller the plan belongs to (the tuning itself is kept as decided)."""
        return {"loop": self.loop.checkpoint(), "controller": self.loop.controller.checkpoint(),
                "tuning": msgspec.to_builtins(self.config.controller),
                "setpoint_times": self.setpoint_times, "clock": self.last_tick,
                "running": self.running, "alarms": self.alarms.checkpoint()}

    def _retuned(self, settings: ControllerSettings, limits: dict[str, SetpointLimit]) -> None:
        """Run the controller of a decided tuning (an engineer's retune outlives a
        restart), unless it is the one already running."""
        if settings != self.config.controller or limits != self.config.limits:
            self.loop.controller = build_controller(self.model, settings, limits)
            self.config = msgspec.structs.replace(self.config, controller=settings, limits=limits)

    # -- the tick, in two halves around the shard's batched gate ---------------------------

    @property
    def running(self) -> bool:
        return self.k is not None

    @property
    def next_deadline(self) -> float:
        """Twin time of the next tick (inf while not running)."""
        return math.inf if self.k is None else self.epoch + self.k * self.period

    def schedule(self, after: float) -> None:
        """Tick at every deadline after twin time ``after``."""
        self.k = math.floor((after - self.epoch) / self.period + 1e-9) + 1

    def resume(self, now: float, last_tick: float) -> None:
        """After a restart: run the deadline missed since ``last_tick`` at once (if one
        was), then every deadline after it."""
        missed = math.floor((now - self.epoch) / self.period + 1e-9)
        self.k = missed if self.epoch + missed * self.period > last_tick + 1e-9 else missed + 1

    def take_deadline(self) -> None:
        """The deadline due now is run: the next one is a period later."""
        if self.k is None:
            raise RuntimeError(f"asset {self.config.id!r} is not running: no deadline is due")
        self.k += 1

    async def advance(self, t: float) -> GateRequest:
        """Measure, then observe and propose on the shard's threads. A failure of the
        link or the numerics is reported; the request then carries what there is."""
        measurement: Measurement | None = None
        external: list[ExternalWrite] = []
        propose = self.mode is not Mode.OFF
        try:
            measurement = await self.link.measure()
            if measurement is not None and measurement.card is not None:
                await self._plant_card(measurement.card)
                measurement = msgspec.structs.replace(measurement, card=None)
            external = self._external(await self.link.read_back())
            request = await self._numeric(self._advance, t, measurement, propose)
        except Exception as error:  # a failed tick is reported, and the next one tries again
            self.tick_error = f"{type(error).__name__}: {error}"
            self.kpis = {}
            return GateRequest(asset=self.id, time=t, measurement=measurement,
                               measurement_age=self.loop.measurement_age(t), proposal=None,
                               external=external)
        self.tick_error = None
        if external:
            request = msgspec.structs.replace(request, external=external)
        if request.proposal is not None:
            self.proposal = request.proposal
            self.metrics.solve_seconds.observe(request.proposal.solve_time_s)
        return request

    async def complete(self, request: GateRequest, decision: Decision | None,
                       error: str | None, started: float) -> TickResult:
        """Write what the gate let through (None: it did not answer, ``error`` says why:
        nothing is written) and account for the tick."""
        self._note_external(request, decision)
        applied_at = None if decision is None else await self._write(decision)
        if applied_at is None:
            decision = None
        if error is not None:
            self.safety_error = error
        result = self.loop.complete(request, decision, applied_at)
        self.result = result
        self.last_tick = request.time
        self.metrics.anomalies += result.estimate is not None and result.estimate.anomaly
        self.metrics.ticks += 1
        self.metrics.overruns = self.overruns
        self.metrics.tick_seconds.observe(time.perf_counter() - started)
        self.metrics.estimates = self.model.states.mapping(self.loop.x)
        self.metrics.nis = self.loop.state.nis
        self._alarmed(self.alarms.evaluate(self._alarm_clock(result.time),
                                           self._alarm_values(result)))
        self.notify()
        if self.publisher is not None:
            self.publisher.publish_estimate.remote(self.loop.estimate())
        return result

    def _external(self, held: dict[str, float] | None) -> list[ExternalWrite]:
        """The registers read back (``held``; None: not read) whose float32 differs from
        the last gated write: at least one step of the register's resolution."""
        if held is None:
            return []
        gated = self._written({})
        return [ExternalWrite(signal=name, value=value, gated=gated[name], since=self.last_tick)
                for name, value in held.items()
                if name in gated and not value == float(np.float32(gated[name]))]

    def _note_external(self, request: GateRequest, decision: Decision | None) -> None:
        """Show the request's external writes in the status; once the gate has them on
        record, hold those it does not take back (the plant runs on them)."""
        if not request.external:
            return
        held = {} if decision is None else {
            w.signal: w.value for w in request.external
            if w.signal not in decision.applied and math.isfinite(w.value)}
        for write in request.external:
            action = ("unrecorded: the safety actor did not answer" if decision is None
                      else "restored by the gate" if write.signal in decision.applied
                      else "held" if write.signal in held else "not a number: not held")
            self.external_writes[write.signal] = ExternalWriteSeen(
                signal=write.signal, value=finite_or_none(write.value),
                unit=self._signal(write.signal).unit, time=request.time, gated=write.gated,
                action=action)
        if held and decision is not None:
            self.loop.applied(held, decision.time)
            self.setpoint_times.update(dict.fromkeys(held, request.time))

    async def _write(self, decision: Decision) -> float | None:
        """Apply a decision's writes to the plant; returns the twin time they reached it
        (the decision's time when there is nothing to write), None if they did not.

        That time is the middle of the write's round trip on the shard's clock (the PLC
        applies a write when it receives it), within half the round trip of the truth;
        in lock-step the clock stands still and it is the decision's time."""
        self.safety_error = None
        self.mode = decision.mode
        for record in decision.records:
            self.metrics.decisions[record.outcome.value] += 1
        if not decision.applied:
            return decision.time
        sent = self.now()
        try:
            await self.link.apply(decision.applied, self._written(decision.applied))
        except Exception as error:
            self.tick_error = f"{type(error).__name__}: {error}"
            return None
        applied_at = max(decision.time, (sent + self.now()) / 2)
        self.setpoint_times.update(dict.fromkeys(decision.applied, applied_at))
        if self.publisher is not None:
            self.publisher.publish_setpoints.remote(
                Setpoint(asset=self.id, time=applied_at, values=decision.applied))
        return applied_at

    def notify(self) -> None:
        """The status changed (a tick, an operator action): count a new revision (so that
        a reader can tell an older snapshot from a newer one) and publish it."""
        self.revision += 1
        self.publish_status()

    def publish_status(self) -> AssetStatus:
        """Build the status once and hand it to ``on_status``; returns it."""
        status = self.status()
        if self.on_status is not None:
            self.on_status(status)
        return status

    # -- alarms and history ----------------------------------------------------------------

    def _alarm_clock(self, t: float) -> float:
        self._alarm_time = max(self._alarm_time, t)
        return self._alarm_time

    def _alarm_values(self, result: TickResult) -> dict[str, float]:
        """The named values of this tick the alarms watch (engine.alarm_sources)."""
        max_age = self.config.max_measurement_age_s
        return tick_values(
            measurement=result.measurement, estimate=result.estimate, proposal=result.proposal,
            mode=self.mode, measurement_age=result.measurement_age,
            max_measurement_age=math.inf if max_age is None else max_age,
            interlock_tripped=result.decision is not None and result.decision.interlock_tripped,
            kpis=self.kpis)

    def _alarm_records(self, events: list[AlarmEvent]) -> list[AuditRecord]:
        return [AuditRecord(time=e.time, asset=self.id, user=e.user, source=ALARM_SOURCE,
                            signal=e.alarm.partition(":")[2], requested=None, applied=None,
                            outcome=Outcome.ACCEPTED,
                            reason=f"{e.from_state} -> {e.to_state} ({e.priority}): {e.reason}")
                for e in events]

    def _alarmed(self, events: list[AlarmEvent], audited: bool = False) -> None:
        """Count ``events`` and refresh the active-alarm gauge; the process's transitions
        go to the audit fire and forget (``audited``: the caller has recorded them)."""
        self.metrics.alarm_transitions += len(events)
        active = dict.fromkeys(self.metrics.alarms_active, 0)
        for alarm in self.alarms.status():
            if alarm.state in ANNUNCIATED_ACTIVE:
                active[alarm.priority.value] += 1
        self.metrics.alarms_active = active
        if events and not audited:
            self.safety.note.remote(self._alarm_records(events))
        if events and self.publisher is not None:
            self.publisher.publish_alarms.remote(events)

    def alarm_status(self) -> list[AlarmStatus]:
        """Every alarm of the asset (engine.alarms.AlarmStatus), in settings order."""
        return self.alarms.status()

    async def alarm_action(self, name: str, action: str, user: str,
                           duration_s: float | None = None, reason: str = "") -> AlarmStatus:
        """An operator's ``action`` on alarm ``name``: "acknowledge", "shelve" (for
        ``duration_s`` twin seconds) or "unshelve", at the twin's time now, recorded in the
        audit with ``user`` before it counts. KeyError for an unknown alarm,
        AlarmActionError (a ValueError) when its state does not allow the action,
        ValueError for a bad duration, RuntimeError if the safety actor does not record
        it (then nothing changed)."""
        async with self.lock:  # no tick between the action and its audit record
            before = self.alarms.checkpoint()
            t = self._alarm_clock(self.now())
            if action == "acknowledge":
                events = self.alarms.acknowledge(name, t, user, reason)
            elif action == "shelve":
                if duration_s is None:
                    raise ValueError(f"alarm {name!r}: shelve needs duration_s (twin seconds)")
                events = self.alarms.shelve(name, t, user, duration_s, reason)
            elif action == "unshelve":
                events = self.alarms.unshelve(name, t, user, reason)
            else:
                raise ValueError(f"alarm action {action!r}: not acknowledge, shelve or unshelve")
            try:
                await self._ask(self.safety.note, self._alarm_records(events))
            except RuntimeError:
                self.alarms.restore(before)
                raise
            self._alarmed(events, audited=True)
            with contextlib.suppress(RuntimeError):  # else with the next tick's checkpoint
                await self._ask(self.safety.store_checkpoints, {self.id: self.checkpoint()},
                                deadline=False)
        self.notify()
        return next(s for s in self.alarms.status() if s.name == name)

    def _advance(self, t: float, measurement: Measurement | None,
                 propose: bool) -> GateRequest:
        """The loop's numerical half of the tick, then the asset's KPIs (_assess); on the
        shard's threads. A failure of the KPIs is reported (``kpi_error``) and leaves
        them empty; it never stops the tick."""
        request = self.loop.advance(t, measurement, propose)
        try:
            self.kpis = self._assess(measurement)
            self.kpi_error = None
        except Exception as error:  # the tick goes on without its KPIs
            self.kpis = {}
            self.kpi_error = f"KPIs: {type(error).__name__}: {error}"
        return request

    def _assess(self, measurement: Measurement | None) -> dict[str, float]:
        """The kind's KPIs at the estimate with the inputs the plant ran on until the
        measurement and, for a rod pump, from its newest measured card pair (``card``)
        when there is one (plants.kpis_of: only a well without a card predicts one, in
        milliseconds) and, for a kind that tracks its health, the tick's degradation
        samples (``measurement``, None: none this tick) and the health from them
        (``health``, and its KPIs)."""
        loop, model = self.loop, self.model
        kpis = kpis_of(self.config, model, loop.x, loop.u, loop.d, loop.parameters(),
                       self.card)
        tracker = self.health_tracker
        if tracker is None:
            return kpis
        health = tracker.latest
        if measurement is not None:
            estimate = loop.estimate()
            ambient = model.disturbances.mapping(loop.d)["T_ambient"]
            health = tracker.add(estimate.time, estimate.values, estimate.std,
                                 measurement.values, ambient)
        if health is not None:
            kpis.update(health_kpis(health))
            self.health = health_status(health)
        return kpis

    def history_specs(self) -> list[SeriesSpec]:
        """The series this asset records, with their SI units (engine.history)."""
        return history_signals(self.id, self.model,
                               estimated=self.loop.estimator.parameter_names,
                               kpi_units=self.kpi_units)

    def tick_record(self, result: TickResult) -> TickRecord:
        """What the historian records of the tick ``result``."""
        return TickRecord(
            asset=self.id, time=result.time, measurement=result.measurement,
            estimate=result.estimate,
            requested={} if result.proposal is None else dict(result.proposal.setpoints),
            applied=dict(result.applied), reference=dict(self.loop.reference), mode=self.mode,
            kpis=dict(self.kpis))

    def _measurement_age(self, t: float) -> float:
        """Twin seconds since the newest measurement was sampled (inf before the first)."""
        return self.loop.measurement_age(t)

    async def _numeric(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._numerics, function, *args)

    async def _ask(self, method, *args, deadline: bool = True):
        """Call a safety-actor ``method``; if it does not answer within SAFETY_TIMEOUT_S,
        RuntimeError. With ``deadline`` the actor drops the request once the wait is
        over, so that an unanswered change is a change not made."""
        kwargs = {"deadline": time.time() + SAFETY_TIMEOUT_S} if deadline else {}
        try:
            return await asyncio.wait_for(method.remote(*args, **kwargs), SAFETY_TIMEOUT_S)
        except (TimeoutError, ray.exceptions.RayActorError) as error:
            raise RuntimeError(safety_down(error, "nothing changed")) from None

    async def _gate(self, proposal: Proposal | None, approve: int | None = None,
                    user: str = "") -> Decision | None:
        """Ask the safety actor (to decide an operator's ``proposal`` through the shard's
        gate, or to approve queued proposal number ``approve``); write only what it lets
        through. Fails closed."""
        if proposal is not None:
            decisions, error = await self._decide([GateRequest(
                asset=self.id, time=proposal.time, measurement=None,
                measurement_age=self._measurement_age(proposal.time), proposal=proposal)])
            if decisions is None:
                self.safety_error = error
                return None
            decision = decisions[0]
        else:
            try:
                decision = await asyncio.wait_for(self.safety.approve.remote(
                    self.id, approve, user, self.now(), time.time() + SAFETY_TIMEOUT_S),
                    SAFETY_TIMEOUT_S)
                if decision is None:
                    raise TimeoutError("answered after the deadline")
            except (TimeoutError, ray.exceptions.RayActorError) as error:
                self.safety_error = safety_down(
                    error, "nothing written, outputs hold their last safe value")
                return None
        if decision is None:
            return None
        applied_at = await self._write(decision)
        if applied_at is None:
            raise RuntimeError(f"asset {self.id}: the write did not reach the plant: "
                               f"{self.tick_error}")
        self.loop.applied(decision.applied, applied_at)
        return decision

    def _written(self, applied: dict[str, float]) -> dict[str, float]:
        """Every value the plant's PLC holds for this asset, its inputs and its writable
        disturbances, with ``applied`` over the values written before."""
        model = self.model
        held = {**model.inputs.mapping(self.loop.u),
                **{name: value for name, value in model.disturbances.mapping(self.loop.d).items()
                   if name in self.config.limits}}
        return {**held, **applied}

    # -- operator requests --------------------------------------------------------------

    async def set_reference(self, values: dict[str, float], user: str) -> dict[str, float]:
        """Change output targets, on record first. Unknown outputs or values outside
        bounds raise ValueError, an unreachable safety actor RuntimeError; either way
        nothing changes."""
        try:
            checked = self.model.outputs.check(values)
        except KeyError as error:
            raise ValueError(error.args[0]) from None
        before = self.loop.reference
        await self._ask(self.safety.set_reference, self.config.id, checked, [AuditRecord(
            time=self.now(), asset=self.config.id, user=user, source="operator",
            signal=name, requested=value, applied=value, outcome=Outcome.ACCEPTED,
            reason=f"reference {name} {before.get(name, math.nan):.6g} -> {value:.6g} "
                   f"{self.model.outputs[name].unit}",
        ) for name, value in checked.items()])
        async with self.lock:
            reference = self.loop.set_reference(checked)
        self.notify()
        return reference

    async def follow_plan(self, entry: dict[str, Any]) -> str | None:
        """Drive the controller by an approved plan (engine.plan_store entry, approved
        and audited by actors.lookahead): its hourly flow and prices as the forecast and
        its injections and pump speeds as the MPC's input targets over its hours
        (engine.forecast.plan_forecast), the site's forecast after them, until a newer
        approval. Returns what drives the controller now."""
        return await self._follow(self._approved_forecast(entry))

    async def restore_plan(self, plans: PlanStore) -> None:
        """Follow the asset's approved plan in ``plans`` (its highest approved version, if
        any) again after a start or restart, as ``follow_plan`` did when it was approved,
        unless it has ended by the loop's twin time. A plan that cannot be read or no
        longer fits the asset (its model lost the plan's signal, a value is outside its
        bounds, a controller without a horizon) is skipped and logged (``restore_report``)."""
        try:
            entry = plans.approved(self.id)
            if entry is None:
                return
            forecast = self._approved_forecast(entry)
            if forecast.until > self.loop.t:
                await self._follow(forecast)
        except (OSError, ValueError, TypeError, KeyError) as error:
            self._skip(f"approved plan skipped: {error}")

    def _approved_forecast(self, entry: dict[str, Any]) -> Forecast:
        """An approved plan as the forecast over the site's; ValueError if not approved."""
        if entry.get("status") != "approved":
            raise ValueError(f"plan version {entry.get('version')} of {self.id!r} is "
                             f"{entry.get('status')}, not approved: it cannot drive the "
                             "controller")
        return plan_forecast(self.model, entry).over(self.site_forecast)

    async def _follow(self, forecast: Forecast) -> str | None:
        async with self.lock:
            self.loop.follow(forecast)
        self.notify()
        return forecast.driving(self.loop.t)

    async def set_mode(self, mode: str, user: str) -> str:
        self.mode = Mode(await self._ask(self.safety.set_mode, self.config.id, Mode(mode), user,
                                         self.now()))
        self.notify()
        return self.mode.value

    async def write_setpoints(self, values: dict[str, float], user: str) -> dict[str, Any]:
        """Operator setpoints, gated like any other (MANUAL, ADVISORY or AUTONOMOUS).
        Unknown or unwritable signals and values outside the signal's bounds raise
        ValueError; an unreachable safety actor raises RuntimeError (nothing written)."""
        for name, value in values.items():
            self._writable(name).check(value)
        proposal = Proposal(asset=self.config.id, time=self.now(), setpoints=values,
                            reason="operator setpoint", source="operator", user=user)
        async with self.lock:
            decision = await self._gate(proposal)
        return self._answer(decision)

    async def safe_state(self, user: str) -> dict[str, Any]:
        """Propose every writable signal's safe value (source "safe-state", any mode),
        through the gate like any other write: clamped to the engineering limits and
        audited under ``user``. An unreachable safety actor raises RuntimeError."""
        proposal = Proposal(asset=self.id, time=self.now(),
                            setpoints={name: safe_value(name, limit)
                                       for name, limit in self.config.limits.items()},
                            reason=f"safe state requested by {user}", source=SAFE_STATE,
                            user=user)
        async with self.lock:
            decision = await self._gate(proposal)
        return self._answer(decision)

    async def proposals(self) -> list[dict[str, Any]]:
        """ADVISORY proposals awaiting approval, oldest first, each with its reason."""
        return await self._ask(self.safety.proposals, self.config.id, deadline=False)

    async def approve(self, number: int, user: str) -> dict[str, Any]:
        """Write queued proposal ``number``, gated again now (limits, rates, interlocks,
        staleness at approval time). An unknown number raises LookupError."""
        async with self.lock:
            decision = await self._gate(None, approve=number, user=user)
        return self._answer(decision)

    async def reject(self, number: int, user: str) -> dict[str, Any]:
        """Drop queued proposal ``number`` (LookupError if unknown); nothing is written."""
        return await self._ask(self.safety.reject, self.config.id, number, user,
                               self.now())

    async def limits(self) -> dict[str, dict[str, float]]:
        return await self._ask(self.safety.limits, self.config.id, deadline=False)

    async def set_operator_limits(self, bands: dict[str, tuple[float, float]],
                                  user: str) -> dict[str, dict[str, float]]:
        """Narrow writable signals to operator bands inside the engineering limits;
        a band outside them raises ValueError and changes nothing."""
        return await self._ask(self.safety.set_operator_limits, self.config.id, bands, user,
                               self.now())

    def _signal(self, name: str):
        """The input or disturbance ``name`` (a PLC holding register holds one)."""
        model = self.model
        return model.inputs[name] if name in model.inputs else model.disturbances[name]

    def _writable(self, name: str):
        if name not in self.config.limits:
            raise ValueError(f"unknown signal {name!r}: writable signals of {self.config.id} "
                             f"are {', '.join(self.config.limits)}")
        model = self.model
        return model.inputs[name] if name in model.inputs else model.disturbances[name]

    def _answer(self, decision: Decision | None) -> dict[str, Any]:
        if decision is None:
            raise RuntimeError(self.safety_error)
        self.notify()
        return {"applied": decision.applied, "time": decision.time, "mode": decision.mode.value,
                "revision": self.revision,
                "records": [{"signal": r.signal, "outcome": r.outcome.value, "reason": r.reason}
                            for r in decision.records]}

    # -- measurements pushed in, estimates and setpoints published out -----------------

    def ingest(self, batch: bytes) -> int:
        """Take checked samples from a gateway (MQTT): a msgpack-encoded list of
        MeasurementPayload. The next tick uses the newest. Returns how many samples this
        asset has received in all."""
        if not isinstance(self.link, IngestLink):
            raise ValueError(f"asset {self.config.id!r} takes its measurements from its plant "
                             "(measurement_source = \"plant\"), not from a gateway")
        self.link.ingest(self._samples.decode(batch))
        return self.link.received

    async def receive_card(self, card: SurfaceCard) -> CardRecord:
        """Diagnose one stroke's surface card (plants.rod_pump.diagnose_card, with the
        twin's current parameters, on the shard's threads), keep the newest pair as
        ``card`` and hand it to ``on_card``. ValueError, naming the field and the bound,
        for a card that cannot be diagnosed or an asset whose kind takes none; the asset's
        last card pair is then unchanged."""
        if self._diagnose_card is None:
            raise ValueError(f"asset {self.id!r} ({self.config.kind}) takes no dynamometer "
                             "cards")
        parameters = self.model.parameters.mapping(self.loop.parameters())
        record = await self._numeric(self._diagnose_card, card, parameters)
        if self.card is None or record.time >= self.card.time:
            self.card = record
        if self.on_card is not None:
            self.on_card(record)
        return record

    async def _plant_card(self, card: SurfaceCard) -> None:
        """A card the plant link delivered with its measurement: one it cannot diagnose is
        logged and leaves the measurement's scalar outputs to the tick."""
        try:
            await self.receive_card(card)
        except ValueError as error:
            log.warning("asset %s: card of the stroke at %s refused: %s", self.id, card.time,
                        error)

    def attach_publisher(self, publisher) -> None:
        """Publish every estimate, applied setpoint and alarm transition through
        ``publisher`` (MQTT gateway)."""
        self.publisher = publisher

    async def set_controller(self, change: dict[str, Any], user: str) -> dict[str, Any]:
        """Retune the controller without restarting the asset (see controllers.tuning).

        The change is checked, the new controller built on the numerics thread and the
        new tuning and limits committed by the safety actor with their audit records (so
        that they outlive a restart) before the new controller replaces the old one; a
        ValueError at any of these steps leaves the old controller and limits in place.
        Returns the new tuning."""
        async with self._tuning_lock:
            before = self.controller_tuning()
            settings, limits = retune(self.model, self.config.resolved_controller(),
                                      self.config.limits, change, CONTROLLER_BACKENDS)
            controller = await self._numeric(build_controller, self.model, settings, limits)
            after = describe(self.model, settings, limits, CONTROLLER_BACKENDS)
            changed = changes(before, after)
            t = self.now()
            notes = [AuditRecord(
                time=t, asset=self.config.id, user=user, source="operator",
                signal="controller", requested=None, applied=None,
                outcome=Outcome.ACCEPTED, reason="tuning: " + "; ".join(changed),
            )] if changed else []
            await self._ask(self.safety.set_tuning, self.config.id,
                            msgspec.to_builtins(settings), limits, notes, user, t)
            async with self.lock:
                self.loop.controller = controller
                self.config = msgspec.structs.replace(self.config, controller=settings,
                                                      limits=limits)
            self.notify()  # the status names the backend
            return after

    # -- what-if and plans: read-only forks of the live twin ------------------------------

    async def fork(self, user: str, what: str) -> dict[str, Any]:
        """The twin's state as a what-if or a plan starts from (controllers.whatif.Fork
        fields but the site's interlocks): the resolved asset with its live tuning and
        limits, the mode, the loop's and the controller's checkpoints and the operator
        bands. Taken between ticks (under the asset's lock: a copy, nothing changes); the
        request is audited as a read by ``user`` (``what`` says which), first: an
        unreachable safety actor raises RuntimeError and nothing is handed out."""
        t = self.now()
        await self._ask(self.safety.note, [AuditRecord(
            time=t, asset=self.id, user=user, source="operator", signal=what.split()[0],
            requested=None, applied=None, outcome=Outcome.ACCEPTED, reason=f"read: {what}")])
        limits = await self.limits()
        async with self.lock:
            return {"asset": self.config, "time": self.loop.t, "mode": self.mode,
                    "loop": self.loop.checkpoint(),
                    "controller": self.loop.controller.checkpoint(),
                    "operator_limits": {name: (limit["operator_lower"], limit["operator_upper"])
                                        for name, limit in limits.items()
                                        if "operator_lower" in limit}}

    # -- queries ------------------------------------------------------------------------

    def status(self) -> AssetStatus:
        """The asset's status now (engine.status.AssetStatus)."""
        model, loop = self.model, self.loop
        estimate = loop.estimate()
        last = loop.last_measurement
        proposal = self.proposal
        link = self.link.status()
        return AssetStatus(
            id=self.id,
            kind=self.config.kind,
            mode=self.mode,
            time=loop.t,
            revision=self.revision,
            healthy=self._healthy(link),
            link=link,
            measurement_age_s=finite_or_none(self._measurement_age(self.now())),
            estimate={name: EstimatedQuantity(value=value, unit=model.states[name].unit,
                                              std=estimate.std[name])
                      for name, value in estimate.values.items()},
            measurement={} if last is None else {
                name: TimedQuantity(value=value, unit=model.outputs[name].unit, time=last.time)
                for name, value in last.values.items()},
            setpoints={name: TimedQuantity(value=value, unit=self._writable(name).unit,
                                           time=self.setpoint_times[name])
                       for name, value in {**model.inputs.mapping(loop.u),
                                           **model.disturbances.mapping(loop.d)}.items()
                       if name in self.config.limits},
            reference={name: Quantity(value=value, unit=model.outputs[name].unit)
                       for name, value in loop.reference.items()},
            controller=ControllerStatus(
                backend=loop.controller.backend,
                status=None if proposal is None else proposal.status,
                solve_time_s=None if proposal is None else proposal.solve_time_s,
                reason=None if proposal is None else proposal.reason,
                predicted={} if proposal is None else proposal.predicted,
                forecast=None if loop.forecast is None else loop.forecast.driving(loop.t)),
            nis=estimate.nis,
            estimator=self._estimator_status(),
            period_s=self.period,
            ticks=self.metrics.ticks,
            overruns=self.overruns,
            errors=[e for e in (link.error, self.safety_error, self.tick_error,
                                self.kpi_error) if e],
            outputs_held=self.safety_error is not None,
            restarted=self.restarted,
            external_writes=sorted(self.external_writes.values(), key=lambda w: w.time),
            alarms=self.alarms.status(),
            alarm_flood=self.alarms.flooding(max(self._alarm_time, loop.t)),
            built_at=self._stamp(),
            kpis={name: Quantity(value=finite_or_none(value), unit=self.kpi_units[name])
                  for name, value in self.kpis.items()},
            health=self.health,
        )

    def _stamp(self) -> float:
        """Now, wall clock: when the status being built was built."""
        self.built_at = time.time()
        return self.built_at

    def _estimator_status(self) -> EstimatorStatus:
        """Kind, estimated parameters, and the last innovation with its chi-square test."""
        loop, model = self.loop, self.model
        state, estimate = loop.state, loop.estimate()
        return EstimatorStatus(
            kind=loop.estimator.kind,
            parameters={name: EstimatedQuantity(value=value, unit=model.parameters[name].unit,
                                                std=estimate.parameter_std[name])
                        for name, value in estimate.parameters.items()},
            innovation={name: Quantity(value=value, unit=model.outputs[name].unit)
                        for name, value in model.outputs.mapping(state.innovation).items()},
            nis=estimate.nis,
            dof=state.dof,
            nis_threshold=finite_or_none(state.nis_threshold),
            significance=self.config.resolved_estimator().significance,
            anomaly=state.anomaly,
            anomalies=self.metrics.anomalies,
            persistent_anomaly=loop.persistent_anomaly,
            recent_anomalies=f"{loop.anomalies.count} of the last {loop.anomalies.size}",
        )

    async def view(self) -> bytes:
        """What the asset's operator screen shows (plants.views), at the twin's estimate,
        JSON-encoded; computed on the shard's threads (a rod pump's cards take ms)."""
        loop = self.loop
        measured = {} if loop.last_measurement is None else loop.last_measurement.values
        card = self.card

        def compute() -> bytes:
            return msgspec.json.encode(view_of(self.config, self.model, loop.x, loop.u, loop.d,
                                               loop.parameters(), loop.reference, measured,
                                               card))

        return await asyncio.get_running_loop().run_in_executor(self._numerics, compute)

    def controller_tuning(self) -> dict[str, Any]:
        return describe(self.model, self.config.resolved_controller(), self.config.limits,
                        CONTROLLER_BACKENDS)

    def _healthy(self, link: LinkStatus) -> bool:
        return (self.safety_error is None and self.tick_error is None
                and link.error is None and not self.loop.persistent_anomaly)

    def summary(self) -> AssetSummary:
        return AssetSummary(id=self.id, kind=self.config.kind, mode=self.mode,
                            healthy=self._healthy(self.link.status()), built_at=self.built_at,
                            alarms=annunciated(self.alarms.status()))

    def metrics_snapshot(self) -> dict[str, Any]:
        return self.metrics.snapshot(self.config.id, self.config.kind)

