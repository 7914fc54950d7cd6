"""Unscented Kalman filter on a PlantModel's RK4 step (Julier & Uhlmann 1997; scaled
sigma points of van der Merwe 2004).

On the augmented state z = [x; theta] of size n (see :mod:`controllers.kalman`), the
2n + 1 sigma points of a mean m and covariance P are

    Z_0 = m,   Z_i = m + sqrt(n + lambda) L_i,   Z_{n+i} = m - sqrt(n + lambda) L_i
    (L L' = P, Cholesky; L_i its i-th column),   lambda = alpha^2 (n + kappa) - n

with weights W_m0 = lambda / (n + lambda), W_c0 = W_m0 + 1 - alpha^2 + beta,
W_mi = W_ci = 1 / (2 (n + lambda)); alpha = 1, beta = 2, kappa = 0 here, so every
point sits at sqrt(n) sigma and every covariance weight is positive. One step over
``dt`` seconds does

    prediction   Z- = F(Z, u, d, dt) for the sigma points of (z, P)
                 z- = sum W_m Z-,   P- = sum W_c (Z- - z-)(Z- - z-)' + Q dt
    correction   Y  = h(Z, u, d) for the sigma points of (z-, P-);  y- = sum W_m Y
                 S  = sum W_c (Y - y-)(Y - y-)' + R
                 Pzy = sum W_c (Z - z-)(Y - y-)'
                 K = Pzy S^-1,  z+ = z- + K nu,  P+ = P- - K S K',  NIS = nu' S^-1 nu

with nu = y - y- over the outputs measured. A ``dt`` longer than the model's step is
predicted in equal sub-steps no longer than it, with fresh sigma points each. The
sigma points go through F and h as one mapped CasADi call each (built once per model
structure in a process, the parameters an input: controllers.casadi_compile.shared).

Unlike the EKF, no Jacobian is taken: the mean and covariance are propagated to second
order, which matters where the model bends within the uncertainty (a parameter that
multiplies a state, a saturating output).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import casadi as ca
import numpy as np

from controllers.casadi_compile import shared
from controllers.kalman import BufferedFunction, FilterModel
from engine.config import EstimatorSettings
from engine.loop import EstimatorState
from engine.model import PlantModel

ALPHA, BETA, KAPPA = 1.0, 2.0, 0.0
"""Sigma-point spread and prior-distribution constants (see the module docstring)."""


class UnscentedKalmanFilter:
    """UKF over ``model``'s states (and estimated parameters); satisfies
    ``engine.loop.Estimator``. Signals as :class:`controllers.ekf.ExtendedKalmanFilter`."""

    kind = "ukf"

    def __init__(self, model: PlantModel, settings: EstimatorSettings) -> None:
        self.model = model
        self.settings = settings
        self.filter = FilterModel(model, settings, "UKF")
        self.parameter_names = self.filter.parameter_names
        n = self.filter.size
        points = 2 * n + 1
        spread = ALPHA**2 * (n + KAPPA) - n
        self._scale = math.sqrt(n + spread)
        self.mean_weights = np.full(points, 1 / (2 * (n + spread)))
        self.mean_weights[0] = spread / (n + spread)
        self.covariance_weights = self.mean_weights.copy()
        self.covariance_weights[0] += 1 - ALPHA**2 + BETA
        transition, observation = shared(self.filter.shared_key(points),
                                         lambda: _functions(self.filter, points))
        self._transition = BufferedFunction(transition)
        self._observation = BufferedFunction(observation)
        self._p = self.filter.parameters

    def initial_state(self, x0: np.ndarray) -> EstimatorState:
        return self.filter.initial_state(x0)

    def sigma_points(self, z: np.ndarray, P: np.ndarray) -> np.ndarray:
        """The 2n + 1 sigma points of (z, P) as columns. L is P's Cholesky factor, or
        V sqrt(w) from its eigen-decomposition where P is only semi-definite (a state
        known exactly)."""
        try:
            L = np.linalg.cholesky(P)
        except np.linalg.LinAlgError:
            w, V = np.linalg.eigh(P)
            if not np.all(np.isfinite(w)) or w.min() < -1e-9 * max(w.max(), 1.0):
                raise ValueError("UKF: state covariance is not positive semi-definite") from None
            L = V * np.sqrt(np.clip(w, 0.0, None))
        L = L * self._scale
        return np.concatenate((z[:, None], z[:, None] + L, z[:, None] - L), axis=1)

    def step(
        self, state: EstimatorState, u: np.ndarray, d: np.ndarray, y: Mapping[str, float],
        dt: float,
    ) -> EstimatorState:
        """Predict over ``dt`` seconds with ``u`` and ``d`` held, then correct with the
        outputs present in ``y``; ValueError on bad input, as the EKF."""
        rows, measured = self.filter.measured(y)
        steps = self.filter.prediction_steps(dt)
        z, P = state.x, state.P
        # prediction
        for _ in range(steps):
            (Z,) = self._transition(self.sigma_points(z, P).ravel(order="F"), u, d, dt / steps,
                                   self._p)
            z = Z @ self.mean_weights
            deviation = Z - z[:, None]
            P = (deviation * self.covariance_weights) @ deviation.T
            P = P + self.filter.process_noise_rate * (dt / steps)
            self.filter.require_finite(z, u, d)
        if not rows:
            return self.filter.state(z, P, [], measured, 0.0)
        # correction
        Z = self.sigma_points(z, P)
        (Y,) = self._observation(Z.ravel(order="F"), u, d, self._p)
        Y = Y[rows]
        y_prior = Y @ self.mean_weights
        weighted = (Y - y_prior[:, None]) * self.covariance_weights
        S = weighted @ (Y - y_prior[:, None]).T
        S.flat[:: len(rows) + 1] += self.filter.measurement_variance[rows]
        cross = (Z - z[:, None]) @ weighted.T
        return self.filter.corrected(z, P, rows, measured - y_prior, S, cross)


def _functions(filter_model: FilterModel, points: int) -> tuple[ca.Function, ca.Function]:
    """F and h over ``points`` sigma points: ``(Z, u, d, dt, p) -> Z+`` and
    ``(Z, u, d, p) -> Y``."""
    z, u, d, dt, p = filter_model.symbols()
    transition = ca.Function("ukf_transition", [z, u, d, dt, p],
                             [filter_model.transition(z, u, d, dt, p)])
    observation = ca.Function("ukf_observation", [z, u, d, p],
                              [filter_model.observation(z, u, d, p)])
    return _broadcast(transition, points), _broadcast(observation, points)


def _broadcast(function: ca.Function, points: int) -> ca.Function:
    """``function`` over ``points`` columns of its first argument, the others shared."""
    mapped = function.map(points)
    first = ca.SX.sym("Z", function.size1_in(0), points)
    shared = [ca.SX.sym(function.name_in(i), function.size_in(i))
              for i in range(1, function.n_in())]
    return ca.Function(f"{function.name()}_{points}", [first, *shared],
                       [mapped(first, *shared)])
