"""AssetActor: one asset's twin, a thin async wrapper around engine.loop.ControlLoop.

Each tick (period ``period_s`` of twin time):

    measurement = link.measure()                       (the twin's only view of the plant)
    estimate    = estimator.step(u, y, dt)             (EKF; skipped if nothing new came)
    proposal    = controller.step(t, x_hat, u, d, r)   (MPC; skipped when OFF)
    decision    = safety.decide(proposal, age)          (limits, rates, watchdog, mode)
    link.apply(decision.applied)                        (only what the gate let through)

The link (actors.plant_link) is the plant's PLC over Modbus TCP, the simulated plant
actor called directly (lock-step tests), or measurements ingested from MQTT. When no new
measurement arrives, the last one ages; the safety watchdog refuses controller writes
once it is older than the asset's ``max_measurement_age_s``.

Numerical work runs on one dedicated thread so that status queries are answered while
the controller solves. If the safety actor is unreachable or too slow nothing is
written, the outputs hold their last safe value, and the status says so: fail closed.

Fault tolerance: after every tick the actor hands the safety actor a plain-data
checkpoint (estimator, controller plan, reference, disturbances, whether it was
running), which the safety actor stores durably. Ray restarts a killed actor
(``max_restarts``); the new one restores that checkpoint, takes its mode and the last
applied setpoints (the truth of what its plant was given) from the safety actor, and,
if the old one was running in real time, resumes ticking by itself.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import ray

from actors.plant_link import DirectLink, IngestLink, ModbusLink
from controllers import CONTROLLER_BACKENDS, build_controller, build_estimator
from controllers.tuning import changes, describe, retune
from engine.clock import ClockSpec
from engine.config import AssetConfig, ControllerSettings, ModbusSettings, SetpointLimit
from engine.loop import ControlLoop
from engine.messages import (
    AuditRecord,
    Decision,
    Measurement,
    MeasurementPayload,
    Mode,
    Outcome,
    Proposal,
    Setpoint,
)
from engine.metrics import AssetMetrics
from engine.registers import PlcMap
from plants import model_of

SAFETY_TIMEOUT_S = 2.0
"""Wall seconds to wait for the safety actor before failing closed."""
SAFETY_DOWN = "safety unreachable"
MAX_RESTARTS = 20
"""How often Ray restarts a killed asset actor."""


@ray.remote(num_cpus=0, max_restarts=MAX_RESTARTS)
class AssetActor:
    """Twin state, estimator and controller of one asset."""

    def __init__(self, asset: AssetConfig, clock: ClockSpec, plant, safety,
                 plc: PlcMap | None = None, modbus: ModbusSettings = ModbusSettings()) -> None:
        """``plant`` is the simulated plant actor (None for a plant outside the twin);
        given ``plc``, its register map, the asset talks to the plant's PLC over Modbus
        TCP, and calls the plant actor only to advance it in lock-step."""
        self.config = asset
        self.plant = plant
        self.safety = safety
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
        self.model = model = model_of(asset)
        self.loop = ControlLoop(
            asset.id, model, build_estimator(model, asset.estimator),
            build_controller(model, asset.controller, asset.limits),
            x0=asset.initial, u0=asset.inputs, d=asset.disturbances,
            reference=asset.reference, t0=clock.epoch,
        )
        self.clock_spec = clock
        self.clock = clock.make(asset.period_s)
        self.lockstep = clock.lockstep
        self.mode = Mode(asset.mode)
        self.metrics = AssetMetrics()
        self.setpoint_times = dict.fromkeys(asset.limits, clock.epoch)
        self.proposal: Proposal | None = None
        self.safety_error: str | None = None
        self.tick_error: str | None = None
        self.restarted = ray.get_runtime_context().was_current_actor_reconstructed
        self._numerics = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"numerics-{asset.id}")
        self._lock = asyncio.Lock()
        self._tuning_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self.listeners: list = []
        self.revision = 0
        self._resumed = asyncio.Event()
        # held so that the task is not garbage-collected before it runs
        self._resuming = asyncio.get_event_loop().create_task(self._resume())

    async def _resume(self) -> None:
        """Restore the last checkpoint after a restart (a first start has none) and, if
        the killed actor was running in real time, run again."""
        try:
            if self.restarted:
                point = await self.safety.restore_point.remote(self.config.id)
                self._restore(point)
                checkpoint = point["checkpoint"] or {}
                if checkpoint.get("running") and not self.lockstep:
                    self._task = asyncio.create_task(self._run(after=checkpoint["clock"]))
        finally:
            self._resumed.set()

    def _restore(self, point: dict[str, Any]) -> None:
        self.mode = Mode(point["mode"])
        checkpoint = point["checkpoint"]
        if checkpoint is not None:
            self.loop.restore(checkpoint["loop"])
            self._retuned(msgspec.convert(checkpoint["tuning"], ControllerSettings),
                          msgspec.convert(checkpoint["limits"], dict[str, SetpointLimit]))
            self.loop.controller.restore(checkpoint["controller"])
            self.setpoint_times.update(checkpoint["setpoint_times"])
            if self.lockstep:
                self.clock = ClockSpec(lockstep=True, epoch=checkpoint["clock"]).make(
                    self.config.period_s)
        applied = {name: value for name, (value, _) in point["last_applied"].items()}
        self._take(applied)

    def _checkpoint(self) -> dict[str, Any]:
        return {"loop": self.loop.checkpoint(), "controller": self.loop.controller.checkpoint(),
                "tuning": msgspec.to_builtins(self.config.controller),
                "limits": msgspec.to_builtins(self.config.limits),
                "setpoint_times": self.setpoint_times, "clock": self.clock.now(),
                "running": self._task is not None and not self._task.done()}

    def _retuned(self, settings: ControllerSettings, limits: dict[str, SetpointLimit]) -> None:
        """Run the controller of a tuning restored from a checkpoint (an engineer's retune
        outlives a restart), unless it is the one already running."""
        if settings != self.config.controller or limits != self.config.limits:
            self.loop.controller = build_controller(self.model, settings, limits)
            self.config = msgspec.structs.replace(self.config, controller=settings, limits=limits)

    def pid(self) -> int:
        """The worker process id (tests kill it)."""
        return os.getpid()

    # -- running ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start ticking in real time (no-op if already running). The clock starts here,
        so deadlines that passed while the rest of the fleet was starting are not overruns."""
        await self._resumed.wait()
        if self._task is None or self._task.done():
            self.clock = self.clock_spec.make(self.config.period_s)
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def run_for(self, duration: float) -> int:
        """Lock-step: tick ``duration`` twin-seconds as fast as possible; returns ticks run."""
        await self._resumed.wait()
        end = self.clock.now() + duration - 1e-9
        ticks = 0
        while self.clock.now() < end:
            await self.tick(await self.clock.tick())
            ticks += 1
        return ticks

    async def _run(self, after: float | None = None) -> None:
        """Tick at every deadline. A restarted loop (``after``: the twin time of its last
        checkpoint) first runs the deadline it missed while it was down, at once."""
        if after is not None:
            clock = self.clock
            missed = clock.epoch + clock.period * math.floor((clock.now() - clock.epoch)
                                                             / clock.period)
            if missed > after:
                await self.tick(missed)
        while True:
            await self.tick(await self.clock.tick())

    async def tick(self, t: float) -> None:
        """One measure -> estimate -> propose -> gate -> write cycle at twin time ``t``."""
        started = time.perf_counter()
        try:
            if self.lockstep and self.plant is not None:
                await self.plant.advance_to.remote(t)
            measurement: Measurement | None = await self.link.measure()
            async with self._lock:
                if measurement is not None:
                    estimate = await self._numeric(self.loop.observe, measurement)
                    self.metrics.anomalies += estimate.anomaly
                if self.mode is not Mode.OFF:
                    self.proposal = await self._numeric(self.loop.propose, t)
                    self.metrics.solve_seconds.observe(self.proposal.solve_time_s)
                    await self._gate(self.proposal, self._measurement_age(t), measurement)
                await self._observe(measurement)
            self.tick_error = None
        except Exception as error:  # a failed tick is reported, and the next one tries again
            self.tick_error = f"{type(error).__name__}: {error}"
        self.metrics.ticks += 1
        self.metrics.overruns = self.clock.overruns
        self.metrics.tick_seconds.observe(time.perf_counter() - started)
        self.metrics.estimates = self.loop.model.states.mapping(self.loop.x)
        self.metrics.nis = self.loop.state.nis
        self._notify()
        if self.publisher is not None:
            self.publisher.publish_estimate.remote(self.loop.estimate())

    def add_listener(self, listener) -> None:
        """Push this asset's status to ``listener.publish`` (an actor handle, e.g. the OPC UA
        gateway) after every tick and operator action; fire and forget."""
        self.listeners.append(listener)

    def _notify(self) -> None:
        """The status changed: count a new revision (so that a listener can tell an older
        snapshot from a newer one) and push it to every listener."""
        self.revision += 1
        if self.listeners:
            status = self.status()
            for listener in self.listeners:
                listener.publish.remote(status)

    def _measurement_age(self, t: float) -> float:
        """Twin seconds since the newest measurement was sampled (inf before the first)."""
        last = self.loop.last_measurement
        return math.inf if last is None else t - last.time

    async def _numeric(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._numerics, function, *args)

    async def _observe(self, measurement: Measurement) -> None:
        """Hand the safety actor this tick's measurement and a checkpoint, in any mode."""
        try:
            await asyncio.wait_for(self.safety.observe.remote(
                self.config.id, measurement, self._checkpoint()), SAFETY_TIMEOUT_S)
        except (TimeoutError, ray.exceptions.RayActorError) as error:
            self.safety_error = (f"{SAFETY_DOWN} ({type(error).__name__}): outputs hold their "
                                 "last safe value")
        else:
            if self.mode is Mode.OFF:
                self.safety_error = None

    async def _ask(self, method, *args, deadline: bool = True):
        """Call a safety-actor ``method``; if it does not answer within SAFETY_TIMEOUT_S,
        RuntimeError. With ``deadline`` the actor drops the request once the wait is
        over, so that an unanswered change is a change not made."""
        kwargs = {"deadline": time.time() + SAFETY_TIMEOUT_S} if deadline else {}
        try:
            return await asyncio.wait_for(method.remote(*args, **kwargs), SAFETY_TIMEOUT_S)
        except (TimeoutError, ray.exceptions.RayActorError) as error:
            raise RuntimeError(f"{SAFETY_DOWN} ({type(error).__name__}): nothing changed") from None

    async def _gate(self, proposal: Proposal | None, measurement_age: float,
                    measurement: Measurement | None = None, approve: int | None = None,
                    user: str = "") -> Decision | None:
        """Ask the safety actor (to decide ``proposal``, or to approve queued proposal
        number ``approve``); write only what it lets through. Fails closed."""
        deadline = time.time() + SAFETY_TIMEOUT_S
        if approve is None:
            ref = self.safety.decide.remote(proposal, measurement_age, measurement, deadline)
        else:
            ref = self.safety.approve.remote(self.config.id, approve, user, self.clock.now(),
                                             deadline)
        try:
            decision: Decision | None = await asyncio.wait_for(ref, SAFETY_TIMEOUT_S)
            if decision is None:
                raise TimeoutError("answered after the deadline")
        except (TimeoutError, ray.exceptions.RayActorError) as error:
            self.safety_error = (f"{SAFETY_DOWN} ({type(error).__name__}): nothing written, "
                                 "outputs hold their last safe value")
            return None
        self.safety_error = None
        self.mode = decision.mode
        for record in decision.records:
            self.metrics.decisions[record.outcome.value] += 1
        if decision.applied:
            await self.link.apply(decision.applied, self._written(decision.applied))
            self._take(decision.applied, decision.time)
            self.setpoint_times.update(dict.fromkeys(decision.applied, decision.time))
            if self.publisher is not None:
                self.publisher.publish_setpoints.remote(
                    Setpoint(asset=self.config.id, time=decision.time, values=decision.applied))
        return decision

    def _written(self, applied: dict[str, float]) -> dict[str, float]:
        """Every value the plant's PLC holds for this asset, its inputs and its writable
        disturbances, with ``applied`` over the values written before."""
        model = self.model
        held = {**model.inputs.mapping(self.loop.u),
                **{name: value for name, value in model.disturbances.mapping(self.loop.d).items()
                   if name in self.config.limits}}
        return {**held, **applied}

    def _take(self, applied: dict[str, float], time: float | None = None) -> None:
        """Hold applied values in the loop: inputs as ``u`` (from twin ``time``), writable
        disturbances as ``d``."""
        model = self.model
        self.loop.applied({n: v for n, v in applied.items() if n in model.inputs}, time)
        disturbances = {n: v for n, v in applied.items() if n in model.disturbances}
        if disturbances:
            self.loop.set_disturbances(disturbances)

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
        await self._ask(self.safety.note, [AuditRecord(
            time=self.clock.now(), asset=self.config.id, user=user, source="operator",
            signal=name, requested=value, applied=value, outcome=Outcome.ACCEPTED,
            reason=f"reference {name} {before.get(name, math.nan):.6g} -> {value:.6g} "
                   f"{self.model.outputs[name].unit}",
        ) for name, value in checked.items()])
        async with self._lock:
            reference = self.loop.set_reference(checked)
        self._notify()
        return reference

    async def set_mode(self, mode: str, user: str) -> str:
        self.mode = Mode(await self._ask(self.safety.set_mode, self.config.id, Mode(mode), user,
                                         self.clock.now()))
        self._notify()
        return self.mode.value

    async def write_setpoints(self, values: dict[str, float], user: str) -> dict[str, Any]:
        """Operator setpoints, gated like any other (MANUAL, ADVISORY or AUTONOMOUS).
        Unknown or unwritable signals and values outside the signal's bounds raise
        ValueError; an unreachable safety actor raises RuntimeError (nothing written)."""
        for name, value in values.items():
            self._writable(name).check(value)
        age = self._measurement_age(self.clock.now())
        proposal = Proposal(asset=self.config.id, time=self.clock.now(), setpoints=values,
                            reason="operator setpoint", source="operator", user=user)
        async with self._lock:
            decision = await self._gate(proposal, age)
        return self._answer(decision)

    async def proposals(self) -> list[dict[str, Any]]:
        """ADVISORY proposals awaiting approval, oldest first, each with its reason."""
        return await self._ask(self.safety.proposals, self.config.id, deadline=False)

    async def approve(self, number: int, user: str) -> dict[str, Any]:
        """Write queued proposal ``number``, gated again now (limits, rates, interlocks,
        staleness at approval time). An unknown number raises LookupError."""
        async with self._lock:
            decision = await self._gate(None, math.nan, approve=number, user=user)
        return self._answer(decision)

    async def reject(self, number: int, user: str) -> dict[str, Any]:
        """Drop queued proposal ``number`` (LookupError if unknown); nothing is written."""
        return await self._ask(self.safety.reject, self.config.id, number, user,
                               self.clock.now())

    async def limits(self) -> dict[str, dict[str, float]]:
        return await self._ask(self.safety.limits, self.config.id, deadline=False)

    async def set_operator_limits(self, bands: dict[str, tuple[float, float]],
                                  user: str) -> dict[str, dict[str, float]]:
        """Narrow writable signals to operator bands inside the engineering limits;
        a band outside them raises ValueError and changes nothing."""
        return await self._ask(self.safety.set_operator_limits, self.config.id, bands, user,
                               self.clock.now())

    def _writable(self, name: str):
        if name not in self.config.limits:
            raise ValueError(f"unknown signal {name!r}: writable signals of {self.config.id} "
                             f"are {', '.join(self.config.limits)}")
        model = self.model
        return model.inputs[name] if name in model.inputs else model.disturbances[name]

    def _answer(self, decision: Decision | None) -> dict[str, Any]:
        if decision is None:
            raise RuntimeError(self.safety_error)
        self._notify()
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

    def attach_publisher(self, publisher) -> None:
        """Publish every estimate and applied setpoint through ``publisher`` (MQTT gateway)."""
        self.publisher = publisher

    async def set_controller(self, change: dict[str, Any], user: str) -> dict[str, Any]:
        """Retune the controller without restarting the asset (see controllers.tuning).

        The change is checked, the new controller built on the numerics thread and the
        new limits handed to the safety actor before the new controller replaces the old
        one; a ValueError at any of these steps leaves the old controller and limits in
        place. Returns the new tuning."""
        async with self._tuning_lock:
            before = self.controller_tuning()
            settings, limits = retune(self.model, self.config.controller, self.config.limits,
                                      change, CONTROLLER_BACKENDS)
            controller = await self._numeric(build_controller, self.model, settings, limits)
            t = self.clock.now()
            await self._ask(self.safety.set_limits, self.config.id, limits, user, t)
            async with self._lock:
                self.loop.controller = controller
                self.config = msgspec.structs.replace(self.config, controller=settings,
                                                      limits=limits)
            after = self.controller_tuning()
            changed = changes(before, after)
            if changed:
                await self._ask(self.safety.note, [AuditRecord(
                    time=t, asset=self.config.id, user=user, source="operator",
                    signal="controller", requested=None, applied=None,
                    outcome=Outcome.ACCEPTED, reason="tuning: " + "; ".join(changed))])
            return after

    # -- queries ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        model, loop = self.model, self.loop
        estimate = loop.estimate()
        last = loop.last_measurement
        proposal = self.proposal
        return {
            "id": self.config.id,
            "kind": self.config.kind,
            "mode": self.mode.value,
            "time": loop.t,
            "revision": self.revision,
            "healthy": self.healthy(),
            "link": self.link.status(),
            "measurement_age_s": _finite_or_none(self._measurement_age(self.clock.now())),
            "estimate": {name: {"value": value, "unit": model.states[name].unit,
                                "std": estimate.std[name]}
                         for name, value in estimate.values.items()},
            "measurement": {} if last is None else {
                name: {"value": value, "unit": model.outputs[name].unit, "time": last.time}
                for name, value in last.values.items()},
            "setpoints": {name: {"value": value, "unit": self._writable(name).unit,
                                 "time": self.setpoint_times[name]}
                          for name, value in {**model.inputs.mapping(loop.u),
                                              **model.disturbances.mapping(loop.d)}.items()
                          if name in self.config.limits},
            "reference": {name: {"value": value, "unit": model.outputs[name].unit}
                          for name, value in loop.reference.items()},
            "controller": {
                "backend": loop.controller.backend,
                "status": None if proposal is None else proposal.status,
                "solve_time_s": None if proposal is None else proposal.solve_time_s,
                "reason": None if proposal is None else proposal.reason,
            },
            "nis": estimate.nis,
            "estimator": self._estimator_status(),
            "period_s": self.config.period_s,
            "ticks": self.metrics.ticks,
            "overruns": self.clock.overruns,
            "errors": [e for e in (self.link.status()["error"], self.safety_error, self.tick_error)
                       if e],
            "outputs_held": self.safety_error is not None,
            "restarted": self.restarted,
        }

    def _estimator_status(self) -> dict[str, Any]:
        """Kind, estimated parameters, and the last innovation with its chi-square test."""
        loop, model = self.loop, self.model
        state, estimate = loop.state, loop.estimate()
        return {
            "kind": loop.estimator.kind,
            "parameters": {name: {"value": value, "unit": model.parameters[name].unit,
                                  "std": estimate.parameter_std[name]}
                           for name, value in estimate.parameters.items()},
            "innovation": {name: {"value": value, "unit": model.outputs[name].unit}
                           for name, value in model.outputs.mapping(state.innovation).items()},
            "nis": estimate.nis,
            "dof": state.dof,
            "nis_threshold": state.nis_threshold if math.isfinite(state.nis_threshold) else None,
            "significance": self.config.estimator.significance,
            "anomaly": state.anomaly,
            "anomalies": self.metrics.anomalies,
            "persistent_anomaly": loop.persistent_anomaly,
            "recent_anomalies": f"{loop.anomalies.count} of the last {loop.anomalies.size}",
        }

    def controller_tuning(self) -> dict[str, Any]:
        return describe(self.model, self.config.controller, self.config.limits,
                        CONTROLLER_BACKENDS)

    def healthy(self) -> bool:
        return (self.safety_error is None and self.tick_error is None
                and self.link.status()["error"] is None and not self.loop.persistent_anomaly)

    def summary(self) -> dict[str, Any]:
        return {"id": self.config.id, "kind": self.config.kind, "mode": self.mode.value,
                "healthy": self.healthy()}

    def metrics_snapshot(self) -> dict[str, Any]:
        return self.metrics.snapshot(self.config.id, self.config.kind)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None
