"""The fast MPC's optimisation problem: multiple shooting over a PlantModel's RK4 step,
solved by Gauss-Newton SQP, one QP per iteration.

Decision variables, scaled by the signal spans s (so every variable is of order one):
inputs u_0 .. u_{N-1}, states x_1 .. x_N (x_0 = the estimate is a parameter) and
slacks e_1 .. e_N >= 0 of the soft output limits (in output spans). With h the
model's outputs, r the references, d the disturbance forecast and p the model's
parameters (a runtime parameter: the nominal ones, or the estimator's), the problem is

    min   sum_{k=0}^{N-1} [ sum_y w_y ((h_y(x_k, u_k, d_k) - r_y,k) / s_y)^2
                            + sum_u w_u,k ((u_k - r_u,k) / s_u)^2
                            + sum_u w_du ((u_k - u_{k-1}) / s_u)^2
                            + sum_v e_v pi_v,k v_k / s_v
                            + sum_c rho_c (e_c,k + e_c,k^2) ]
          + (x_N - x_T)' P (x_N - x_T)
    s.t.  x_{k+1} = F(x_k, u_k, d_k, p, dt)                         (shooting, hard)
          u_lower <= u_k <= u_upper                                  (hard)
          |u_k - u_{k-1}| <= max_rate dt                             (hard, rated inputs)
          lower_c - e_c s_c <= h_c(x_{k+1}, u_k, d_k) <= upper_c + e_c s_c   (soft)

where v is an input or output carrying an economic weight e_v and price profile pi_v,k,
r_u,k an input's target at step k (an approved plan's injection or pump speed; w_u,k = 0
at the steps without one), and P is an optional terminal weight (state units^-2).
Writing the cost as ||r(z)||^2 + q(z)' z (least-squares residuals r, linear part q),
one SQP iteration at z solves the QP

    min_dz  1/2 dz' (H + mu I) dz + g' dz      J = dr/dz,  g = dcost/dz
    s.t.    lbc - c(z) <= A dz <= ubc - c(z),    A = dc/dz
            lbz - z <= dz <= ubz - z

and steps z+ = z + alpha dz. H is, by ``ProblemData.hessian``:

- "gauss-newton" (the default): H = 2 J' J + eps I, positive definite by construction,
  exact for linear models, cheap; good for tracking with small residuals.
- "exact": H = the Hessian of the Lagrangian cost(z) + lam_a' c(z) at the last QP's
  multipliers, + eps I: the curvature of the model under the multipliers, which a
  strongly economic cost on a strongly nonlinear model needs (its optimum is set by
  that curvature; without it the QP jumps between bounds). It may be indefinite; a QP
  solver that then fails falls back to qpOASES (controllers.mpc_fast).

Either way the fixed points of the iteration are the KKT points of the problem above
(g and A are exact). eps = 1e-10 on the scaled variables only regularises; mu >= 0 is
a Levenberg-Marquardt damping the caller raises after rejected steps (a trust region
in all but name) and lowers again after accepted ones.

The step length alpha comes from a backtracking line search on the l1 merit function
(Nocedal & Wright 2006, section 18.3; the weights as in Leineweber 1999, M5.1, acados'
MERIT_BACKTRACKING):

    phi(z) = cost(z) + sum_i w_i v_i(z),   v_i = max(lbc_i - c_i(z), 0, c_i(z) - ubc_i)
    w_i    = max(|lam_i|, (w_i,old + |lam_i|) / 2)      (lam: the QP's constraint multipliers)
    D      = g' dz - sum_i w_i v_i(z)                   (phi's derivative along dz, <= 0)
    accept alpha when  phi(z + alpha dz) <= phi(z) + ARMIJO alpha D

The bounds on z hold at every alpha in [0, 1] (the QP keeps z + dz inside them), so only
the constraint rows c enter v. The iteration reports phi at z twice, with the weights
it was given (to judge the step that led to z) and with the updated ones (for the step
it proposes), and D: judging a full step needs no evaluation beyond the next iteration's.

Every runtime input (estimate, applied inputs, forecasts, references, tracking
weights, prices, model parameters) and every number of the controller's settings (input
bounds, rate limits, move suppression, soft limits and penalties, economic weights) is
a parameter of one CasADi Function, built once per model structure and problem shape
(:func:`shared_key`) and shared by every controller of that shape in a process
(controllers.casadi_compile.shared):
``step(z, lam_x, lam_a, w, mu, params) -> (z + dz, lam_x_next, lam_a_next, qp_residual,
w_next, phi_w(z), phi_w_next(z), D)``, the SQP iteration with the QP solver inside, so it
can be generated as C and compiled in one piece; and ``merit(z, w, params) -> phi_w(z)``
for the line search's trial points.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import casadi as ca
import numpy as np

from engine.model import PlantModel

REGULARISATION = 1e-10
"""eps of the Gauss-Newton Hessian, on the scaled variables."""

HESSIANS = ("gauss-newton", "exact")
"""The SQP's Hessians (ProblemData.hessian)."""

ARMIJO = 1e-4
"""Fraction of the merit function's predicted decrease a step must achieve (N & W's eta)."""

QP_OPTIONS: dict[str, dict[str, Any]] = {
    "qrqp": {"print_header": False, "print_iter": False, "print_info": False,
             "max_iter": 1000},
    "osqp": {"osqp": {"verbose": False, "eps_abs": 1e-7, "eps_rel": 1e-7, "polishing": True,
                      "max_iter": 20000}, "warm_start_primal": True, "warm_start_dual": True},
    "qpoases": {"printLevel": "none", "sparse": True},
}
"""The supported QP solvers and their options. OSQP (ADMM) runs to 1e-7 and polishes its
answer on the active set it found, which makes it exact. Whether a QP was solved is
judged by its KKT residual (``qp_residual``), not by the solver's own flag."""


@dataclass(frozen=True)
class ProblemShape:
    """Sizes of the problem and the layout of its vectors.

    z = [u_0 .. u_{N-1}, x_1 .. x_N, e_1 .. e_N] (three stage-major blocks); the
    constraints are stage-major, ``rows_per_stage`` each: shooting (n_x), rates
    (n_rated), the finite soft lower then upper limits (n_soft_rows).
    """

    horizon: int
    n_x: int
    n_u: int
    n_d: int
    n_y: int
    n_soft: int
    n_soft_rows: int
    n_rated: int
    n_economic: int

    @property
    def n_z(self) -> int:
        return self.horizon * (self.n_u + self.n_x + self.n_soft)

    @property
    def rows_per_stage(self) -> int:
        return self.n_x + self.n_rated + self.n_soft_rows

    def blocks(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(U, X, E) views of z, one row per stage."""
        N, a, b = self.horizon, self.horizon * self.n_u, self.horizon * (self.n_u + self.n_x)
        return (z[:a].reshape(N, self.n_u), z[a:b].reshape(N, self.n_x),
                z[b:].reshape(N, self.n_soft))

    def shift(self, z: np.ndarray, lam_x: np.ndarray, lam_a: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One stage on: every block drops its first stage and repeats its last."""
        z_order, row_order = self._shift_orders
        return z[z_order], lam_x[z_order], lam_a[row_order]

    @functools.cached_property
    def _shift_orders(self) -> tuple[np.ndarray, np.ndarray]:
        def shifted(start: int, width: int) -> np.ndarray:
            stages = np.minimum(np.arange(1, self.horizon + 1), self.horizon - 1)
            return start + (stages[:, None] * width + np.arange(width)).ravel()

        N = self.horizon
        z_order = np.concatenate([shifted(0, self.n_u), shifted(N * self.n_u, self.n_x),
                                  shifted(N * (self.n_u + self.n_x), self.n_soft)])
        return z_order, shifted(0, self.rows_per_stage)


@dataclass(frozen=True)
class ProblemData:
    """Everything fixed when the controller is built, in SI and model order.

    Attributes:
        input_lower, input_upper: hard input bounds, input units.
        input_scale, state_scale, output_scale: spans s.
        move_weight: w_du per input.
        max_rate: per input, largest |u_k - u_{k-1}| per second (inf: not rated).
        soft_outputs: indices of outputs with soft limits; soft_lower, soft_upper,
            soft_penalty: their limits (output units) and rho.
        economic_signals: indices into [u; y] (inputs first) of the economic signals;
            economic_weight: their e_v.
        terminal_weight: P (n_x x n_x, state units^-2) or None; terminal_state: x_T.
        hessian: "gauss-newton" (H = 2 J' J + eps I) or "exact" (the Hessian of the
            Lagrangian cost + lam_a' c at the last multipliers, + eps I).
    """

    input_lower: np.ndarray
    input_upper: np.ndarray
    input_scale: np.ndarray
    state_scale: np.ndarray
    output_scale: np.ndarray
    move_weight: np.ndarray
    max_rate: np.ndarray
    soft_outputs: Sequence[int]
    soft_lower: np.ndarray
    soft_upper: np.ndarray
    soft_penalty: np.ndarray
    economic_signals: Sequence[int]
    economic_weight: np.ndarray
    terminal_weight: np.ndarray | None
    terminal_state: np.ndarray
    hessian: str = "gauss-newton"


@dataclass(frozen=True)
class SqpFunctions:
    """The CasADi Functions of one problem (see the module docstring).

    Attributes:
        shape: sizes and layout.
        step: a maker of the SQP iteration with a named QP solver, ``step(z, lam_x,
            lam_a, w, mu, params) -> (z + dz, lam_x_next, lam_a_next, qp_residual, w_next,
            phi_w(z), phi_w_next(z), D)``.
        merit: ``merit(z, w, params) -> phi_w(z)``.
        outputs: ``outputs(X, U, D, p) -> Y`` (physical units, one column per stage, N + 1
            stages: now and the plan).
    """

    shape: ProblemShape
    step: Callable[[str], ca.Function]
    merit: ca.Function
    outputs: ca.Function


def shared_key(model: PlantModel, horizon: int, data: ProblemData) -> tuple[object, ...]:
    """What :func:`build_step`'s Functions depend on: the model's structure, the horizon,
    which inputs are rated, which outputs have soft limits on which sides, the economic
    signals, the terminal cost and the Hessian. Bounds, rates, weights, limit values and
    penalties are run-time parameters (:func:`settings_vector`)."""
    soft_lower, soft_upper = np.isfinite(data.soft_lower), np.isfinite(data.soft_upper)
    terminal = (None if data.terminal_weight is None else
                (data.terminal_weight.tobytes(), np.asarray(data.terminal_state, float).tobytes()))
    return ("fast-mpc", model.structure, horizon, tuple(np.isfinite(data.max_rate)),
            tuple(data.soft_outputs), tuple(soft_lower), tuple(soft_upper),
            tuple(data.economic_signals), terminal, data.hessian)


def settings_vector(model: PlantModel, data: ProblemData) -> np.ndarray:
    """The run-time settings at the end of ``params``: scaled input bounds (lower, then
    upper), the rated inputs' largest scaled move per step, sqrt(w_du), the finite
    scaled soft lower then upper limits, rho and the economic weights."""
    rated = np.isfinite(data.max_rate)
    soft = list(data.soft_outputs)
    soft_lower = np.asarray(data.soft_lower, float) / data.output_scale[soft]
    soft_upper = np.asarray(data.soft_upper, float) / data.output_scale[soft]
    return np.concatenate([
        data.input_lower / data.input_scale, data.input_upper / data.input_scale,
        data.max_rate[rated] * model.dt / data.input_scale[rated],
        np.sqrt(data.move_weight),
        soft_lower[np.isfinite(soft_lower)], soft_upper[np.isfinite(soft_upper)],
        np.asarray(data.soft_penalty, float), np.asarray(data.economic_weight, float)])


def build_step(model: PlantModel, horizon: int, data: ProblemData) -> SqpFunctions:
    """The SQP iteration, the merit function and the output map for ``model``; they
    depend on ``data`` only through :func:`shared_key`, so every controller with an
    equal key may share them.

    ``params`` = [x_0, u_-1 (move suppression), u_-1 (rate limits), D, R, sqrt(w_y / s_y^2),
    R_u, sqrt(w_u,k / s_u^2), Pi, p, settings] with D, R, the input targets R_u, their
    weights and Pi stage-major (n_d, n_y, n_u, n_u and n_economic values per stage), p
    the model's parameter vector and settings :func:`settings_vector`."""
    N = horizon
    rated = [j for j, rate in enumerate(data.max_rate) if np.isfinite(rate)]
    soft = list(data.soft_outputs)
    has_lower = [i for i, v in enumerate(data.soft_lower) if np.isfinite(v)]
    has_upper = [i for i, v in enumerate(data.soft_upper) if np.isfinite(v)]
    shape = ProblemShape(N, len(model.states), len(model.inputs), len(model.disturbances),
                         len(model.outputs), len(soft), len(has_lower) + len(has_upper),
                         len(rated), len(data.economic_signals))
    su, sx = (ca.DM(s) for s in (data.input_scale, data.state_scale))
    p = ca.SX.sym("p", len(model.parameters))

    zu = ca.SX.sym("u", shape.n_u, N)
    zx = ca.SX.sym("x", shape.n_x, N)
    ze = ca.SX.sym("e", shape.n_soft, N)
    z = ca.vertcat(ca.vec(zu), ca.vec(zx), ca.vec(ze))
    x0 = ca.SX.sym("x0", shape.n_x)
    u_move = ca.SX.sym("u_move", shape.n_u)
    u_rate = ca.SX.sym("u_rate", shape.n_u)
    D = ca.SX.sym("D", shape.n_d, N)
    R = ca.SX.sym("R", shape.n_y, N)
    w_y = ca.SX.sym("w_y", shape.n_y)
    R_u = ca.SX.sym("R_u", shape.n_u, N)
    w_u = ca.SX.sym("w_u", shape.n_u, N)
    Pi = ca.SX.sym("Pi", shape.n_economic, N)
    # the settings (settings_vector)
    input_lower = ca.SX.sym("input_lower", shape.n_u)
    input_upper = ca.SX.sym("input_upper", shape.n_u)
    rate_step = ca.SX.sym("rate_step", len(rated))
    move_root = ca.SX.sym("move_root", shape.n_u)
    soft_lower = ca.SX.sym("soft_lower", len(has_lower))
    soft_upper = ca.SX.sym("soft_upper", len(has_upper))
    soft_penalty = ca.SX.sym("soft_penalty", shape.n_soft)
    economic_weight = ca.SX.sym("economic_weight", shape.n_economic)
    params = ca.vertcat(x0, u_move, u_rate, ca.vec(D), ca.vec(R), w_y, ca.vec(R_u), ca.vec(w_u),
                        ca.vec(Pi), p,
                        input_lower, input_upper, rate_step, move_root, soft_lower,
                        soft_upper, soft_penalty, economic_weight)

    soft_scale = ca.DM(data.output_scale[soft]) if soft else ca.DM.zeros(0, 1)
    economic_scale = ca.DM(np.concatenate([data.input_scale, data.output_scale])
                           [list(data.economic_signals)])
    no_bound = ca.SX.zeros(0, 1)
    residuals, linear, rows, lower, upper = [], ca.SX(0), [], [], []
    x_k, u_before_move, u_before_rate = x0, u_move, u_rate
    for k in range(N):
        u_k = su * zu[:, k]
        x_next = sx * zx[:, k]
        y_k = model.h(x_k, u_k, D[:, k], p)
        residuals += [w_y * (y_k - R[:, k]), w_u[:, k] * (u_k - R_u[:, k]),
                      move_root * (u_k - u_before_move) / su]
        if shape.n_economic:
            values = ca.vertcat(u_k, y_k)[list(data.economic_signals)] / economic_scale
            linear += ca.dot(economic_weight * Pi[:, k], values)
        # shooting, rates and soft limits of stage k
        rows.append((x_next - model.F(x_k, u_k, D[:, k], p, model.dt)) / sx)
        lower.append(ca.SX.zeros(shape.n_x))
        upper.append(ca.SX.zeros(shape.n_x))
        if rated:
            rows.append(((u_k - u_before_rate) / su)[rated])
            lower.append(-rate_step)
            upper.append(rate_step)
        if soft:
            y_next = model.h(x_next, u_k, D[:, k], p)[soft] / soft_scale
            # only the finite sides: y / s + e >= lower / s,  y / s - e <= upper / s
            if has_lower:
                rows.append((y_next + ze[:, k])[has_lower])
                lower.append(soft_lower)
                upper.append(ca.SX(ca.DM.inf(len(has_lower))))
            if has_upper:
                rows.append((y_next - ze[:, k])[has_upper])
                lower.append(ca.SX(-ca.DM.inf(len(has_upper))))
                upper.append(soft_upper)
            residuals.append(ca.sqrt(soft_penalty) * ze[:, k])
            linear += ca.dot(soft_penalty, ze[:, k])
        x_k, u_before_move, u_before_rate = x_next, u_k, u_k
    if data.terminal_weight is not None:
        # P = V diag(l) V'  =>  (x - x_T)' P (x - x_T) = ||diag(sqrt l) V' (x - x_T)||^2
        eigenvalues, vectors = np.linalg.eigh(data.terminal_weight)
        root = np.sqrt(np.clip(eigenvalues, 0.0, None))[:, None] * vectors.T
        residuals.append(ca.DM(root) @ (x_k - ca.DM(data.terminal_state)))

    residual = ca.vertcat(*residuals)
    cost = ca.sumsqr(residual) + linear
    jacobian = ca.jacobian(residual, z)
    hessian = 2 * ca.mtimes(jacobian.T, jacobian) + REGULARISATION * ca.SX.eye(shape.n_z)
    gradient = ca.gradient(cost, z)
    constraints = ca.vertcat(*rows)
    constraint_jacobian = ca.jacobian(constraints, z)
    c_lower, c_upper = ca.vertcat(no_bound, *lower), ca.vertcat(no_bound, *upper)
    # v_i = max(lbc_i - c_i, 0, c_i - ubc_i); only the finite sides (inf - c is inf)
    has_lower_row = [not (part.is_constant() and np.isinf(float(ca.evalf(part)))) for part in
                     ca.vertsplit(c_lower)]
    has_upper_row = [not (part.is_constant() and np.isinf(float(ca.evalf(part)))) for part in
                     ca.vertsplit(c_upper)]
    finite_lower = ca.vertcat(no_bound, *(part if keep else ca.SX(0.0) for part, keep in
                                          zip(ca.vertsplit(c_lower), has_lower_row, strict=True)))
    finite_upper = ca.vertcat(no_bound, *(part if keep else ca.SX(0.0) for part, keep in
                                          zip(ca.vertsplit(c_upper), has_upper_row, strict=True)))
    violation = (ca.fmax(finite_lower - constraints, 0) * ca.DM(has_lower_row)
                 + ca.fmax(constraints - finite_upper, 0) * ca.DM(has_upper_row))
    multipliers = ca.SX.sym("lam_a", constraints.numel())
    if data.hessian == "exact":
        hessian = (ca.hessian(cost + ca.dot(multipliers, constraints), z)[0]
                   + REGULARISATION * ca.SX.eye(shape.n_z))
    z_lower = ca.vertcat(ca.repmat(input_lower, N, 1), ca.SX(-ca.DM.inf(N * shape.n_x)),
                         ca.SX.zeros(N * shape.n_soft))
    z_upper = ca.vertcat(ca.repmat(input_upper, N, 1),
                         ca.SX(ca.DM.inf(N * (shape.n_x + shape.n_soft))))
    qp_data = ca.Function("mpc_qp_data", [z, multipliers, params],
                          [hessian, gradient, constraint_jacobian, constraints, cost, violation,
                           c_lower, c_upper, z_lower, z_upper])
    weights = ca.SX.sym("w", constraints.numel())
    merit = ca.Function("mpc_merit", [z, weights, params],
                        [cost + ca.dot(weights, violation)], ["z", "w", "params"], ["merit"])

    @functools.cache
    def sqp_step(solver: str) -> ca.Function:
        if solver not in QP_OPTIONS:
            raise ValueError(f"ControllerSettings.qp_solver {solver!r} is not supported; "
                             f"known: {', '.join(QP_OPTIONS)}")
        qp = ca.conic(f"mpc_qp_{solver}", solver,
                      {"h": qp_data.sparsity_out(0), "a": qp_data.sparsity_out(2)},
                      {**QP_OPTIONS[solver], "error_on_fail": False})
        Z = ca.MX.sym("z", shape.n_z)
        LX = ca.MX.sym("lam_x", shape.n_z)
        LA = ca.MX.sym("lam_a", constraints.numel())
        W = ca.MX.sym("w", constraints.numel())
        MU = ca.MX.sym("mu")
        P = ca.MX.sym("params", params.numel())
        H, g, A, c, f, v, c_low, c_up, z_low, z_up = qp_data(Z, LA, P)
        H = H + MU * ca.DM.eye(shape.n_z)
        lba, uba = c_low - c, c_up - c
        lbx, ubx = z_low - Z, z_up - Z
        solution = qp(h=H, g=g, a=A, lba=lba, uba=uba, lbx=lbx, ubx=ubx,
                      x0=ca.DM.zeros(shape.n_z), lam_x0=LX, lam_a0=LA)
        dz, lam_x, lam_a = solution["x"], solution["lam_x"], solution["lam_a"]
        # the QP's own KKT residual, whatever the solver says about itself
        Adz = ca.mtimes(A, dz)
        primal = ca.mmax(ca.vertcat(ca.fmax(lba - Adz, 0), ca.fmax(Adz - uba, 0),
                                    ca.fmax(lbx - dz, 0), ca.fmax(dz - ubx, 0), 0))
        stationarity = ca.mtimes(H, dz) + g + ca.mtimes(A.T, lam_a) + lam_x
        dual = ca.norm_inf(stationarity) / ca.fmax(1, ca.norm_inf(g))
        # merit weights and the merit function's value and slope (module docstring)
        W_next = ca.fmax(ca.fabs(lam_a), 0.5 * (W + ca.fabs(lam_a)))
        penalty_next = ca.dot(W_next, v)
        return ca.Function(f"mpc_sqp_step_{solver}", [Z, LX, LA, W, MU, P],
                           [Z + dz, lam_x, lam_a, ca.fmax(primal, dual), W_next,
                            f + ca.dot(W, v), f + penalty_next, ca.dot(g, dz) - penalty_next],
                           ["z", "lam_x", "lam_a", "w", "mu", "params"],
                           ["z_next", "lam_x_next", "lam_a_next", "qp_residual", "w_next",
                            "merit", "merit_next_weights", "merit_slope"])

    # outputs now, y = h(x_0, u_-1, d_0), and over the plan, h(x_{k+1}, u_k, d_k)
    xs = ca.SX.sym("X", shape.n_x, N + 1)
    us = ca.SX.sym("U", shape.n_u, N + 1)
    ds = ca.SX.sym("D", shape.n_d, N + 1)
    outputs = ca.Function("mpc_outputs", [xs, us, ds, p],
                          [ca.horzcat(*[model.h(xs[:, k], us[:, k], ds[:, k], p)
                                        for k in range(N + 1)])])
    return SqpFunctions(shape, sqp_step, merit, outputs)
