"""Linear Kalman filter on a PlantModel linearised at its nominal operating point.

At the nominal point (z0, u0, d0) (states, estimated parameters, inputs and
disturbances at their nominal values) the augmented model of
:mod:`controllers.kalman` is replaced by its first-order expansion,

    dz/dt = f0 + Ac (z - z0) + Bc (u - u0) + Ec (d - d0)
    y     = h0 + Cz (z - z0) + Du (u - u0) + Dd (d - d0)

with f0 = f(z0, u0, d0), h0 = h(z0, u0, d0) and the Jacobians from CasADi. Over a step
of ``dt`` seconds it is discretised exactly (zero-order hold):

    Phi = exp(Ac dt),  Gamma = int_0^dt exp(Ac s) ds      (one matrix exponential of
                                                          [[Ac, I], [0, 0]] dt)
    prediction   z- = z0 + Phi (z - z0) + Gamma (f0 + Bc (u - u0) + Ec (d - d0))
                 P- = Phi P Phi' + Q dt
    correction   as the EKF, with the constant C = Cz

For a linear plant this is the exact Kalman filter, and its gain converges to the
steady-state gain of the dual discrete algebraic Riccati equation. Phi and Gamma are
kept for the last ``dt`` seen (a fixed-period loop computes them once).

Simplifications: away from the nominal point a nonlinear plant's estimate is biased;
use the EKF or UKF there. The same holds for estimated parameters: the expansion sees
a parameter only through its effect at the nominal point, so only a parameter that
enters the model linearly (an offset, a bias) is estimated without bias.
"""

from __future__ import annotations

from collections.abc import Mapping

import casadi as ca
import numpy as np
import scipy.linalg

from controllers.casadi_compile import shared
from controllers.kalman import FilterModel
from engine.config import EstimatorSettings
from engine.loop import EstimatorState
from engine.model import PlantModel


class LinearKalmanFilter:
    """Kalman filter on ``model`` linearised at its nominal point; satisfies
    ``engine.loop.Estimator``. Signals as :class:`controllers.ekf.ExtendedKalmanFilter`."""

    kind = "kf"

    def __init__(self, model: PlantModel, settings: EstimatorSettings) -> None:
        self.model = model
        self.settings = settings
        self.filter = FilterModel(model, settings, "KF")
        self.parameter_names = self.filter.parameter_names
        expansion = shared(self.filter.shared_key(), lambda: _expansion(self.filter))
        self.z0 = self.filter.initial_state(model.states.nominal).x
        self.u0, self.d0 = model.inputs.nominal, model.disturbances.nominal
        f0, h0, Ac, Bc, Ec, Cz, Du, Dd = (np.array(m) for m in expansion(
            self.z0, self.u0, self.d0, self.filter.parameters))
        self.f0, self.h0 = f0.ravel(), h0.ravel()
        self.Ac, self.Bc, self.Ec = Ac, Bc, Ec
        self.C, self.Du, self.Dd = Cz, Du, Dd
        self._dt: float | None = None
        self._Phi = self._Gamma = np.eye(self.filter.size)

    def initial_state(self, x0: np.ndarray) -> EstimatorState:
        return self.filter.initial_state(x0)

    def discretised(self, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """(Phi, Gamma) over ``dt`` seconds, from one matrix exponential."""
        if dt != self._dt:
            n = self.filter.size
            block = np.zeros((2 * n, 2 * n))
            block[:n, :n], block[:n, n:] = self.Ac, np.eye(n)
            exponential = scipy.linalg.expm(block * dt)
            self._Phi, self._Gamma, self._dt = exponential[:n, :n], exponential[:n, n:], dt
        return self._Phi, self._Gamma

    def step(
        self, state: EstimatorState, u: np.ndarray, d: np.ndarray, y: Mapping[str, float],
        dt: float,
    ) -> EstimatorState:
        """Predict over ``dt`` seconds with ``u`` and ``d`` held, then correct with the
        outputs present in ``y``; ValueError on bad input, as the EKF."""
        rows, measured = self.filter.measured(y)
        self.filter.prediction_steps(dt)  # checks dt
        du, dd = np.asarray(u) - self.u0, np.asarray(d) - self.d0
        z, P = state.x, state.P
        if dt > 0:
            # prediction
            Phi, Gamma = self.discretised(dt)
            z = self.z0 + Phi @ (z - self.z0) + Gamma @ (self.f0 + self.Bc @ du + self.Ec @ dd)
            P = Phi @ P @ Phi.T + self.filter.process_noise_rate * dt
            self.filter.require_finite(z, u, d)
        if not rows:
            return self.filter.state(z, P.copy(), [], measured, 0.0)
        # correction
        y_prior = self.h0 + self.C @ (z - self.z0) + self.Du @ du + self.Dd @ dd
        nu = measured - y_prior[rows]
        C = self.C[rows]
        cross = P @ C.T
        S = C @ cross + np.diag(self.filter.measurement_variance[rows])
        return self.filter.corrected(z, P, rows, nu, S, cross)


def _expansion(filter_model: FilterModel) -> ca.Function:
    """``kf_expansion(z, u, d, p) -> (f, h, df/dz, df/du, df/dd, dh/dz, dh/du, dh/dd)``."""
    z, u, d, _, p = filter_model.symbols()
    f = filter_model.dynamics(z, u, d, p)
    h = filter_model.observation(z, u, d, p)
    return ca.Function("kf_expansion", [z, u, d, p], [
        f, h, *(ca.densify(ca.jacobian(e, v)) for e in (f, h) for v in (z, u, d))])
