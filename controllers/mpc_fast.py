"""Fast nonlinear MPC on CasADi: multiple shooting, Gauss-Newton SQP over a QP solver.

The same problem as the do-mpc backend (controllers.mpc_dompc) on the same PlantModel
RK4 step, with what the do-mpc backend does not have: hard input rate limits, soft
output limits and an economic cost with price forecasts over the horizon (both take
reference and disturbance forecasts). The problem and the SQP iteration are in
controllers.mpc_sqp; this module runs it once per control step:

1. initial guess: the previous solution shifted by one step (warm start), or, without
   one, the inputs held and the states simulated forward from the estimate;
2. SQP iterations from the guess until the QP step moves no scaled variable more than
   ``tolerance`` (at most ``max_iterations``), each step shortened by a backtracking line
   search on the l1 merit function when the full step does not decrease it enough
   (controllers.mpc_sqp); or, with ``real_time_iteration`` and a warm start, one full
   step (the real-time iteration of Diehl et al.: the remaining error is left to the
   following steps; a cold start still iterates to convergence);
3. the first input move is proposed with the predicted outputs
   h(x_{k+1}, u_k, d_k), k = 0 .. N-1, and a reason with numbers and units.

If the QP solver gives up, the QP is retried from zero multipliers (an active-set
solver can fail on a degenerate warm start), then the whole SQP with qpOASES (slower,
robust on degenerate active sets such as chains of active rate limits). A QP failure
of both, a non-finite iterate or non-finite input is never proposed: the last good
plan is proposed one step on instead (or the applied inputs, clipped to the
bounds, if there is none), the status starts with "failed:" and the reason says so; the
next step starts from a fresh guess. Every proposed input is inside its bounds.

Forecasts over the horizon (``step`` keyword arguments): reference values may be
sequences (one per step, the last held), ``disturbances`` per name and ``prices`` (the
economic price profiles pi, e.g. an electricity tariff) per economic signal name. A
reference may name an input: a target r_u,k for it (an approved plan's injection or pump
speed), tracked with the weight ``input_tracking`` w_u at the steps it has a value and
not at those where it is NaN (after the plan's last hour). A target is a term of the
cost, never a bound: the input bounds, rate limits and soft limits hold as without it,
and the safety gate checks the proposal as any other. The
model's parameters ``p`` (the estimator's estimates, ControlLoop.parameters) are a
runtime input too: the prediction follows what the filter learnt without a rebuild.

The Hessian is by default the Gauss-Newton one (controllers.mpc_sqp): exact for
tracking of a linear model, good for tracking with small residuals. It leaves out the
curvature of the model under the multipliers, so on a strongly economic problem on a
strongly nonlinear model full steps overshoot and cycle (the asphalt tank with a hot-oil
price did, for ever); ``hessian = "exact"`` supplies that curvature, and the line search
makes every iterate decrease the merit function.
A full step is judged by the merit value the next iteration computes anyway, so an
accepted one costs no extra evaluation; a rejected one costs that iteration's QP and one
merit evaluation per halving. If the budget runs out, the step proposes the last
iterate (feasible for the inputs, so within bounds and rate limits) with status
"iterations exceeded".

Rate limits come from the setpoint limits' ``max_rate``. If the applied input lies
outside the bounds, the first move's rate limit is counted from the nearest bound, so
the problem stays feasible (the safety policy still limits the written rate).

Signals: in the estimate x [state units], applied inputs u [input units],
disturbances d [disturbance units], references {output name: value or sequence};
out a Proposal with the first move {input name: value}.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from controllers.casadi_compile import (
    BufferedCall,
    CompileError,
    compile_setup,
    compiled,
    shared,
)
from controllers.mpc_common import (
    DEFAULT_MOVE_SUPPRESSION,
    DEFAULT_TRACKING,
    held_plan,
    horizon_profile,
    input_bounds,
    parameter_vector,
    plan_proposal,
    plan_reason,
    require_known,
    shifted,
    spans,
)
from controllers.mpc_sqp import (
    ARMIJO,
    ProblemData,
    build_step,
    settings_vector,
    shared_key,
)
from engine.config import ControllerSettings, SetpointLimit
from engine.messages import Proposal
from engine.model import PlantModel

log = logging.getLogger(__name__)

_BOUND_TOLERANCE = 1e-6
"""A QP answer may overstep an input bound by this fraction of the span (then clipped);
more is a failure."""

QP_RESIDUAL_TOLERANCE = 1e-6
"""Largest KKT residual of a QP counted as solved (scaled variables)."""

FALLBACK_QP_SOLVER = "qpoases"
"""Solves a QP the chosen solver failed on: slower, but robust on degenerate active sets."""

BACKTRACKING = 0.5
"""Factor on the step length per line-search trial."""

SHORTEST_STEP = 1.0 / 64.0
"""The line search's last trial step length; taken if no longer one is accepted."""

DAMPING_FACTOR = 10.0
"""The damping mu (controllers.mpc_sqp, scaled variables) is multiplied by this after a
rejected full step and divided by it after an accepted one."""

DAMPING_FLOOR = 1e-4
"""The damping after a first rejected step; below it an accepted step sets it to 0."""

Forecast = float | Sequence[float] | np.ndarray


class FastMpcController:
    """Fast MPC for ``model``; satisfies ``engine.loop.Controller``. See the module
    docstring.

    Args:
        model: the plant model (its RK4 step F and outputs h; parameters per step).
        settings: horizon, weights, economic weights, soft output limits, QP solver,
            real-time iteration, iterations, tolerance, code generation; checked by
            ``controllers.backends.check_settings``, which ``build_controller`` runs.
        limits: setpoint limits per input (bounds and max_rate).
        terminal_weight: optional P (n_x x n_x, symmetric positive semidefinite, state
            units^-2) of a terminal cost (x_N - x_T)' P (x_N - x_T), e.g. the DARE
            solution of the linearised plant; ``terminal_state`` x_T defaults to the
            states' nominal values.

    Attributes:
        compiled: whether the SQP step runs as compiled C code.
        compile_note: why it does not, when ``settings.codegen`` asked for it.

    Not thread-safe: one instance per asset loop; its Functions are shared with every
    controller of the same problem shape in the process (controllers.mpc_sqp.shared_key),
    and its state (bounds, rates and weights as parameters, warm start, plan) is its own.
    CasADi Functions pickle, but build it inside the actor that uses it like the other
    backends.
    """

    backend = "fast"
    input_targets = True
    """It tracks input targets (a reference naming an input): see the module docstring."""

    def __init__(
        self, model: PlantModel, settings: ControllerSettings,
        limits: Mapping[str, SetpointLimit], *, terminal_weight: np.ndarray | None = None,
        terminal_state: np.ndarray | None = None,
    ) -> None:
        self.model = model
        self.horizon = N = settings.horizon
        self.real_time_iteration = settings.real_time_iteration
        self.max_iterations = settings.max_iterations
        self.tolerance = settings.tolerance
        self.qp_solver = settings.qp_solver
        self.lower, self.upper = input_bounds(model.inputs, limits)
        """Hard input bounds, input units."""
        self.max_rate = np.array([limits[n].max_rate if n in limits else math.inf
                                  for n in model.inputs.names])
        """Hard rate limits, input units per second (inf: none)."""
        self._input_scale = spans(model.inputs)
        self._output_scale = spans(model.outputs)
        self._state_scale = spans(model.states)
        self._tracking = np.array([settings.tracking.get(n, DEFAULT_TRACKING)
                                   for n in model.outputs.names])
        self._input_tracking = np.array([settings.input_tracking.get(n, DEFAULT_TRACKING)
                                         for n in model.inputs.names])
        move = np.array([settings.move_suppression.get(n, DEFAULT_MOVE_SUPPRESSION)
                         for n in model.inputs.names])
        names = [*model.inputs.names, *model.outputs.names]
        self._economic_names = list(settings.economic)
        soft = list(settings.output_limits)
        data = ProblemData(
            input_lower=self.lower, input_upper=self.upper, input_scale=self._input_scale,
            state_scale=self._state_scale, output_scale=self._output_scale,
            move_weight=move, max_rate=self.max_rate,
            soft_outputs=[model.outputs.index(n) for n in soft],
            soft_lower=np.array([settings.output_limits[n].lower for n in soft]),
            soft_upper=np.array([settings.output_limits[n].upper for n in soft]),
            soft_penalty=np.array([settings.output_limits[n].penalty for n in soft]),
            economic_signals=[names.index(n) for n in self._economic_names],
            economic_weight=np.array([settings.economic[n] for n in self._economic_names]),
            terminal_weight=_terminal_weight(model, terminal_weight),
            terminal_state=(model.states.nominal if terminal_state is None
                            else np.asarray(terminal_state, float).ravel()),
            hessian=settings.hessian,
        )
        compiler = compile_setup() if settings.codegen else None
        problem = shared((*shared_key(model, N, data), settings.qp_solver, compiler),
                         lambda: _SharedProblem(model, N, data, settings))
        self._settings = settings_vector(model, data)
        self.shape, self._make_step = problem.shape, problem.make_step
        self.compiled, self.compile_note = problem.compiled, problem.compile_note
        step = problem.step
        self._step = BufferedCall(step)
        self._fallback_step: BufferedCall | None = None  # built when first needed
        self.qp_fallbacks = 0
        """Steps the fallback solver (qpOASES) solved after the chosen one failed."""
        self._merit = BufferedCall(problem.merit)
        self._outputs = BufferedCall(problem.outputs)
        self._n_constraints = step.size1_in(2)
        self._reference: dict[str, float] = {}
        self._guess: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._plan_inputs: np.ndarray | None = None
        self._plan_outputs: np.ndarray | None = None
        self._outputs_now = np.zeros(len(model.outputs))
        self.iterations = 0
        """SQP iterations (QPs) of the last step."""
        self.backtracks = 0
        """Line-search trials (halvings of a step) in the last step."""

    def checkpoint(self) -> dict[str, Any]:
        """Plain-data warm-start state: the last good plan (held if the first solve after
        a restore fails) and the shifted primal-dual guess the next SQP starts from."""
        if self._plan_inputs is None or self._plan_outputs is None:
            return {}
        data = {"plan_inputs": self._plan_inputs.tolist(),
                "plan_outputs": self._plan_outputs.tolist()}
        if self._guess is not None:
            data["guess"] = [part.tolist() for part in self._guess]
        return data

    def restore(self, data: Mapping[str, Any]) -> None:
        if data:
            self._plan_inputs = np.asarray(data["plan_inputs"], float)
            self._plan_outputs = np.asarray(data["plan_outputs"], float)
            if "guess" in data:
                z, lam_x, lam_a = (np.asarray(part, float) for part in data["guess"])
                self._guess = (z, lam_x, lam_a)

    # -- the Controller protocol -----------------------------------------------------------

    def step(
        self, t: float, x: np.ndarray, u: np.ndarray, d: np.ndarray,
        reference: Mapping[str, Forecast], *,
        disturbances: Mapping[str, Forecast] | None = None,
        prices: Mapping[str, Forecast] | None = None,
        p: np.ndarray | None = None,
    ) -> Proposal:
        """Solve from state ``x`` with ``u`` applied now and propose the first move.

        ``reference`` values (of outputs, or targets of inputs: NaN where an input has
        none), ``disturbances`` (overriding ``d``) and ``prices`` (of the economic
        signals, default 1) may be sequences over the horizon, the last value held;
        ``p`` is the model's parameter vector (None: nominal). On failure propose
        the last good plan shifted by one step."""
        start = time.perf_counter()
        x = np.asarray(x, dtype=float).ravel()
        u = np.asarray(u, dtype=float).ravel()
        d = np.asarray(d, dtype=float).ravel()
        R, weights, R_u, input_weights = self._references(reference)
        D = self._disturbance_forecast(d, disturbances or {})
        Pi = self._price_forecast(prices or {})
        p = parameter_vector(self.model, p)
        bad = _non_finite(self.model, x, u, D)
        if bad:
            return self._held(t, u, f"non-finite {bad}", time.perf_counter() - start)
        params = np.concatenate([x, u, np.clip(u, self.lower, self.upper), D.ravel(),
                                 R.ravel(), weights, R_u.ravel(), input_weights.ravel(),
                                 Pi.ravel(), p, self._settings])
        status = self._solve(x, u, D, p, params)
        solve_time = time.perf_counter() - start
        if status.startswith("failed"):
            return self._held(t, u, status.removeprefix("failed: "), solve_time)
        return self._proposal(t, u, status, solve_time)

    # -- solving -------------------------------------------------------------------------------

    def _solve(self, x: np.ndarray, u: np.ndarray, D: np.ndarray, p: np.ndarray,
               params: np.ndarray) -> str:
        """SQP iterations from the warm start; the plan and next guess on success. If
        the QP solver gives up, the SQP starts over from a cold guess with qpOASES."""
        warm = self._guess is not None
        guess = self._guess or self._cold_guess(x, u, D, p)
        iterations = 1 if warm and self.real_time_iteration else self.max_iterations
        try:
            status, (z, lam_x, lam_a) = self._iterations(self._step, guess, params, iterations)
        except RuntimeError as error:
            log.debug("fast MPC for %r: %s failed: %s", self.model.kind, self.qp_solver, error)
            if self.qp_solver == FALLBACK_QP_SOLVER:
                self._guess = None
                return f"failed: QP solver {self.qp_solver} gave up"
            if self._fallback_step is None:
                self._fallback_step = BufferedCall(self._make_step(FALLBACK_QP_SOLVER))
            try:
                status, (z, lam_x, lam_a) = self._iterations(
                    self._fallback_step, self._cold_guess(x, u, D, p), params,
                    self.max_iterations)
                self.qp_fallbacks += 1
            except RuntimeError:
                self._guess = None
                return f"failed: QP solvers {self.qp_solver} and {FALLBACK_QP_SOLVER} gave up"
        except FloatingPointError as error:
            self._guess = None
            return f"failed: {error}"
        if iterations == 1 and status == "iterations exceeded":
            status = "real-time iteration"
        U, X, _ = self.shape.blocks(z)
        U = U * self._input_scale
        X = X * self._state_scale
        overstep = np.maximum(self.lower - U, U - self.upper) / self._input_scale
        if overstep.max(initial=-np.inf) > _BOUND_TOLERANCE:
            self._guess = None
            return "failed: QP solution outside the input bounds"
        # CasADi's column-major (n, N + 1) matrices are our row-major (N + 1, n) ones:
        # now, then the plan
        (outputs,) = self._outputs(np.vstack([x, X]).ravel(), np.vstack([u, U]).ravel(),
                                   np.vstack([D[:1], D]).ravel(), p)
        outputs = outputs.reshape(self.horizon + 1, -1)
        if not np.isfinite(outputs).all():
            self._guess = None
            return "failed: non-finite predicted outputs"
        self._plan_inputs = np.clip(U, self.lower, self.upper)
        self._plan_outputs = outputs[1:].copy()
        self._outputs_now = outputs[0].copy()
        self._guess = self.shape.shift(z, lam_x, lam_a)
        return status

    def _iterations(self, step: BufferedCall, guess: tuple[np.ndarray, ...], params: np.ndarray,
                    iterations: int) -> tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """SQP iterations with ``step`` from ``guess`` until the QP step moves no scaled
        variable more than the tolerance, or ``iterations`` QPs.

        Line search (controllers.mpc_sqp): the full step from z to z + dz is judged at
        the next iteration, by the merit value that iteration returns at z + dz; if it
        falls short of phi(z) + ARMIJO D, that iteration's QP is dropped and the step
        length halved (one merit evaluation each) until accepted or SHORTEST_STEP
        reached, and the damping mu raised (DAMPING_FACTOR, from DAMPING_FLOOR); an
        accepted full step lowers it again. The last step, and the single step of a
        real-time iteration, is taken whole.

        Each QP is warm-started from the last multipliers, and retried once from zero
        multipliers if it fails (an active-set solver can fail on a degenerate warm
        start, e.g. a chain of active rate limits). A QP counts as solved when its KKT
        residual (primal infeasibility, and stationarity relative to the gradient, in
        scaled units) is at most QP_RESIDUAL_TOLERANCE. Raises RuntimeError if the QP
        is not solved, FloatingPointError on non-finite iterates."""
        z, lam_x, lam_a = guess
        weights = np.zeros(self._n_constraints)
        judged = None  # (z, dz, phi(z), D) of the full step to the current z, if not judged
        self.iterations = self.backtracks = 0
        mu = 0.0
        while self.iterations < iterations:
            self.iterations += 1
            z_next, lam_x_next, lam_a_next, residual, weights_next, merit, merit_next, slope = \
                step(z, lam_x, lam_a, weights, mu, params)
            if not residual[0] <= QP_RESIDUAL_TOLERANCE:
                z_next, lam_x_next, lam_a_next, residual, weights_next, merit, merit_next, \
                    slope = step(z, 0.0, 0.0, weights, mu, params)
                if not residual[0] <= QP_RESIDUAL_TOLERANCE:
                    raise RuntimeError(f"QP KKT residual {residual[0]:.1e}")
            if judged is not None:
                start, dz, merit_start, slope_start = judged
                judged = None
                if not merit[0] <= merit_start + ARMIJO * slope_start:
                    z = self._backtrack(start, dz, merit_start, slope_start, weights, params)
                    mu = max(DAMPING_FACTOR * mu, DAMPING_FLOOR)
                    continue  # the next QP from the shorter step's end
                mu = mu / DAMPING_FACTOR if mu > DAMPING_FLOOR else 0.0  # accepted
            dz = z_next - z
            moved = float(np.max(np.abs(dz), initial=0.0))
            if not np.isfinite(moved):
                raise FloatingPointError("non-finite iterate")
            judged = z, dz, merit_next[0], min(slope[0], 0.0)
            z, lam_x, lam_a = z_next.copy(), lam_x_next.copy(), lam_a_next.copy()
            weights = weights_next.copy()
            if moved <= self.tolerance:
                return "converged", (z, lam_x, lam_a)
        return "iterations exceeded", (z, lam_x, lam_a)

    def _backtrack(self, z: np.ndarray, dz: np.ndarray, merit: float, slope: float,
                   weights: np.ndarray, params: np.ndarray) -> np.ndarray:
        """z + alpha dz for the longest alpha in 1/2, 1/4 .. SHORTEST_STEP with
        phi(z + alpha dz) <= phi(z) + ARMIJO alpha D (the shortest if none)."""
        alpha = 1.0
        while alpha > SHORTEST_STEP:
            alpha *= BACKTRACKING
            self.backtracks += 1
            trial = z + alpha * dz
            (value,) = self._merit(trial, weights, params)
            if value[0] <= merit + ARMIJO * alpha * slope:
                break
        return trial

    def _cold_guess(self, x: np.ndarray, u: np.ndarray, D: np.ndarray, p: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The last good plan shifted (or ``u`` clipped to the bounds, held) with the
        states it gives from ``x``; no slack; zero multipliers."""
        if self._plan_inputs is not None:
            U = shifted(self._plan_inputs)
        else:
            U = np.tile(np.clip(u, self.lower, self.upper), (self.horizon, 1))
        X, x_k = np.empty((self.horizon, len(x))), x
        for k in range(self.horizon):
            x_k = self.model.step(x_k, U[k], D[k], p)
            X[k] = x_k if np.isfinite(x_k).all() else x
        z = np.concatenate([(U / self._input_scale).ravel(), (X / self._state_scale).ravel(),
                            np.zeros(self.horizon * self.shape.n_soft)])
        return z, np.zeros_like(z), np.zeros(self._n_constraints)

    # -- forecasts -------------------------------------------------------------------------------

    def _references(self, reference: Mapping[str, Forecast]
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """R (N x n_y) and sqrt(w_y) / s_y (0 for outputs without a reference); the input
        targets R_u (N x n_u) and sqrt(w_u) / s_u per step (0 where an input has none)."""
        inputs, outputs = self.model.inputs, self.model.outputs
        require_known("reference", {n: v for n, v in reference.items() if n not in inputs},
                      outputs)
        R = np.tile(outputs.nominal, (self.horizon, 1))
        weights = np.zeros(len(outputs))
        R_u = np.tile(inputs.nominal, (self.horizon, 1))
        input_weights = np.zeros((self.horizon, len(inputs)))
        for name, values in reference.items():
            if name in inputs:
                j = inputs.index(name)
                target = horizon_profile(f"reference[{name!r}]", values, self.horizon,
                                         gaps=True)
                covered = np.isfinite(target)
                R_u[covered, j] = target[covered]
                input_weights[covered, j] = (math.sqrt(self._input_tracking[j])
                                             / self._input_scale[j])
                continue
            i = outputs.index(name)
            R[:, i] = self._profile(f"reference[{name!r}]", values)
            weights[i] = math.sqrt(self._tracking[i]) / self._output_scale[i]
        self._reference = {name: float(R[0, outputs.index(name)]) for name in reference
                           if name in outputs}
        return R, weights, R_u, input_weights

    def _disturbance_forecast(self, d: np.ndarray, forecast: Mapping[str, Forecast]
                              ) -> np.ndarray:
        require_known("disturbances", forecast, self.model.disturbances)
        D = np.tile(d, (self.horizon, 1))
        for name, values in forecast.items():
            D[:, self.model.disturbances.index(name)] = self._profile(
                f"disturbances[{name!r}]", values)
        return D

    def _price_forecast(self, prices: Mapping[str, Forecast]) -> np.ndarray:
        unknown = sorted(set(prices) - set(self._economic_names))
        if unknown:
            raise ValueError(f"prices: {unknown} carry no economic weight; economic signals: "
                             f"{', '.join(self._economic_names) or 'none'}")
        Pi = np.ones((self.horizon, len(self._economic_names)))
        for name, values in prices.items():
            Pi[:, self._economic_names.index(name)] = self._profile(f"prices[{name!r}]", values)
        return Pi

    def _profile(self, what: str, values: Forecast) -> np.ndarray:
        return horizon_profile(what, values, self.horizon)

    # -- proposals -------------------------------------------------------------------------------

    def _proposal(self, t: float, u: np.ndarray, status: str, solve_time: float) -> Proposal:
        plan_inputs, plan_outputs = self._plan_inputs, self._plan_outputs
        if plan_inputs is None or plan_outputs is None:
            raise RuntimeError(f"{status}: a proposal needs the plan of a successful solve")
        reason = plan_reason(self.model, self._reference, self._outputs_now,
                             plan_outputs[-1], u, plan_inputs[0], self.horizon)
        return plan_proposal(self.model, t, plan_inputs[0], plan_outputs,
                             reason, status, solve_time)

    def _held(self, t: float, u: np.ndarray, status: str, solve_time: float) -> Proposal:
        """The last good plan shifted by one step, or ``u`` held if there is none."""
        proposal, self._plan_inputs, self._plan_outputs = held_plan(
            self.model, t, u, self.lower, self.upper, self._plan_inputs, self._plan_outputs,
            status, solve_time)
        return proposal


class _SharedProblem:
    """The Functions of one problem shape (controllers.mpc_sqp.shared_key) with a QP
    solver, compiled to C if ``settings.codegen`` asks and it can be: built once per
    process and shape, shared by every controller of it."""

    def __init__(self, model: PlantModel, horizon: int, data: ProblemData,
                 settings: ControllerSettings) -> None:
        functions = build_step(model, horizon, data)
        self.shape, self.make_step = functions.shape, functions.step
        self.outputs = functions.outputs
        self.step, self.merit = self.make_step(settings.qp_solver), functions.merit
        self.compiled, self.compile_note = False, ""
        if settings.codegen:
            try:
                self.step, self.merit = compiled(self.step), compiled(self.merit)
                self.compiled = True
            except CompileError as error:
                self.compile_note = f"code generation failed, running interpreted: {error}"
                log.warning("fast MPC for %r: %s", model.kind, self.compile_note)


def _terminal_weight(model: PlantModel, weight: np.ndarray | None) -> np.ndarray | None:
    if weight is None:
        return None
    P = np.asarray(weight, dtype=float)
    n = len(model.states)
    if P.shape != (n, n) or not np.isfinite(P).all():
        raise ValueError(f"terminal_weight must be a finite {n} x {n} matrix over "
                         f"{list(model.states.names)}, got shape {P.shape}")
    if not np.allclose(P, P.T, rtol=1e-10, atol=0.0):
        raise ValueError("terminal_weight must be symmetric")
    return 0.5 * (P + P.T)


def _non_finite(model: PlantModel, x: np.ndarray, u: np.ndarray, D: np.ndarray) -> str:
    """Names of non-finite states, inputs or disturbances, comma-separated, or ''."""
    bad = [n for group, values in ((model.states, x), (model.inputs, u))
           for n, v in zip(group.names, values, strict=True) if not math.isfinite(v)]
    bad += [n for j, n in enumerate(model.disturbances.names) if not np.isfinite(D[:, j]).all()]
    return ", ".join(bad)
