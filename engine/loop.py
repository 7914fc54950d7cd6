"""ControlLoop: one asset's tick, without Ray. The only implementation of a tick.

    y (measurement) --> estimator.step(state, u, y, dt) --> x_hat
    x_hat, reference --> controller.step(t, x_hat, u, d, reference, p=p_hat) --> Proposal
    GateRequest(t, measurement, age, proposal) --> gate --> Decision
    Decision.applied --> u, d (what the plant was given) --> TickResult

``tick(t, measurement, gate)`` runs the whole cycle with a synchronous gate: the pure
safety policy (engine.gate.PolicyGate: tests, ``twinloop tune``, what-if, benchmarks).
It is two halves, which an asset shard (actors.shard) runs around its batched remote
gate: ``advance`` (observe + propose, numerical, on a thread pool) returns the
GateRequest, ``complete`` takes the gate's Decision (None: the gate was unreachable,
nothing was written, inputs hold) and the twin time its writes reached the plant, and
returns the TickResult.

p_hat is the model's parameters, the estimated ones at their estimates: the controller
predicts with what the filter has learnt of the plant (a fouled coil), not the nominal
model.

With a forecast (engine.forecast: the site's tariff, nomination and forecast series, an
approved plan) the loop asks it for the trajectories at the controller's step times
t + k dt, k = 0 .. N-1, and passes them: ``disturbances`` and ``prices`` per name and
the reference as a sequence per output, the current value held where the forecast
covers nothing; to a controller with ``input_targets`` (the fast MPC) an input's target
(an approved plan's injections and pump speeds) as a sequence per input in the
reference too, NaN where the forecast covers nothing (no target there); the do-mpc MPC
gets none (it follows an approved plan's flow and prices only). Without one the
controller sees the current values only.

The loop holds the asset's mutable state (estimator state, last applied inputs,
reference, disturbances); the estimator and controller hold structure and their own
warm-start data.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import numpy as np

from engine.config import EstimatorSettings
from engine.forecast import Forecast
from engine.messages import Decision, Estimate, GateRequest, Measurement, Proposal
from engine.model import PlantModel

Gate = Callable[[GateRequest], Decision | None]
"""Decides one asset's GateRequest; None when the safety authority did not answer."""


class TickResult(msgspec.Struct, frozen=True):
    """What one tick of one asset did, at twin ``time`` (s).

    ``estimate`` is None when no new measurement came (the estimate was not corrected);
    ``proposal`` None when nothing was proposed (OFF, or no controller step asked);
    ``decision`` None when the gate did not answer: nothing was written (fail closed).
    ``applied`` is what the plant was given this tick (``decision.applied`` or nothing).
    """

    asset: str
    time: float
    measurement: Measurement | None
    measurement_age: float
    estimate: Estimate | None
    proposal: Proposal | None
    decision: Decision | None

    @property
    def applied(self) -> dict[str, float]:
        return {} if self.decision is None else self.decision.applied


@dataclass
class EstimatorState:
    """Estimate ``x`` with covariance ``P``, the last innovation and its NIS.

    ``x`` holds the plant's states followed by the estimated parameters, if any (the
    estimator's ``parameter_names``). NIS = nu' S^-1 nu with innovation nu = y - h(x_prior)
    over the ``dof`` outputs measured and its covariance S; under a consistent filter it
    is chi-square distributed with ``dof`` degrees of freedom. ``anomaly`` is
    NIS > ``nis_threshold``, the chi-square quantile at the estimator's significance.
    """

    x: np.ndarray
    P: np.ndarray
    innovation: np.ndarray
    nis: float = 0.0
    dof: int = 0
    nis_threshold: float = math.inf
    anomaly: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x.tolist(), "P": self.P.tolist(),
                "innovation": self.innovation.tolist(), "nis": self.nis, "dof": self.dof,
                "nis_threshold": self.nis_threshold, "anomaly": self.anomaly}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EstimatorState:
        return cls(np.asarray(data["x"], float), np.asarray(data["P"], float),
                   np.asarray(data["innovation"], float), float(data["nis"]),
                   int(data.get("dof", 0)), float(data.get("nis_threshold", math.inf)),
                   bool(data.get("anomaly", False)))


class AnomalyWindow:
    """The anomaly flags of the last ``size`` corrections. The anomaly is persistent
    while more than ``fraction`` of the window's size are flagged: a single flag is the
    chi-square test's false alarm (one correction in 1/significance), a majority of the
    last ``size`` is the plant no longer behaving like its model (a sensor bias, a fault,
    a parameter jump) and shows in the asset's health."""

    def __init__(self, size: int, fraction: float, flags: Iterable[bool] = ()) -> None:
        if not (isinstance(size, int) and size >= 1):
            raise ValueError(f"EstimatorSettings.persistence_window must be an integer >= 1, "
                             f"got {size!r}")
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"EstimatorSettings.persistence_fraction must be in [0, 1), "
                             f"got {fraction!r}")
        self.size, self.fraction = size, fraction
        self.flags: deque[bool] = deque((bool(f) for f in flags), maxlen=size)

    def record(self, anomaly: bool) -> None:
        self.flags.append(bool(anomaly))

    @property
    def count(self) -> int:
        """Flagged corrections in the window."""
        return sum(self.flags)

    @property
    def persistent(self) -> bool:
        return self.count > self.fraction * self.size


class Estimator(Protocol):
    """Recursive state estimator built from a PlantModel. Its state vector is the
    plant's states followed by the estimated ``parameter_names``; ``settings`` are its
    tuning (noise, significance and the persistence window of its anomaly flag)."""

    model: PlantModel
    kind: str
    parameter_names: tuple[str, ...]
    settings: EstimatorSettings

    def initial_state(self, x0: np.ndarray) -> EstimatorState: ...

    def step(
        self, state: EstimatorState, u: np.ndarray, d: np.ndarray, y: Mapping[str, float], dt: float
    ) -> EstimatorState:
        """Predict over ``dt`` with inputs ``u``, ``d`` held, then correct with ``y``
        (a mapping of output name -> value; outputs absent from it are not used)."""
        ...


class Controller(Protocol):
    """Computes setpoints for the plant's inputs from the estimated state."""

    model: PlantModel
    backend: str

    def step(
        self, t: float, x: np.ndarray, u: np.ndarray, d: np.ndarray,
        reference: Mapping[str, float], *, p: np.ndarray | None = None,
    ) -> Proposal:
        """Propose inputs given the estimate ``x``, the inputs ``u`` applied now, the
        disturbances ``d``, the output references and the model's parameter vector ``p``
        to predict with (model order, parameter units; None: the nominal values). The
        Proposal's ``asset`` is left empty for the loop to fill in."""
        ...

    def checkpoint(self) -> dict[str, Any]:
        """Plain data (msgpack-able) that ``restore`` resumes from after a restart: the
        warm start and last good plan, or {} if there is none."""
        ...

    def restore(self, data: Mapping[str, Any]) -> None:
        """Resume from a ``checkpoint`` ({}: start cold)."""
        ...


class ForecastingController(Controller, Protocol):
    """A controller that takes forecasts over its ``horizon`` of N steps (the MPCs):
    ``reference`` values, ``disturbances`` and ``prices`` as sequences of N values; if
    it has ``input_targets``, a reference may name an input (its target, NaN at the
    steps without one)."""

    horizon: int
    input_targets: bool

    def step(
        self, t: float, x: np.ndarray, u: np.ndarray, d: np.ndarray,
        reference: Mapping[str, float | list[float]], *,
        disturbances: Mapping[str, list[float]] | None = None,
        prices: Mapping[str, list[float]] | None = None, p: np.ndarray | None = None,
    ) -> Proposal: ...


class ControlLoop:
    """Composes a plant model, an estimator and a controller for one asset."""

    def __init__(
        self,
        asset: str,
        model: PlantModel,
        estimator: Estimator,
        controller: Controller,
        *,
        x0: Mapping[str, float] | None = None,
        u0: Mapping[str, float] | None = None,
        d: Mapping[str, float] | None = None,
        reference: Mapping[str, float] | None = None,
        t0: float = 0.0,
        estimated_parameters_to_controller: bool = True,
        forecast: Forecast | None = None,
    ) -> None:
        """``estimated_parameters_to_controller``: the controller predicts with the
        filter's estimates of the estimated parameters (else with the nominal ones).
        ``forecast``: what the controller sees over its horizon (see ``follow``)."""
        self.asset = asset
        self.model = model
        self.estimator = estimator
        self.controller = controller
        self.estimated_parameters_to_controller = estimated_parameters_to_controller
        self.state = estimator.initial_state(model.states.vector(model.states.check(x0 or {})))
        self.u = model.inputs.vector(model.inputs.check(u0 or {}))
        self.d = model.disturbances.vector(model.disturbances.check(d or {}))
        self.reference: dict[str, float] = {}
        self.set_reference(reference or {})
        self.t = float(t0)
        self.last_measurement: Measurement | None = None
        self.anomalies = AnomalyWindow(estimator.settings.persistence_window,
                                       estimator.settings.persistence_fraction)
        """Anomaly flags of the last corrections (those with an output measured)."""
        self._input_before: tuple[float, np.ndarray] | None = None
        """(time, inputs held until then) of the first input change since the last
        measurement, for the prediction to use the inputs the plant really had."""
        self.forecast: Forecast | None = None
        self.follow(forecast)

    def follow(self, forecast: Forecast | None) -> None:
        """Hand ``forecast`` to the controller from the next step on (None: the current
        values only). TypeError for a controller without a horizon (it takes none)."""
        if forecast is not None and not isinstance(getattr(self.controller, "horizon", None),
                                                   int):
            raise TypeError(f"asset {self.asset!r}: the {self.controller.backend} controller "
                            "has no horizon and takes no forecast; use an MPC backend")
        self.forecast = forecast

    def set_reference(self, reference: Mapping[str, float]) -> dict[str, float]:
        """Set output targets; unknown outputs and values outside bounds raise ValueError."""
        try:
            checked = self.model.outputs.check(reference)
        except KeyError as error:
            raise ValueError(error.args[0]) from None
        self.reference = {**self.reference, **checked}
        return dict(self.reference)

    def set_disturbances(self, d: Mapping[str, float]) -> None:
        self.d = self.model.disturbances.vector(self.model.disturbances.check(d), default=self.d)

    def observe(self, measurement: Measurement) -> Estimate:
        """Correct the estimate with a measurement, predicting from the last one with the
        inputs the plant had: those held before an input change up to the time the change
        reached the plant, the new ones after (in real time a setpoint is written after
        the measurement it used, and a PLC may sample again before the write arrives)."""
        u = self.u
        if self._input_before is not None:
            changed_at, before = self._input_before
            if changed_at >= measurement.time:  # sampled before the change reached the plant
                u = before
            else:
                self._input_before = None
                if self.t < changed_at:
                    self.state = self.estimator.step(self.state, before, self.d, {},
                                                     changed_at - self.t)
                    self.t = changed_at
        dt = max(0.0, measurement.time - self.t)
        self.state = self.estimator.step(self.state, u, self.d, measurement.values, dt)
        if self.state.dof:
            self.anomalies.record(self.state.anomaly)
        self.t = measurement.time
        self.last_measurement = measurement
        return self.estimate()

    def tick(self, t: float, measurement: Measurement | None, gate: Gate,
             propose: bool = True) -> TickResult:
        """One whole tick at twin time ``t``: observe ``measurement`` (None: nothing new),
        propose (if ``propose``), gate, and hold what the gate let through."""
        request = self.advance(t, measurement, propose)
        return self.complete(request, gate(request))

    def advance(self, t: float, measurement: Measurement | None,
                propose: bool = True) -> GateRequest:
        """The numerical half of a tick: correct the estimate with ``measurement`` (if
        any), ask the controller (if ``propose``), and say what goes to the gate."""
        if measurement is not None:
            self.observe(measurement)
        proposal = self.propose(t) if propose else None
        return GateRequest(asset=self.asset, time=t, measurement=measurement,
                           measurement_age=self.measurement_age(t), proposal=proposal)

    def complete(self, request: GateRequest, decision: Decision | None,
                 applied_at: float | None = None) -> TickResult:
        """The other half: hold what the gate let through and report the tick.
        ``decision`` None: nothing was written, inputs hold. ``applied_at`` is the twin
        time the writes reached the plant (None: the decision's time, as in lock-step,
        where the plant stands still while the tick runs). In real time the writes reach
        the plant after the measurement, the solve and the gate: at 60x, 0.1 s of wall
        time is 6 s of twin time with the old inputs, which the estimate must predict
        with (a prediction that switches at the tick's time flags the corrections after
        each move as anomalies)."""
        if decision is not None and decision.applied:
            self.applied(decision.applied, decision.time if applied_at is None else applied_at)
        estimate = None if request.measurement is None else self.estimate()
        return TickResult(asset=self.asset, time=request.time, measurement=request.measurement,
                          measurement_age=request.measurement_age, estimate=estimate,
                          proposal=request.proposal, decision=decision)

    def measurement_age(self, t: float) -> float:
        """Twin seconds from the newest measurement's sample time to ``t`` (inf: none yet)."""
        last = self.last_measurement
        return math.inf if last is None else t - last.time

    def propose(self, t: float) -> Proposal:
        """Ask the controller for setpoints at time ``t``, predicting with the estimated
        parameters (see ``estimated_parameters_to_controller``)."""
        p = self.parameters() if self.estimated_parameters_to_controller else None
        if self.forecast is None:
            proposal = self.controller.step(t, self.x, self.u, self.d, self.reference, p=p)
        else:
            controller: ForecastingController = self.controller  # type: ignore[assignment]
            ahead = self.forecast.trajectories(t + self.model.dt * np.arange(controller.horizon))
            current = {**self.model.outputs.mapping(self.model.outputs.nominal),
                       **self.reference}
            targets = {name: values for name, values in ahead.reference.items()
                       if name in self.model.inputs and controller.input_targets}
            outputs = {name: values for name, values in ahead.reference.items()
                       if name in self.model.outputs}
            reference: dict[str, float | list[float]] = {
                **self.reference, **_held(outputs, current), **targets}
            proposal = controller.step(
                t, self.x, self.u, self.d, reference,
                disturbances=_held(ahead.disturbances, self.model.disturbances.mapping(self.d)),
                prices=_held(ahead.prices, {}), p=p)
        return _with_asset(proposal, self.asset)

    def parameters(self) -> np.ndarray:
        """The model's parameter vector with the estimated parameters at their estimates
        (parameter units, model order)."""
        estimated = self.state.x[len(self.model.states):]
        return self.model.parameters.vector(dict(zip(self.estimator.parameter_names,
                                                     estimated.tolist(), strict=True)))

    def applied(self, setpoints: Mapping[str, float], time: float | None = None) -> None:
        """Record setpoints that the safety policy let through to the plant at twin
        ``time`` (None: at the last measurement's time): inputs as ``u``, writable
        disturbances (a terminal's loading draws) as ``d``."""
        inputs = {n: v for n, v in setpoints.items() if n in self.model.inputs}
        disturbances = {n: v for n, v in setpoints.items() if n in self.model.disturbances}
        if inputs:
            if time is not None and time > self.t and self._input_before is None:
                self._input_before = (time, self.u)
            self.u = self.model.inputs.vector(inputs, default=self.u)
        if disturbances:
            self.set_disturbances(disturbances)

    @property
    def x(self) -> np.ndarray:
        """The estimated plant states (without estimated parameters), state units."""
        return self.state.x[: len(self.model.states)]

    def estimate(self) -> Estimate:
        std = np.sqrt(np.clip(np.diag(self.state.P), 0.0, None))
        n = len(self.model.states)
        names = self.estimator.parameter_names
        return Estimate(
            asset=self.asset,
            time=self.t,
            values=self.model.states.mapping(self.x),
            std=self.model.states.mapping(std[:n]),
            nis=float(self.state.nis) if math.isfinite(self.state.nis) else 0.0,
            parameters=dict(zip(names, self.state.x[n:].tolist(), strict=True)),
            parameter_std=dict(zip(names, std[n:].tolist(), strict=True)),
            anomaly=self.state.anomaly,
            persistent_anomaly=self.persistent_anomaly,
        )

    @property
    def persistent_anomaly(self) -> bool:
        """Most of the last corrections failed the NIS test (see AnomalyWindow)."""
        return self.anomalies.persistent

    def checkpoint(self) -> dict[str, Any]:
        """Plain-data snapshot of the loop's mutable state."""
        return {"t": self.t, "estimator": self.state.to_dict(), "u": self.u.tolist(),
                "d": self.d.tolist(), "reference": dict(self.reference),
                "anomaly_window": list(self.anomalies.flags)}

    def restore(self, data: Mapping[str, Any]) -> None:
        self.t = float(data["t"])
        self.state = EstimatorState.from_dict(data["estimator"])
        self.u = np.asarray(data["u"], float)
        self.d = np.asarray(data["d"], float)
        self.reference = dict(data["reference"])
        self.anomalies = AnomalyWindow(self.anomalies.size, self.anomalies.fraction,
                                       data.get("anomaly_window", ()))


def _held(ahead: Mapping[str, list[float]], current: Mapping[str, float]
          ) -> dict[str, list[float]]:
    """Forecast trajectories with their uncovered (NaN) steps at the ``current`` value
    (a price without one: 1, the economic weight unscaled)."""
    return {name: [current.get(name, 1.0) if math.isnan(v) else v for v in values]
            for name, values in ahead.items()}


def _with_asset(proposal: Proposal, asset: str) -> Proposal:
    return msgspec.structs.replace(proposal, asset=asset)
