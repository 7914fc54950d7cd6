"""Discrete-time extended Kalman filter on a PlantModel's RK4 step.

With the model's RK4 step F, outputs h and nominal parameters p, one call of
:meth:`ExtendedKalmanFilter.step` over ``dt`` seconds does

    prediction   x- = F(x, u, d, p, dt)                A = dF/dx at (x, u, d, p, dt)
                 P- = A P A' + Q dt
    correction   nu = y - h(x-, u, d, p)               C = dh/dx at (x-, u, d, p)
                 S  = C P- C' + R
                 K  = P- C' S^-1                       (a linear solve, no inverse)
                 x+ = x- + K nu
                 P+ = (I - K C) P- (I - K C)' + K R K'  (Joseph form)
                 NIS = nu' S^-1 nu

using only the outputs present in the measurement. ``dt = 0`` skips the prediction.
Jacobians come from CasADi's automatic differentiation of F and h, built once.

Noise (SI, per signal name):
    Q = diag(process_std^2), per second of dt: process_std in state units per
        sqrt(second), default the state's ``std``.
    R = diag(measurement_std^2): measurement_std in output units, default the
        output's ``std``; it must be positive.
    P0 = diag(initial_std^2): default 1 % of the state's nominal value, at least the
        process std over one hour (process_std sqrt(3600 s)).

Simplifications: additive Gaussian noise, Q and R diagonal and constant, parameters
fixed at the model's nominal values (no parameter estimation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import casadi as ca
import numpy as np

from engine.config import EstimatorSettings
from engine.loop import EstimatorState
from engine.model import PlantModel
from engine.signals import SignalSet

_INITIAL_HORIZON_S = 3600.0
"""The default initial std is at least the process std accumulated over this time."""


class ExtendedKalmanFilter:
    """EKF over ``model``'s states from its outputs; satisfies ``engine.loop.Estimator``.

    Signals: in u [input units], d [disturbance units], y {output name: value in output
    units}; out the estimate x [state units] with covariance P, the innovation over all
    outputs [output units, 0 for outputs not measured in that step] and its NIS [-].
    """

    def __init__(self, model: PlantModel, settings: EstimatorSettings) -> None:
        self.model = model
        process_std = _std_vector(model.states, settings.process_std, "process_std")
        measurement_std = _std_vector(model.outputs, settings.measurement_std, "measurement_std")
        not_positive = [n for n, s in zip(model.outputs.names, measurement_std) if not s > 0]
        if not_positive:
            raise ValueError(
                f"plant {model.kind!r}: output(s) {not_positive} have measurement std 0; "
                "set a positive EstimatorSettings.measurement_std for them"
            )
        default_initial = np.maximum(0.01 * np.abs(model.states.nominal),
                                     process_std * math.sqrt(_INITIAL_HORIZON_S))
        initial_std = _std_vector(model.states, settings.initial_std, "initial_std",
                                  default=default_initial)
        self.process_noise_rate = np.diag(process_std**2)
        """Q, state units^2 per second."""
        self.measurement_variance = measurement_std**2
        """diag(R), output units^2, in output order."""
        self.initial_covariance = np.diag(initial_std**2)
        """P0, state units^2."""
        self._identity = np.eye(len(model.states))
        self._output_index = {name: i for i, name in enumerate(model.outputs.names)}
        self._transition, self._observation = _linearisations(model)

    def initial_state(self, x0: np.ndarray) -> EstimatorState:
        """Estimate ``x0`` with covariance P0, no innovation yet."""
        x = np.array(x0, dtype=float).ravel()
        if x.size != len(self.model.states):
            raise ValueError(f"expected {len(self.model.states)} initial state values for "
                             f"{list(self.model.states.names)}, got {x.size}")
        return EstimatorState(x, self.initial_covariance.copy(),
                              np.zeros(len(self.model.outputs)), 0.0)

    def step(
        self, state: EstimatorState, u: np.ndarray, d: np.ndarray, y: Mapping[str, float],
        dt: float,
    ) -> EstimatorState:
        """Predict over ``dt`` seconds with ``u`` and ``d`` held, then correct with the
        outputs present in ``y``. Returns a new state; ``state`` is left unchanged.

        Unknown output names, non-finite values and negative or non-finite ``dt`` raise
        ValueError naming the signal."""
        rows, measured = self._measured(y)
        if not (dt >= 0 and math.isfinite(dt)):
            raise ValueError(f"EKF: dt must be finite and >= 0 s, got {dt}")
        x, P = state.x, state.P
        # prediction, in equal sub-steps no longer than the model's dt: the RK4 step is
        # only accurate (and stable) at the step the model was built for, and a gap in
        # the measurements (a late first tick, a lost link) must not blow it up
        steps = math.ceil(dt / self.model.dt - 1e-9) if dt > 0 else 0
        for _ in range(steps):
            x_prior, A = self._transition(x, u, d, dt / steps)
            x = x_prior.ravel()
            self._require_finite(x, u, d)
            P = A @ P @ A.T + self.process_noise_rate * (dt / steps)
        innovation = np.zeros(len(self.model.outputs))
        if not rows:
            return EstimatorState(x.copy(), P.copy(), innovation, 0.0)
        # correction
        y_prior, C_all = self._observation(x, u, d)
        nu = measured - y_prior.ravel()[rows]
        C = C_all[rows]
        r = self.measurement_variance[rows]
        PCt = P @ C.T
        S = C @ PCt
        S.flat[:: len(rows) + 1] += r
        # one solve gives S^-1 C P (the gain, transposed) and S^-1 nu (for the NIS)
        solved = np.linalg.solve(S, np.concatenate((PCt.T, nu[:, None]), axis=1))
        K = solved[:, :-1].T
        x = x + K @ nu
        joseph = self._identity - K @ C
        P = joseph @ P @ joseph.T + (K * r) @ K.T
        P = 0.5 * (P + P.T)
        innovation[rows] = nu
        return EstimatorState(x, P, innovation, float(nu @ solved[:, -1]))

    def _measured(self, y: Mapping[str, float]) -> tuple[list[int], np.ndarray]:
        """Output rows and finite values of a measurement, in the measurement's order."""
        rows, values = [], []
        for name, value in y.items():
            row = self._output_index.get(name)
            if row is None:
                raise ValueError(f"EKF: unknown output {name!r}; known outputs: "
                                 f"{', '.join(self.model.outputs.names)}")
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"EKF: output {name!r}: {value!r} is not a number") from None
            if not math.isfinite(number):
                raise ValueError(f"EKF: output {name!r}: measurement {number} is not finite")
            rows.append(row)
            values.append(number)
        return rows, np.array(values)

    def _require_finite(self, x: np.ndarray, u: np.ndarray, d: np.ndarray) -> None:
        if not np.isfinite(x).all():
            bad = [n for n, v in zip(self.model.states.names, x) if not math.isfinite(v)]
            raise ValueError(f"EKF: prediction of state(s) {bad} is not finite with "
                             f"u={np.asarray(u).tolist()}, d={np.asarray(d).tolist()}")


def _std_vector(
    signals: SignalSet, overrides: Mapping[str, float], setting: str,
    default: np.ndarray | None = None,
) -> np.ndarray:
    """Standard deviations in ``signals``' order: their ``std`` (or ``default``) with
    ``overrides`` by name. Unknown names and negative or non-finite values raise."""
    unknown = sorted(set(overrides) - set(signals.names))
    if unknown:
        raise ValueError(f"EstimatorSettings.{setting}: unknown signal(s) {unknown}; "
                         f"known: {', '.join(signals.names)}")
    for name, value in overrides.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"EstimatorSettings.{setting}[{name!r}] must be finite and "
                             f">= 0, got {value}")
    std = signals.vector(overrides, default=signals.std if default is None else default)
    bad = [n for n, s in zip(signals.names, std) if not (math.isfinite(s) and s >= 0)]
    if bad:
        raise ValueError(f"signal(s) {bad}: std must be finite and >= 0 for {setting}")
    return std


def _linearisations(model: PlantModel) -> tuple[_BufferedFunction, _BufferedFunction]:
    """(x, u, d, dt) -> (F, dF/dx) and (x, u, d) -> (h, dh/dx) at the model's nominal
    parameters, as CasADi Functions evaluated on preallocated buffers."""
    x = ca.SX.sym("x", len(model.states))
    u = ca.SX.sym("u", len(model.inputs))
    d = ca.SX.sym("d", len(model.disturbances))
    dt = ca.SX.sym("dt")
    p = ca.DM(model.parameters.nominal)
    x_next = model.F(x, u, d, p, dt)
    y = model.h(x, u, d, p)
    transition = ca.Function("ekf_transition", [x, u, d, dt],
                             [x_next, ca.densify(ca.jacobian(x_next, x))],
                             ["x", "u", "d", "dt"], ["x_next", "A"])
    observation = ca.Function("ekf_observation", [x, u, d], [y, ca.densify(ca.jacobian(y, x))],
                              ["x", "u", "d"], ["y", "C"])
    return _BufferedFunction(transition), _BufferedFunction(observation)


class _BufferedFunction:
    """A CasADi Function with dense inputs and outputs evaluated through
    ``Function.buffer()`` on numpy arrays it owns: a few microseconds per call instead
    of tens for the generic call. Returns fresh arrays; not thread-safe."""

    def __init__(self, function: ca.Function) -> None:
        self._function = function
        self._buffer, self._evaluate = function.buffer()
        self._inputs = [np.zeros(function.nnz_in(i)) for i in range(function.n_in())]
        self._outputs = [np.zeros(function.size_out(i), order="F")
                         for i in range(function.n_out())]
        for i, array in enumerate(self._inputs):
            self._buffer.set_arg(i, memoryview(array))
        for i, array in enumerate(self._outputs):
            self._buffer.set_res(i, memoryview(array.reshape(-1, order="F")))

    def __call__(self, *args) -> list[np.ndarray]:
        for array, value in zip(self._inputs, args):
            array[:] = value
        self._evaluate()
        if self._buffer.ret() != 0:
            raise RuntimeError(f"CasADi function {self._function.name()!r} failed "
                               f"(return code {self._buffer.ret()})")
        return [array.copy() for array in self._outputs]
