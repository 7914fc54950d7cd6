"""What every Kalman filter of TwinLoop shares: the augmented state, the noise, the
measurement bookkeeping and the chi-square test of the innovation.

Augmented state. Parameters named in ``EstimatorSettings.estimate_parameters`` are
appended to the plant's states and estimated as random walks,

    z = [x; theta]          dx/dt = f(x, u, d, p(theta))      dtheta/dt = w_theta
    y = h(x, u, d, p(theta)) + v

where p(theta) is the model's nominal parameter vector with the estimated entries
replaced by theta. After each correction theta is clipped to its parameters' bounds.

Noise (SI, per signal name; the same for the KF, EKF and UKF):
    Q = diag(process_std^2), per second of dt: process_std in state units per
        sqrt(second), default the state's ``std``; for an estimated parameter its
        random-walk std from ``estimate_parameters``, parameter units per sqrt(second).
    R = diag(measurement_std^2): measurement_std in output units, default the
        output's ``std``; it must be positive. Outputs named in ``unfiltered_outputs``
        (KPIs derived from other measured outputs) are not used in the correction.
    P0 = diag(initial_std^2): default 1 % of a state's nominal value (10 % of an
        estimated parameter's), at least its process std over one hour.

Anomaly flag. With the m outputs measured in a step, the innovation nu and its
covariance S, NIS = nu' S^-1 nu is chi-square distributed with m degrees of freedom
when the filter is consistent; the step is flagged when

    NIS > chi2.ppf(1 - significance, m)        (scipy.stats.chi2)

so a clean filter raises the flag in a fraction ``significance`` of its corrections.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import casadi as ca
import numpy as np
from scipy.linalg.lapack import dposv
from scipy.stats import chi2

from controllers.casadi_compile import BufferedCall
from engine.config import EstimatorSettings
from engine.loop import EstimatorState
from engine.model import PlantModel
from engine.signals import SignalSet

_INITIAL_HORIZON_S = 3600.0
"""The default initial std is at least the process std accumulated over this time."""
_STATE_INITIAL_FRACTION = 0.01
_PARAMETER_INITIAL_FRACTION = 0.1


class FilterModel:
    """A PlantModel as a Kalman filter sees it: augmented state, noise, symbols.

    Attributes:
        model: the plant model.
        parameters: its parameter values p.
        parameter_names: the estimated parameters, in the order they follow the states.
        names: the augmented state's names (states, then estimated parameters).
        process_noise_rate: Q, diagonal as a matrix, (state or parameter units)^2 per second.
        measurement_variance: diag(R) in output order, output units^2.
        initial_covariance: P0.
        significance: false-alarm probability of the anomaly flag per correction.
    """

    def __init__(self, model: PlantModel, settings: EstimatorSettings, who: str) -> None:
        self.model = model
        self.who = who
        _require_known("estimate_parameters", settings.estimate_parameters, model.parameters)
        self.parameter_names = tuple(n for n in model.parameters.names
                                     if n in settings.estimate_parameters)
        self.names = (*model.states.names, *self.parameter_names)
        self.parameters = model.parameters.nominal
        """p, the model's parameter values (parameter units): the input p of the
        functions; the estimated ones are replaced by theta."""
        self._estimated = [model.parameters.index(n) for n in self.parameter_names]
        parameters = [model.parameters[n] for n in self.parameter_names]
        self.parameter_lower = np.array([s.lower for s in parameters])
        self.parameter_upper = np.array([s.upper for s in parameters])
        augmented = SignalSet([*model.states, *parameters])

        walk = {n: settings.estimate_parameters[n] for n in self.parameter_names}
        _std_vector(SignalSet(parameters), walk, "estimate_parameters")
        _require_known("process_std", settings.process_std, model.states)
        process_std = _std_vector(augmented, {**walk, **settings.process_std}, "process_std")
        measurement_std = _std_vector(model.outputs, settings.measurement_std, "measurement_std")
        not_positive = [n for n, s in zip(model.outputs.names, measurement_std, strict=True)
                        if not s > 0]
        if not_positive:
            raise ValueError(
                f"plant {model.kind!r}: output(s) {not_positive} have measurement std 0; "
                "set a positive EstimatorSettings.measurement_std for them"
            )
        fraction = np.r_[np.full(len(model.states), _STATE_INITIAL_FRACTION),
                         np.full(len(parameters), _PARAMETER_INITIAL_FRACTION)]
        default_initial = np.maximum(fraction * np.abs(augmented.nominal),
                                     process_std * math.sqrt(_INITIAL_HORIZON_S))
        initial_std = _std_vector(augmented, settings.initial_std, "initial_std",
                                  default=default_initial)
        if not 0 < settings.significance < 1:
            raise ValueError(f"EstimatorSettings.significance must be in (0, 1), "
                             f"got {settings.significance}")
        self.process_noise_rate = np.diag(process_std**2)
        self.measurement_variance = measurement_std**2
        self.initial_covariance = np.diag(initial_std**2)
        self.significance = settings.significance
        self._thresholds: dict[int, float] = {}
        _require_known("unfiltered_outputs", settings.unfiltered_outputs, model.outputs)
        self._output_index = {name: i for i, name in enumerate(model.outputs.names)}
        self._unfiltered = frozenset(settings.unfiltered_outputs)

    @property
    def size(self) -> int:
        return len(self.names)

    # -- symbols -------------------------------------------------------------------------------

    def symbols(self) -> tuple[ca.SX, ca.SX, ca.SX, ca.SX, ca.SX]:
        """Fresh symbols (z, u, d, dt, p) of the augmented state, inputs, disturbances,
        step and model parameters. The parameter values are an input (:attr:`parameters`
        at run time), so the filter's functions depend on the model's structure only and
        are shared by every asset of it (:meth:`shared_key`)."""
        model = self.model
        return (ca.SX.sym("z", self.size), ca.SX.sym("u", len(model.inputs)),
                ca.SX.sym("d", len(model.disturbances)), ca.SX.sym("dt"),
                ca.SX.sym("p", len(model.parameters)))

    def shared_key(self, *settings: object) -> tuple[object, ...]:
        """What a filter's functions depend on: the model's structure, the estimated
        parameters, the filter's class name and its ``settings`` that shape them."""
        return (self.who, self.model.structure, self.parameter_names, *settings)

    def transition(self, z: ca.SX, u: ca.SX, d: ca.SX, dt: ca.SX, p: ca.SX) -> ca.SX:
        """z after ``dt`` seconds: the model's RK4 step on x, theta held."""
        x, p = self._split(z, p)
        return ca.vertcat(self.model.F(x, u, d, p, dt), self._theta(z))

    def dynamics(self, z: ca.SX, u: ca.SX, d: ca.SX, p: ca.SX) -> ca.SX:
        """dz/dt: the model's f on x, zero for theta."""
        x, p = self._split(z, p)
        return ca.vertcat(self.model.f(x, u, d, p), ca.SX.zeros(len(self.parameter_names)))

    def _theta(self, z: ca.SX) -> ca.SX:
        n = len(self.model.states)
        return ca.vertcat(*(z[n + k] for k in range(len(self.parameter_names))))

    def observation(self, z: ca.SX, u: ca.SX, d: ca.SX, p: ca.SX) -> ca.SX:
        x, p = self._split(z, p)
        return self.model.h(x, u, d, p)

    def _split(self, z: ca.SX, p: ca.SX) -> tuple[ca.SX, ca.SX]:
        """x, and the parameters ``p`` with the estimated ones replaced by theta."""
        n = len(self.model.states)
        p = ca.SX(p)  # a copy to assign into: the caller's symbol stays as it is
        for k, index in enumerate(self._estimated):
            p[index] = z[n + k]
        return ca.vertcat(*(z[i] for i in range(n))), p

    # -- numbers -------------------------------------------------------------------------------

    def initial_state(self, x0: np.ndarray) -> EstimatorState:
        """Plant states ``x0`` (estimated parameters at their nominal values) with P0."""
        x = np.array(x0, dtype=float).ravel()
        if x.size != len(self.model.states):
            raise ValueError(f"expected {len(self.model.states)} initial state values for "
                             f"{list(self.model.states.names)}, got {x.size}")
        z = np.r_[x, self.model.parameters.nominal[self._estimated]]
        return EstimatorState(z, self.initial_covariance.copy(),
                              np.zeros(len(self.model.outputs)), 0.0)

    def prediction_steps(self, dt: float) -> int:
        """Equal sub-steps no longer than the model's dt: the RK4 step is only accurate
        (and stable) at the step the model was built for, and a gap in the measurements
        (a late first tick, a lost link) must not blow it up."""
        if not (dt >= 0 and math.isfinite(dt)):
            raise ValueError(f"{self.who}: dt must be finite and >= 0 s, got {dt}")
        return math.ceil(dt / self.model.dt - 1e-9) if dt > 0 else 0

    def measured(self, y: Mapping[str, float]) -> tuple[list[int], np.ndarray]:
        """Output rows and finite values of a measurement, in the measurement's order,
        without the outputs the settings leave unfiltered."""
        rows, values = [], []
        for name, value in y.items():
            row = self._output_index.get(name)
            if row is None:
                raise ValueError(f"{self.who}: unknown output {name!r}; known outputs: "
                                 f"{', '.join(self.model.outputs.names)}")
            if name in self._unfiltered:
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{self.who}: output {name!r}: {value!r} is not a number") from None
            if not math.isfinite(number):
                raise ValueError(f"{self.who}: output {name!r}: measurement {number} is not finite")
            rows.append(row)
            values.append(number)
        return rows, np.array(values)

    def require_finite(self, z: np.ndarray, u: np.ndarray, d: np.ndarray) -> None:
        if not np.isfinite(z).all():
            bad = [n for n, v in zip(self.names, z, strict=True) if not math.isfinite(v)]
            raise ValueError(f"{self.who}: prediction of state(s) {bad} is not finite with "
                             f"u={np.asarray(u).tolist()}, d={np.asarray(d).tolist()}")

    def clip_parameters(self, z: np.ndarray) -> np.ndarray:
        if self._estimated:
            n = len(self.model.states)
            z[n:] = np.clip(z[n:], self.parameter_lower, self.parameter_upper)
        return z

    def nis_threshold(self, dof: int) -> float:
        """chi2.ppf(1 - significance, dof), cached per number of measured outputs."""
        threshold = self._thresholds.get(dof)
        if threshold is None:
            threshold = self._thresholds[dof] = float(chi2.ppf(1 - self.significance, dof))
        return threshold

    def corrected(self, z: np.ndarray, P: np.ndarray, rows: list[int], nu: np.ndarray,
                  S: np.ndarray, cross: np.ndarray) -> EstimatorState:
        """The Kalman update from the prior (z, P), the innovation ``nu`` of the measured
        ``rows``, its covariance S and the state-output cross covariance ``cross``:

            K = cross S^-1,  z+ = z + K nu,  P+ = P - K S K',  NIS = nu' S^-1 nu

        (one Cholesky solve, LAPACK dposv, no inverse)."""
        m, n = nu.size, z.size
        right = np.empty((m, n + 1))
        right[:, :n] = cross.T
        right[:, n] = nu
        _, solved, info = dposv(S, right)
        if info != 0:
            raise ValueError(f"{self.who}: innovation covariance is not positive definite "
                             f"(LAPACK dposv info {info})")
        K = solved[:, :n].T
        z = self.clip_parameters(z + K @ nu)
        P = P - cross @ solved[:, :n]
        return self.state(z, 0.5 * (P + P.T), rows, nu, float(nu @ solved[:, n]))

    def state(self, z: np.ndarray, P: np.ndarray, rows: list[int], nu: np.ndarray,
              nis: float) -> EstimatorState:
        """The EstimatorState with the innovation over all outputs and the anomaly test."""
        innovation = np.zeros(len(self.model.outputs))
        innovation[rows] = nu
        dof = len(rows)
        if dof == 0:
            return EstimatorState(z, P, innovation, 0.0)
        threshold = self.nis_threshold(dof)
        return EstimatorState(z, P, innovation, nis, dof, threshold, nis > threshold)


def _require_known(setting: str, names: Iterable[str], signals: SignalSet) -> None:
    unknown = sorted(set(names) - set(signals.names))
    if unknown:
        raise ValueError(f"EstimatorSettings.{setting}: unknown signal(s) {unknown}; "
                         f"known: {', '.join(signals.names)}")


def _std_vector(
    signals: SignalSet, overrides: Mapping[str, float], setting: str,
    default: np.ndarray | None = None,
) -> np.ndarray:
    """Standard deviations in ``signals``' order: their ``std`` (or ``default``) with
    ``overrides`` by name. Unknown names and negative or non-finite values raise."""
    _require_known(setting, overrides, signals)
    for name, value in overrides.items():
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"EstimatorSettings.{setting}[{name!r}] must be finite and "
                             f">= 0, got {value}")
    std = signals.vector(overrides, default=signals.std if default is None else default)
    bad = [n for n, s in zip(signals.names, std, strict=True) if not (math.isfinite(s) and s >= 0)]
    if bad:
        raise ValueError(f"signal(s) {bad}: std must be finite and >= 0 for {setting}")
    return std


class BufferedFunction:
    """A CasADi Function with dense inputs and outputs, called through
    controllers.casadi_compile.BufferedCall (``Function.buffer()``, a few microseconds
    per call instead of tens for the generic call). Inputs are flat (column-major)
    arrays; returns fresh arrays shaped like the outputs, flat for the outputs numbered
    in ``vectors``; not thread-safe."""

    def __init__(self, function: ca.Function, vectors: tuple[int, ...] = ()) -> None:
        self._call = BufferedCall(function)
        self._shapes = [(function.size1_out(i),) if i in vectors else function.size_out(i)
                        for i in range(function.n_out())]

    def __call__(self, *args: np.ndarray | float) -> list[np.ndarray]:
        return [flat.reshape(shape, order="F").copy()
                for flat, shape in zip(self._call(*args), self._shapes, strict=True)]
