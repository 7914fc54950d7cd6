"""What-if: a fork of a live asset's twin, run ahead in lock-step on the same models.

A fork (``Fork``) is what the asset's shard hands out of its live loop: the resolved
asset (live tuning and limits), its mode, the loop's checkpoint (estimate x_hat with
covariance P, applied inputs u, disturbances d, reference) and the controller's warm
start. ``WhatIf.run`` simulates it forward ``duration_s`` twin seconds twice from the
same state: once with ``changes`` (the scenario), once without (the baseline). Each
run, for every member m = 0 .. samples-1:

    x_m ~ N(x_hat, P)   (m = 0: x_hat itself)   states and estimated parameters,
                                                 clipped to their signal bounds
    plant:  SimulatedPlant from x_m, parameters p_m (nominal, the estimated ones at
            their drawn values, then ``changes.parameters``), noiseless
    twin:   a new ControlLoop restored from the checkpoint (it believes x_hat),
            the controller restored from its warm start, seeing the site file's
            forecast (engine.forecast.site_forecast; not an approved plan)
    every period T (the asset's), t_k = t0 + k T, k = 1 .. ceil(duration / T):
            plant.advance_to(t_k); y = plant.measure()
            result = loop.tick(t_k, y, gate, propose=controller)  (engine.loop: the
                                                                   one tick)
            plant.apply(result.applied)

``gate`` is engine.gate.PolicyGate over the asset's limits (narrowed to its operator
bands), its mode (or ``changes.mode``), and the site's interlocks over the asset's own
signals: the safety policy the live asset has, in memory, with no audit. Scenario
changes act at t0: ``reference`` on the loop, ``disturbances`` on plant and loop (a
disturbance the twin is told of), ``parameters`` on the plant (and on the loop's
estimate where the parameter is estimated), ``setpoints`` as an operator proposal
through the gate with the member's measurement at t0 (for its interlocks).

KPIs per run, from the true (noiseless) trajectories:

    energy  E = integral of the sum of the power outputs (unit W) dt        [J]
    cost    C = integral of cost_rate dt (an output in currency/h), else
                integral of price x power dt (the electricity_price disturbance,
                currency/kWh)                                           [currency]
    crossings: for every limit, the first time (s from t0) the central member's
               trajectory is beyond it, the fraction of members that cross it and the
               earliest member's time. Limits: the asset's alarm limits (HI/HIHI at or
               above, LO/LOLO at or below, ISA-18.2 as engine.alarms), the soft output
               limits of its controller tuning, its model's output bounds and the trip
               values of its interlocks.

Bands are the 5th and 95th percentiles over members at each time (the member's value
itself for one sample). The run checks ``cancelled()`` and its wall-clock deadline
between ticks and raises WhatIfCancelled / TimeoutError: nothing of the live asset is
touched either way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import numpy as np

import plants
from controllers import build_controller, build_estimator
from engine.config import AssetConfig, Interlock, SetpointLimit, TripInterlock
from engine.forecast import site_forecast
from engine.gate import PolicyGate
from engine.loop import Controller, ControlLoop, Estimator
from engine.messages import GateRequest, Mode, Proposal
from engine.model import PlantModel
from engine.simulation import SimulatedPlant

MAX_DURATION_S = 7 * 24 * 3600.0
"""Longest what-if, twin seconds."""
MAX_SAMPLES = 200
MAX_TIMEOUT_S = 300.0
BAND = (5.0, 95.0)
"""Percentiles of the members' values that bound a band."""


class WhatIfCancelled(Exception):
    """The what-if was cancelled (its requester went away); nothing was changed."""


class WhatIfChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the scenario changes at its start, SI, by signal name.

    Attributes:
        reference: output targets.
        disturbances: disturbance values (an inflow, an ambient temperature, a draw).
        setpoints: writable signals, as an operator write through the safety gate.
        parameters: the plant's true parameter values (a fouled coil, a worn impeller).
        mode: the asset's mode in the scenario; None: its mode now.
    """

    reference: dict[str, float] = {}
    disturbances: dict[str, float] = {}
    setpoints: dict[str, float] = {}
    parameters: dict[str, float] = {}
    mode: Mode | None = None


class WhatIfRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Attributes:
    duration_s: twin seconds to look ahead, (0, 7 days].
    changes: the scenario's changes (none: the scenario is the baseline).
    controller: the controller runs in the fork (else inputs hold at their values).
    samples: ensemble members drawn from the estimate's uncertainty, 1 .. 200.
    seed: of the draws, so that a what-if is reproducible.
    timeout_s: wall seconds the what-if may take, (0, 300].
    """

    duration_s: float
    changes: WhatIfChanges = WhatIfChanges()
    controller: bool = True
    samples: int = 1
    seed: int = 0
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 < self.duration_s <= MAX_DURATION_S:
            raise ValueError(f"duration_s: {self.duration_s} s is outside (0, "
                             f"{MAX_DURATION_S:g}] s")
        if not 1 <= self.samples <= MAX_SAMPLES:
            raise ValueError(f"samples: {self.samples} is outside [1, {MAX_SAMPLES}]")
        if not 0.0 < self.timeout_s <= MAX_TIMEOUT_S:
            raise ValueError(f"timeout_s: {self.timeout_s} s is outside (0, {MAX_TIMEOUT_S:g}] s")


class Fork(msgspec.Struct, frozen=True, kw_only=True):
    """A live asset's twin as its shard hands it out (see the module docstring).

    Attributes:
        asset: the resolved asset, with its live controller tuning and limits.
        time: twin time of the estimate, s (the what-if's t0).
        mode: the asset's mode.
        loop: engine.loop.ControlLoop.checkpoint() of the live loop.
        controller: the live controller's checkpoint (warm start).
        operator_limits: operator bands (lower, upper) of writable signals.
        interlocks: the site's interlocks over this asset's signals only.
    """

    asset: AssetConfig
    time: float
    mode: Mode
    loop: dict[str, Any]
    controller: dict[str, Any]
    operator_limits: dict[str, tuple[float, float]] = {}
    interlocks: list[Interlock] = []


class Trajectory(msgspec.Struct, frozen=True):
    """One signal over the what-if: the central member's ``value`` and the band
    [``lower``, ``upper``] over the members, one entry per time, in ``unit``."""

    unit: str
    value: list[float]
    lower: list[float]
    upper: list[float]


class Figure(msgspec.Struct, frozen=True):
    """A KPI of the central member with its band over the members; None: not defined
    for this asset (no power output, no price)."""

    unit: str
    value: float | None
    lower: float | None
    upper: float | None


class Crossing(msgspec.Struct, frozen=True, kw_only=True):
    """A limit the run crosses.

    Attributes:
        limit: its name (``T_bulk.HI``, ``output_limits.level_01.upper``, an interlock's
            name, ``bounds.flow.upper``).
        kind: ``alarm``, ``constraint`` (controller output limit or model bound) or
            ``interlock``.
        signal: the output (or state) it watches.
        side: ``above`` or ``below``.
        bound: the limit's value, the signal's unit.
        first_time_s: seconds from t0 to the central member's first value beyond it;
            None if the central member stays inside.
        earliest_s: the earliest first time over the members.
        probability: the fraction of members crossing it.
    """

    limit: str
    kind: str
    signal: str
    side: str
    bound: float
    first_time_s: float | None
    earliest_s: float
    probability: float


class Kpis(msgspec.Struct, frozen=True, kw_only=True):
    """Energy (J), cost (``currency``), the limits crossed and the first time any is."""

    energy: Figure
    cost: Figure
    currency: str | None
    crossings: list[Crossing]
    first_crossing_s: float | None


class WhatIfRun(msgspec.Struct, frozen=True):
    trajectories: dict[str, Trajectory]
    kpis: Kpis


class WhatIfResult(msgspec.Struct, frozen=True, kw_only=True):
    """Attributes:
    asset: the asset's id.
    start: twin time of the fork, s.
    period_s: the asset's control period, the time step of the trajectories.
    time: seconds from ``start``, one per period (0 first).
    samples, controller: as requested.
    scenario: the run with the changes; baseline: the same state without them.
    compute_time_s: wall seconds the what-if took.
    """

    asset: str
    start: float
    period_s: float
    time: list[float]
    samples: int
    controller: bool
    scenario: WhatIfRun
    baseline: WhatIfRun
    compute_time_s: float


class _Limit(msgspec.Struct, frozen=True):
    name: str
    kind: str
    signal: str
    side: str
    bound: float


class WhatIf:
    """Runs what-ifs; keeps each asset's estimator and controller (built once per
    tuning, restored per run), so that only the first what-if of an asset pays their
    construction."""

    def __init__(self) -> None:
        self._estimators: dict[tuple[str, bytes], Estimator] = {}
        self._controllers: dict[tuple[str, bytes], Controller] = {}

    def run(self, fork: Fork, request: WhatIfRequest,
            cancelled: Callable[[], bool] = lambda: False) -> WhatIfResult:
        """The what-if of the module docstring. Unknown signals and values outside their
        bounds raise ValueError naming them; a run past ``request.timeout_s`` raises
        TimeoutError, a cancelled one WhatIfCancelled."""
        started = time.perf_counter()
        deadline = started + request.timeout_s
        asset = fork.asset
        model = plants.model_of(asset)
        changes = _checked(model, asset, request.changes)
        estimator, controller = self._parts(asset, model, request.controller)
        draws = _draws(model, estimator, fork.loop, request.samples, request.seed)
        period = asset.resolved_period_s()
        steps = max(1, math.ceil(request.duration_s / period - 1e-9))
        limits = _limits(model, asset, fork.interlocks)

        def stop() -> None:
            if cancelled():
                raise WhatIfCancelled(f"what-if of {asset.id} cancelled")
            if time.perf_counter() > deadline:
                raise TimeoutError(f"what-if of {asset.id}: not done within "
                                   f"timeout_s {request.timeout_s:g} s")

        runs = {}
        for name, scenario in (("scenario", changes), ("baseline", None)):
            members = [_simulate(fork, model, estimator, controller, draw, scenario,
                                 request.controller, steps, stop) for draw in draws]
            runs[name] = _summarise(model, asset, members, limits, period)
        return WhatIfResult(asset=asset.id, start=fork.time, period_s=period,
                            time=[k * period for k in range(steps + 1)],
                            samples=request.samples, controller=request.controller,
                            scenario=runs["scenario"], baseline=runs["baseline"],
                            compute_time_s=time.perf_counter() - started)

    def _parts(self, asset: AssetConfig, model: PlantModel,
               control: bool) -> tuple[Estimator, Controller]:
        """The asset's estimator, and its controller if ``control`` (else one that holds
        the inputs: a large do-mpc problem takes minutes to build on a loaded machine)."""
        key = (asset.id, msgspec.msgpack.encode((asset.kind, asset.period_s, asset.structure,
                                                 asset.parameters, asset.controller,
                                                 asset.estimator, asset.limits)))
        if key not in self._estimators:
            self._estimators[key] = build_estimator(model, asset.resolved_estimator())
        if not control:
            return self._estimators[key], Held(model)
        if key not in self._controllers:
            self._controllers[key] = build_controller(model, asset.resolved_controller(),
                                                      asset.limits)
        return self._estimators[key], self._controllers[key]


class Held:
    """The controller of a what-if without one: the loop never asks it (its ticks do not
    propose), so the inputs hold at what the gate last let through."""

    backend = "held"

    def __init__(self, model: PlantModel) -> None:
        self.model = model

    def step(self, t: float, x: np.ndarray, u: np.ndarray, d: np.ndarray,
             reference: Mapping[str, float], *, p: np.ndarray | None = None) -> Proposal:
        raise RuntimeError("a what-if without its controller proposes nothing")

    def checkpoint(self) -> dict[str, Any]:
        return {}

    def restore(self, data: Mapping[str, Any]) -> None:
        """Nothing to resume: the inputs hold."""


def _checked(model: PlantModel, asset: AssetConfig, changes: WhatIfChanges) -> WhatIfChanges:
    """``changes`` with every name known and every value within its signal's bounds."""
    def check(signals, values: Mapping[str, float], field: str) -> dict[str, float]:
        try:
            return signals.check(values)
        except KeyError as error:
            raise ValueError(f"changes.{field}: {error.args[0]}") from None
        except ValueError as error:
            raise ValueError(f"changes.{field}: {error}") from None

    unwritable = sorted(set(changes.setpoints) - set(asset.limits))
    if unwritable:
        raise ValueError(f"changes.setpoints: {unwritable} are not writable signals of "
                         f"{asset.id}; writable: {', '.join(asset.limits)}")
    setpoints = {**check(model.inputs, {n: v for n, v in changes.setpoints.items()
                                        if n in model.inputs}, "setpoints"),
                 **check(model.disturbances, {n: v for n, v in changes.setpoints.items()
                                              if n in model.disturbances}, "setpoints")}
    return WhatIfChanges(reference=check(model.outputs, changes.reference, "reference"),
                         disturbances=check(model.disturbances, changes.disturbances,
                                            "disturbances"),
                         setpoints=setpoints,
                         parameters=check(model.parameters, changes.parameters, "parameters"),
                         mode=changes.mode)


def _draws(model: PlantModel, estimator: Estimator, checkpoint: Mapping[str, Any],
           samples: int, seed: int) -> list[np.ndarray]:
    """The members' true starting points (states, then estimated parameters): the
    estimate itself, then draws from N(x_hat, P), each clipped to its signals' bounds."""
    x_hat = np.asarray(checkpoint["estimator"]["x"], float)
    P = np.asarray(checkpoint["estimator"]["P"], float)
    values, vectors = np.linalg.eigh(0.5 * (P + P.T))
    root = vectors * np.sqrt(np.clip(values, 0.0, None))
    signals = [*model.states, *(model.parameters[n] for n in estimator.parameter_names)]
    lower = np.array([s.lower for s in signals])
    upper = np.array([s.upper for s in signals])
    rng = np.random.default_rng(seed)
    draws = [x_hat]
    for _ in range(samples - 1):
        draws.append(np.clip(x_hat + root @ rng.standard_normal(x_hat.size), lower, upper))
    return draws


def _simulate(fork: Fork, model: PlantModel, estimator: Estimator, controller: Controller,
              draw: np.ndarray, changes: WhatIfChanges | None, propose: bool, steps: int,
              stop: Callable[[], None]) -> dict[str, np.ndarray]:
    """One member's run: the outputs as the plant's instruments read them (noiseless) at
    t0 and every tick, the inputs and writable disturbances applied then, the true states."""
    asset, t0, n = fork.asset, fork.time, len(model.states)
    forecast = None if isinstance(controller, Held) else site_forecast(asset, model, t0)
    loop = ControlLoop(asset.id, model, estimator, controller, t0=t0, forecast=forecast)
    loop.restore(fork.loop)
    controller.restore(fork.controller)
    plant = SimulatedPlant(asset.id, model, msgspec.structs.replace(asset.simulation, noise=0.0),
                           t0=t0, synthesize=plants.synthesizer_of(asset))
    plant.x = draw[:n].copy()
    plant.u, plant.d = loop.u.copy(), loop.d.copy()
    plant.p = model.parameters.vector(dict(zip(estimator.parameter_names, draw[n:].tolist(),
                                               strict=True)))
    mode = fork.mode if changes is None or changes.mode is None else changes.mode
    limits = _narrowed(asset.limits, fork.operator_limits)
    writable = {**model.inputs.mapping(loop.u), **model.disturbances.mapping(loop.d)}
    gate = PolicyGate(msgspec.structs.replace(asset, limits=limits, mode=mode),
                      {name: writable[name] for name in limits}, t0, fork.interlocks)
    if changes is not None:
        _change(loop, plant, gate, changes, t0)
    record = {"y": [model.outputs.vector(plant.measure().values)], "u": [plant.u.copy()],
              "d": [plant.d.copy()], "x": [plant.x.copy()]}
    for k in range(1, steps + 1):
        stop()
        t = t0 + k * model.dt
        plant.advance_to(t)
        measurement = plant.measure()
        result = loop.tick(t, measurement, gate, propose=propose and mode is not Mode.OFF)
        plant.apply(result.applied)
        record["y"].append(model.outputs.vector(measurement.values))
        record["u"].append(plant.u.copy())
        record["d"].append(plant.d.copy())
        record["x"].append(plant.x.copy())
    return {key: np.array(values) for key, values in record.items()}


def _change(loop: ControlLoop, plant: SimulatedPlant, gate: PolicyGate,
            changes: WhatIfChanges, t0: float) -> None:
    """The scenario's changes at t0 (see the module docstring)."""
    model = loop.model
    if changes.reference:
        loop.set_reference(changes.reference)
    if changes.disturbances:
        loop.set_disturbances(changes.disturbances)
        plant.d = model.disturbances.vector(changes.disturbances, default=plant.d)
    if changes.parameters:
        plant.p = model.parameters.vector(changes.parameters, default=plant.p)
        n = len(model.states)
        for i, name in enumerate(loop.estimator.parameter_names):
            if name in changes.parameters:
                loop.state.x[n + i] = changes.parameters[name]
    if changes.setpoints:
        decision = gate(GateRequest(
            asset=loop.asset, time=t0, measurement=plant.measure(), measurement_age=0.0,
            proposal=Proposal(asset=loop.asset, time=t0, setpoints=dict(changes.setpoints),
                              reason="what-if setpoint", source="operator", user="what-if")))
        loop.applied(decision.applied, t0)
        plant.apply(decision.applied)


def _narrowed(limits: Mapping[str, SetpointLimit],
              bands: Mapping[str, tuple[float, float]]) -> dict[str, SetpointLimit]:
    """The engineering limits narrowed to the operator bands (as the live gate clamps)."""
    narrowed = dict(limits)
    for name, (lower, upper) in bands.items():
        if name in narrowed:
            limit = narrowed[name]
            narrowed[name] = msgspec.structs.replace(
                limit, lower=max(limit.lower, lower), upper=min(limit.upper, upper))
    return narrowed


def _limits(model: PlantModel, asset: AssetConfig,
            interlocks: list[Interlock]) -> list[_Limit]:
    """Every limit a run is checked against (see the module docstring)."""
    limits = []
    for alarm in asset.alarms:
        if alarm.kind == "condition" or alarm.limit is None or not alarm.enabled:
            continue
        signal = alarm.signal.removeprefix("estimate.")
        if signal in model.outputs or signal in model.states:
            limits.append(_Limit(alarm.tag, "alarm", signal,
                                 "above" if alarm.kind in ("HI", "HIHI") else "below",
                                 float(alarm.limit)))
    sides = (("above", "upper"), ("below", "lower"))
    for name, soft in asset.resolved_controller().output_limits.items():
        for side, end in sides:
            bound = getattr(soft, end)
            if math.isfinite(bound):
                limits.append(_Limit(f"output_limits.{name}.{end}", "constraint", name, side,
                                     bound))
    for output in model.outputs:
        for side, end in sides:
            bound = getattr(output, end)
            if math.isfinite(bound):
                limits.append(_Limit(f"bounds.{output.name}.{end}", "constraint", output.name,
                                     side, bound))
    for lock in interlocks:
        if isinstance(lock, TripInterlock):
            for key in lock.when:
                owner, _, signal = key.partition(".")
                if owner == asset.id and signal in model.outputs:
                    limits.append(_Limit(lock.name, "interlock", signal, "above", lock.above))
    return limits


def _summarise(model: PlantModel, asset: AssetConfig, members: list[dict[str, np.ndarray]],
               limits: list[_Limit], period: float) -> WhatIfRun:
    Y = np.stack([m["y"] for m in members])   # member, time, output
    U = np.stack([m["u"] for m in members])
    D = np.stack([m["d"] for m in members])
    X = np.stack([m["x"] for m in members])
    trajectories = {}
    for signals, values in ((model.outputs, Y), (model.inputs, U)):
        for i, signal in enumerate(signals):
            trajectories[signal.name] = _trajectory(signal.unit, values[:, :, i])
    for i, signal in enumerate(model.disturbances):
        if signal.name in asset.limits:
            trajectories[signal.name] = _trajectory(signal.unit, D[:, :, i])
    power = [i for i, s in enumerate(model.outputs) if s.unit == "W"]
    energy = (np.trapezoid(Y[:, :, power].sum(axis=2), dx=period, axis=1) if power else None)
    cost, currency = _cost(model, asset, Y, D, power, period)
    crossings = [c for c in (_crossing(limit, model, Y, X, period) for limit in limits)
                 if c is not None]
    firsts = [c.first_time_s for c in crossings if c.first_time_s is not None]
    return WhatIfRun(trajectories, Kpis(
        energy=_figure("J", energy), cost=_figure(currency or "", cost), currency=currency,
        crossings=sorted(crossings, key=lambda c: (c.first_time_s is None,
                                                   c.first_time_s or c.earliest_s)),
        first_crossing_s=min(firsts) if firsts else None))


def _cost(model: PlantModel, asset: AssetConfig, Y: np.ndarray, D: np.ndarray,
          power: list[int], period: float) -> tuple[np.ndarray | None, str | None]:
    """Per member: integral of cost_rate (currency/h), else of price x power."""
    currency = None if asset.tariff is None else asset.tariff.currency
    if "cost_rate" in model.outputs:
        signal = model.outputs["cost_rate"]
        rate = Y[:, :, model.outputs.index("cost_rate")]
        return (np.trapezoid(rate, dx=period, axis=1) / 3600.0,
                currency or signal.unit.partition("/")[0])
    if power and "electricity_price" in model.disturbances:
        price = D[:, :, model.disturbances.index("electricity_price")]
        rate = price * Y[:, :, power].sum(axis=2) / 3.6e6   # currency/kWh x W -> currency/s
        return np.trapezoid(rate, dx=period, axis=1), currency
    return None, currency


def _figure(unit: str, values: np.ndarray | None) -> Figure:
    if values is None:
        return Figure(unit, None, None, None)
    lower, upper = np.percentile(values, BAND)
    return Figure(unit, float(values[0]), float(lower), float(upper))


def _trajectory(unit: str, values: np.ndarray) -> Trajectory:
    lower, upper = np.percentile(values, BAND, axis=0)
    return Trajectory(unit, values[0].tolist(), lower.tolist(), upper.tolist())


def _crossing(limit: _Limit, model: PlantModel, Y: np.ndarray, X: np.ndarray,
              period: float) -> Crossing | None:
    values = (Y[:, :, model.outputs.index(limit.signal)] if limit.signal in model.outputs
              else X[:, :, model.states.index(limit.signal)])
    beyond = np.asarray(values >= limit.bound if limit.side == "above"
                        else values <= limit.bound)
    crossed = np.asarray(beyond.any(axis=1))
    if not crossed.any():
        return None
    first = beyond.argmax(axis=1) * period
    return Crossing(limit=limit.name, kind=limit.kind, signal=limit.signal, side=limit.side,
                    bound=limit.bound,
                    first_time_s=float(first[0]) if crossed[0] else None,
                    earliest_s=float(first[crossed].min()), probability=float(crossed.mean()))
