"""Discrete-time extended Kalman filter on a PlantModel's RK4 step.

With the model's RK4 step F and outputs h on the augmented state z = [x; theta] (see
:mod:`controllers.kalman` for the augmentation, the noise and the anomaly test), one
call of :meth:`ExtendedKalmanFilter.step` over ``dt`` seconds does

    prediction   z- = F(z, u, d, dt)                   A = dF/dz at (z, u, d, dt)
                 P- = A P A' + Q dt
    correction   nu = y - h(z-, u, d)                  C = dh/dz at (z-, u, d)
                 S  = C P- C' + R
                 K  = P- C' S^-1                       (a linear solve, no inverse)
                 z+ = z- + K nu
                 P+ = P- - K S K'
                 NIS = nu' S^-1 nu

using only the outputs present in the measurement. ``dt = 0`` skips the prediction; a
``dt`` longer than the model's step is predicted in equal sub-steps no longer than it.
One CasADi Function, built from CasADi's automatic differentiation once per model
structure in a process (the parameters p are its input; controllers.casadi_compile.shared),
returns the prediction, its Jacobian and the predicted outputs with theirs in a single call;
with ``EstimatorSettings.compiled`` it runs as compiled C (:mod:`controllers.casadi_compile`;
a CompileError if there is no C compiler or it fails).

Simplifications: additive Gaussian noise, Q and R diagonal and constant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import casadi as ca
import numpy as np

from controllers.casadi_compile import compile_setup, compiled, shared
from controllers.kalman import BufferedFunction, FilterModel
from engine.config import EstimatorSettings
from engine.loop import EstimatorState
from engine.model import PlantModel


class ExtendedKalmanFilter:
    """EKF over ``model``'s states (and estimated parameters) from its outputs;
    satisfies ``engine.loop.Estimator``.

    Signals: in u [input units], d [disturbance units], y {output name: value in output
    units}; out the estimate z [state and parameter units] with covariance P, the
    innovation over all outputs [output units, 0 for outputs not measured in that step],
    its NIS [-] and the chi-square anomaly flag.
    """

    kind = "ekf"

    def __init__(self, model: PlantModel, settings: EstimatorSettings) -> None:
        self.model = model
        self.settings = settings
        self.filter = FilterModel(model, settings, "EKF")
        self.parameter_names = self.filter.parameter_names
        self._Q = self.filter.process_noise_rate
        self._r = self.filter.measurement_variance
        self._all_rows = list(range(len(model.outputs)))
        self._h, self._Q_h = math.nan, self._Q
        compiler = compile_setup() if settings.compiled else None
        predict, observe = shared(self.filter.shared_key(compiler),
                                  lambda: _functions(self.filter, settings.compiled))
        self._predict = BufferedFunction(predict, vectors=(0, 2))
        self._observe = BufferedFunction(observe, vectors=(0,))
        self._p = self.filter.parameters

    def initial_state(self, x0: np.ndarray) -> EstimatorState:
        """Estimate ``x0`` (estimated parameters at nominal) with covariance P0."""
        return self.filter.initial_state(x0)

    def step(
        self, state: EstimatorState, u: np.ndarray, d: np.ndarray, y: Mapping[str, float],
        dt: float,
    ) -> EstimatorState:
        """Predict over ``dt`` seconds with ``u`` and ``d`` held, then correct with the
        outputs present in ``y``. Returns a new state; ``state`` is left unchanged.

        Unknown output names, non-finite values and negative or non-finite ``dt`` raise
        ValueError naming the signal."""
        rows, measured = self.filter.measured(y)
        steps = self.filter.prediction_steps(dt)
        z, P = state.x, state.P
        # prediction
        if steps == 0:
            y_prior, C = self._observe(z, u, d, self._p)
        else:
            h = dt / steps
            if h != self._h:
                self._h, self._Q_h = h, self._Q * h
            for _ in range(steps):
                z, A, y_prior, C = self._predict(z, u, d, h, self._p)
                P = A @ P @ A.T + self._Q_h
            self.filter.require_finite(z, u, d)
        if not rows:
            return self.filter.state(z, P.copy(), [], measured, 0.0)
        # correction (every output in model order, the usual case, needs no row selection)
        r = self._r
        if rows != self._all_rows:
            y_prior, C, r = y_prior[rows], C[rows], r[rows]
        nu = measured - y_prior
        cross = P @ C.T
        S = C @ cross
        S.flat[:: len(rows) + 1] += r
        return self.filter.corrected(z, P, rows, nu, S, cross)


def _functions(filter_model: FilterModel, compile_them: bool) -> tuple[ca.Function, ca.Function]:
    """``ekf_predict(z, u, d, dt, p) -> (F, dF/dz, h(F), dh/dz(F))`` and
    ``ekf_observe(z, u, d, p) -> (h, dh/dz)``, compiled to C if asked."""
    z, u, d, dt, p = filter_model.symbols()
    z_next = filter_model.transition(z, u, d, dt, p)
    y = filter_model.observation(z, u, d, p)
    C = ca.densify(ca.jacobian(y, z))
    # the outputs and their Jacobian at the predicted state, in the same call
    y_next, C_next = ca.substitute([y, C], [z], [z_next])
    options = {"cse": True}  # common subexpressions of F, dF/dz, h and dh/dz once
    predict = ca.Function("ekf_predict", [z, u, d, dt, p],
                          [z_next, ca.densify(ca.jacobian(z_next, z)), y_next, C_next], options)
    observe = ca.Function("ekf_observe", [z, u, d, p], [y, C], options)
    if compile_them:
        predict, observe = compiled(predict), compiled(observe)
    return predict, observe
