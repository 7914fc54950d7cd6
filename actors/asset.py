"""AssetActor: one asset's twin, a thin async wrapper around engine.loop.ControlLoop.

Each tick (period ``period_s`` of twin time):

    measurement = plant.measure()                      (the twin's only view of the plant)
    estimate    = estimator.step(u, y, dt)             (EKF)
    proposal    = controller.step(t, x_hat, u, d, r)   (MPC; skipped when OFF)
    decision    = safety.decide(proposal, age)          (limits, rates, watchdog, mode)
    plant.apply(decision.applied)                       (only what the gate let through)

Numerical work runs on one dedicated thread so that status queries are answered while
the controller solves. If the safety actor is unreachable or too slow nothing is
written, the outputs hold their last safe value, and the status says so: fail closed.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import ray

from controllers import CONTROLLER_BACKENDS, build_controller, build_estimator
from controllers.tuning import changes, describe, retune
from engine.clock import ClockSpec
from engine.config import AssetConfig
from engine.loop import ControlLoop
from engine.messages import AuditRecord, Decision, Measurement, Mode, Outcome, Proposal
from engine.metrics import AssetMetrics
from plants import model_of

SAFETY_TIMEOUT_S = 2.0
"""Wall seconds to wait for the safety actor before failing closed."""


@ray.remote(num_cpus=0)
class AssetActor:
    """Twin state, estimator and controller of one asset."""

    def __init__(self, asset: AssetConfig, clock: ClockSpec, plant, safety) -> None:
        self.config = asset
        self.plant = plant
        self.safety = safety
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
        self.setpoint_times = dict.fromkeys(model.inputs.names, clock.epoch)
        self.proposal: Proposal | None = None
        self.safety_error: str | None = None
        self.tick_error: str | None = None
        self._numerics = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"numerics-{asset.id}")
        self._lock = asyncio.Lock()
        self._tuning_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    # -- running ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start ticking in real time (no-op if already running). The clock starts here,
        so deadlines that passed while the rest of the fleet was starting are not overruns."""
        if self._task is None or self._task.done():
            self.clock = self.clock_spec.make(self.config.period_s)
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def run_for(self, duration: float) -> int:
        """Lock-step: tick ``duration`` twin-seconds as fast as possible; returns ticks run."""
        end = self.clock.now() + duration - 1e-9
        ticks = 0
        while self.clock.now() < end:
            await self.tick(await self.clock.tick())
            ticks += 1
        return ticks

    async def _run(self) -> None:
        while True:
            await self.tick(await self.clock.tick())

    async def tick(self, t: float) -> None:
        """One measure -> estimate -> propose -> gate -> write cycle at twin time ``t``."""
        started = time.perf_counter()
        try:
            if self.lockstep:
                await self.plant.advance_to.remote(t)
            measurement: Measurement = await self.plant.measure.remote()
            async with self._lock:
                estimate = await self._numeric(self.loop.observe, measurement)
                self.metrics.anomalies += estimate.anomaly
                if self.mode is not Mode.OFF:
                    self.proposal = await self._numeric(self.loop.propose, t)
                    self.metrics.solve_seconds.observe(self.proposal.solve_time_s)
                    await self._gate(self.proposal, t - measurement.time)
            self.tick_error = None
        except Exception as error:  # a failed tick is reported, and the next one tries again
            self.tick_error = f"{type(error).__name__}: {error}"
        self.metrics.ticks += 1
        self.metrics.overruns = self.clock.overruns
        self.metrics.tick_seconds.observe(time.perf_counter() - started)
        self.metrics.estimates = self.loop.model.states.mapping(self.loop.x)
        self.metrics.nis = self.loop.state.nis

    async def _numeric(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._numerics, function, *args)

    async def _gate(self, proposal: Proposal, measurement_age: float) -> Decision | None:
        """Ask the safety actor; write only what it lets through. Fails closed."""
        try:
            decision: Decision = await asyncio.wait_for(
                self.safety.decide.remote(proposal, measurement_age), SAFETY_TIMEOUT_S)
        except Exception as error:
            self.safety_error = (f"safety unreachable ({type(error).__name__}): nothing written, "
                                 "outputs hold their last safe value")
            return None
        self.safety_error = None
        self.mode = decision.mode
        for record in decision.records:
            self.metrics.decisions[record.outcome.value] += 1
        if decision.applied:
            await self.plant.apply.remote(decision.applied)
            self.loop.applied(decision.applied)
            self.setpoint_times.update(dict.fromkeys(decision.applied, decision.time))
        return decision

    # -- operator requests --------------------------------------------------------------

    async def set_reference(self, values: dict[str, float], user: str) -> dict[str, float]:
        """Change output targets. Unknown outputs or values outside bounds raise ValueError."""
        async with self._lock:
            before = dict(self.loop.reference)
            reference = self.loop.set_reference(values)
        t = self.clock.now()
        await self.safety.note.remote([AuditRecord(
            time=t, asset=self.config.id, user=user, source="operator", signal=name,
            requested=value, applied=value, outcome=Outcome.ACCEPTED,
            reason=f"reference {name} {before.get(name, math.nan):.6g} -> {value:.6g} "
                   f"{self.model.outputs[name].unit}",
        ) for name, value in values.items()])
        return reference

    async def set_mode(self, mode: str, user: str) -> str:
        self.mode = Mode(await self.safety.set_mode.remote(
            self.config.id, Mode(mode), user, self.clock.now()))
        return self.mode.value

    async def write_setpoints(self, values: dict[str, float], user: str) -> dict[str, Any]:
        """Operator setpoints, gated like any other (MANUAL, ADVISORY or AUTONOMOUS)."""
        try:
            self.model.inputs.check(values)
        except KeyError as error:
            raise ValueError(error.args[0]) from None
        last = self.loop.last_measurement
        age = self.clock.now() - last.time if last is not None else math.inf
        proposal = Proposal(asset=self.config.id, time=self.clock.now(), setpoints=values,
                            reason="operator setpoint", source="operator", user=user)
        async with self._lock:
            decision = await self._gate(proposal, age)
        if decision is None:
            raise RuntimeError(self.safety_error)
        return {"applied": decision.applied,
                "records": [{"signal": r.signal, "outcome": r.outcome.value, "reason": r.reason}
                            for r in decision.records]}

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
            await self.safety.set_limits.remote(self.config.id, limits, user, t)
            async with self._lock:
                self.loop.controller = controller
                self.config = msgspec.structs.replace(self.config, controller=settings,
                                                      limits=limits)
            after = self.controller_tuning()
            changed = changes(before, after)
            if changed:
                await self.safety.note.remote([AuditRecord(
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
            "healthy": self.healthy(),
            "estimate": {name: {"value": value, "unit": model.states[name].unit,
                                "std": estimate.std[name]}
                         for name, value in estimate.values.items()},
            "measurement": {} if last is None else {
                name: {"value": value, "unit": model.outputs[name].unit, "time": last.time}
                for name, value in last.values.items()},
            "setpoints": {name: {"value": value, "unit": model.inputs[name].unit,
                                 "time": self.setpoint_times[name]}
                          for name, value in model.inputs.mapping(loop.u).items()},
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
            "errors": [e for e in (self.safety_error, self.tick_error) if e],
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
        }

    def controller_tuning(self) -> dict[str, Any]:
        return describe(self.model, self.config.controller, self.config.limits,
                        CONTROLLER_BACKENDS)

    def healthy(self) -> bool:
        return self.safety_error is None and self.tick_error is None

    def summary(self) -> dict[str, Any]:
        return {"id": self.config.id, "kind": self.config.kind, "mode": self.mode.value,
                "healthy": self.healthy()}

    def metrics_snapshot(self) -> dict[str, Any]:
        return self.metrics.snapshot(self.config.id, self.config.kind)
