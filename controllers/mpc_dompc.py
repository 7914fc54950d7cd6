"""Nonlinear MPC on do-mpc and IPOPT, over a PlantModel's RK4 step.

The do-mpc model is *discrete*: x[k+1] = F(x[k], u[k], d, p, dt) with the PlantModel's
RK4 step, and the model parameters p (nominal, or the estimator's estimates), the
disturbances d, the output references r and the tracking weights as time-varying
parameters, so they can change between calls without rebuilding the problem. The NLP
is SX with F inlined at every step, or, for a model too large to inline over the horizon
(the 10-tank terminal, INLINE_LIMIT), MX with each RK4 stage a call to f: the same
problem, far smaller to build and hold, slower to solve. Over the
horizon of N steps (t_step = the model's dt) the controller minimises

    sum_{k=0}^{N-1} [ sum_y w_y ((h_y(x_k, u_k, d_k, p) - r_y,k) / s_y)^2
                      + sum_u w_du ((u_k - u_{k-1}) / s_u)^2 ]

subject to the input bounds (the intersection of each input signal's bounds and its
setpoint limit), with u_{-1} the input applied now. ``s`` is the span upper - lower of
the output or input signal, or max(|nominal|, 1) where a bound is infinite; outputs
without a reference weigh 0 (see ``engine.config.ControllerSettings``).

Signals: in the state estimate x [state units], the applied inputs u [input units],
the disturbances d [disturbance units], the references {output name: value} and the
model parameters p [parameter units];
out a Proposal with the first move {input name: value}, the predicted outputs at
t + dt, ..., t + N dt and a reason with numbers and units.

IPOPT runs silently, capped at 300 iterations. A solve that does not end in
Solve_Succeeded or Solved_To_Acceptable_Level, or gives non-finite values, is not used:
the last good plan is proposed one step on instead, and the next solve starts from a
fresh initial guess.

Forecasts: reference values and ``disturbances`` may be sequences over the horizon
(one per step, the last held, as in controllers.mpc_fast), filled into the time-varying
parameters d_k and r_k of each step; ``prices`` and input targets (a reference naming
an input, an approved plan's injections) are refused (this backend has no economic cost
and tracks outputs only). Without them d and r are held over the horizon.

Simplifications: no state or output constraints (soft constraints come later), one
scenario (no robust MPC).
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import casadi as ca
import numpy as np

with warnings.catch_warnings():
    # do-mpc announces its optional ONNX and PyTorch features at import
    warnings.filterwarnings("ignore", message=".*(ONNX|PyTorch).*", category=UserWarning)
    import do_mpc

from controllers.casadi_compile import shared
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
    spans,
)
from engine.config import ControllerSettings, SetpointLimit
from engine.messages import Proposal
from engine.model import PlantModel

_SOLVED = ("Solve_Succeeded", "Solved_To_Acceptable_Level")
_MAX_ITERATIONS = 300
"""IPOPT iteration cap: a typical solve takes about 20, so a failing one ends in bounded time."""

INLINE_LIMIT = 100_000
"""Largest horizon * (SX instructions of the RK4 step F) whose NLP is built in SX, F
inlined at every step (:func:`inlines`). An SX NLP is evaluated fastest, but IPOPT's
exact Hessian and constraint Jacobian of it grow with the whole inlined horizon; past
this size the NLP is built in MX, each RK4 stage a call to f, and differentiated through
f. Measured here (CPU seconds, one process): the 10-tank terminal (29,561 instructions,
15 steps) builds in 22 s and 1,580 MB in SX, in 0.7 s and 59 MB in MX, and solves in
1.5 s in SX against 3.6 s in MX; the tank and the pump (about 1,350 instructions, 30
steps) stay in SX, where their solves are about 3 times faster than in MX."""


class DoMpcController:
    """do-mpc MPC for ``model``; satisfies ``engine.loop.Controller``. Its settings are
    checked by ``controllers.backends.check_settings``, which ``build_controller`` runs.

    Not thread-safe: one instance per asset loop (do-mpc objects do not pickle, so
    build it inside the actor that uses it). The do-mpc problem and IPOPT's solver are
    shared with every controller of the same model structure, horizon, move weights and
    IPOPT options in the process (controllers.casadi_compile.shared); the input bounds,
    initial guess, multipliers, references and parameters are this controller's."""

    backend = "do-mpc"
    input_targets = False
    """It tracks outputs only: the loop hands it no input targets (engine.loop)."""

    def __init__(
        self, model: PlantModel, settings: ControllerSettings,
        limits: Mapping[str, SetpointLimit], *, ipopt_options: Mapping[str, object] | None = None,
    ) -> None:
        """``ipopt_options`` are added to the IPOPT options (``{"warm_start_init_point":
        "yes"}`` for a warm start from the last solution's multipliers too)."""
        self._ipopt_options = {f"ipopt.{k}": v for k, v in (ipopt_options or {}).items()}
        self.model = model
        self.horizon = settings.horizon
        self.lower, self.upper = input_bounds(model.inputs, limits)
        """Input bounds used by the optimiser, input units."""
        self._output_scale = spans(model.outputs)
        self._tracking = np.array([settings.tracking.get(n, DEFAULT_TRACKING)
                                   for n in model.outputs.names])
        move_suppression = np.array([settings.move_suppression.get(n, DEFAULT_MOVE_SUPPRESSION)
                                     for n in model.inputs.names])
        self._reference: dict[str, float] = {}
        self._references = np.zeros((self.horizon, len(model.outputs)))
        """r_k over the horizon, output units (the rows of outputs without a reference
        are unused: their weight is 0)."""
        self._disturbances = np.zeros((self.horizon, len(model.disturbances)))
        """d_k over the horizon, disturbance units."""
        self._parameters = model.parameters.nominal
        self._plan_inputs: np.ndarray | None = None
        self._plan_outputs: np.ndarray | None = None
        self._fresh_guess = True
        move_weight = move_suppression / spans(model.inputs) ** 2
        options = {"ipopt.print_level": 0, "print_time": False, "ipopt.sb": "yes",
                   "ipopt.max_iter": _MAX_ITERATIONS, **self._ipopt_options}
        self._problem = shared(
            ("do-mpc", model.structure, self.horizon, inlines(model, self.horizon),
             move_weight.tobytes(),
             repr(sorted(options.items()))),
            lambda: _SharedProblem(model, self.horizon, move_weight, options))
        mpc = self._problem.mpc
        self._outputs = self._problem.outputs
        self._guess = mpc._opt_x(0)
        """The NLP's initial guess, this controller's own: the last solution (the warm
        start) or a fresh guess."""
        self._multipliers: tuple[ca.DM, ca.DM] | None = None
        """(lam_x, lam_g) of the last solve: IPOPT's warm start after the first solve."""
        self._lower_x, self._upper_x = (_input_bounded(mpc, bound, values) for bound, values in
                                        ((mpc._lb_opt_x, self.lower), (mpc._ub_opt_x, self.upper)))
        self._time_varying = self._problem.time_varying(0)

    # -- the Controller protocol -----------------------------------------------------------

    def step(
        self, t: float, x: np.ndarray, u: np.ndarray, d: np.ndarray,
        reference: Mapping[str, float | Sequence[float]], *,
        disturbances: Mapping[str, float | Sequence[float]] | None = None,
        prices: Mapping[str, float | Sequence[float]] | None = None,
        p: np.ndarray | None = None,
    ) -> Proposal:
        """Solve the MPC problem from state ``x`` with ``u`` applied now and the model
        parameters ``p`` (None: nominal) and propose the first move. ``reference``
        values and ``disturbances`` (overriding ``d``) may be sequences over the
        horizon, the last value held. On solver failure or non-finite input, propose
        the last good plan shifted by one step (or hold ``u`` if there is none)."""
        targets = sorted(set(reference) & set(self.model.inputs.names))
        if targets:
            raise ValueError(f"reference: input targets of {targets} given, but the do-mpc "
                             "backend tracks outputs only; use the fast backend")
        require_known("reference", reference, self.model.outputs)
        require_known("disturbances", disturbances or {}, self.model.disturbances)
        if prices:
            raise ValueError(f"prices: {sorted(prices)} given, but the do-mpc backend has "
                             "no economic cost; use the fast backend")
        self._parameters = parameter_vector(self.model, p)
        x = np.asarray(x, dtype=float).ravel()
        u = np.asarray(u, dtype=float).ravel()
        d = np.asarray(d, dtype=float).ravel()
        outputs, N = self.model.outputs, self.horizon
        self._references = np.tile(outputs.nominal, (N, 1))
        for name, values in reference.items():
            self._references[:, outputs.index(name)] = horizon_profile(
                f"reference[{name!r}]", values, N)
        self._reference = {name: float(self._references[0, outputs.index(name)])
                           for name in reference}
        self._disturbances = np.tile(d, (N, 1))
        for name, values in (disturbances or {}).items():
            self._disturbances[:, self.model.disturbances.index(name)] = horizon_profile(
                f"disturbances[{name!r}]", values, N)
        start = time.perf_counter()
        status = self._solve(x, u, d)
        solve_time = time.perf_counter() - start
        if status in _SOLVED:
            return self._proposal(t, x, u, d, status, solve_time)
        return self._held(t, u, status, solve_time)

    def checkpoint(self) -> dict[str, Any]:
        """Plain-data warm-start state: the last good plan (inputs and outputs over the
        horizon), which a restored controller holds if its first solve fails."""
        if self._plan_inputs is None or self._plan_outputs is None:
            return {}
        return {"plan_inputs": self._plan_inputs.tolist(),
                "plan_outputs": self._plan_outputs.tolist()}

    def restore(self, data: Mapping[str, Any]) -> None:
        if data:
            self._plan_inputs = np.asarray(data["plan_inputs"], float)
            self._plan_outputs = np.asarray(data["plan_outputs"], float)

    # -- solving -------------------------------------------------------------------------------

    def _solve(self, x: np.ndarray, u: np.ndarray, d: np.ndarray) -> str:
        """Run IPOPT; return its status, or why it was not run."""
        for signals, values in ((self.model.states, x), (self.model.inputs, u),
                                (self.model.disturbances, d)):
            bad = [n for n, v in zip(signals.names, values, strict=True) if not math.isfinite(v)]
            if bad:
                return f"non-finite {', '.join(bad)}"
        if self._fresh_guess:
            self._guess["_x"] = x
            self._guess["_u"] = np.clip(u, self.lower, self.upper)
        try:
            solution, status = self._problem.solve(self._parameters_of(x, u), self._guess,
                                                   self._lower_x, self._upper_x,
                                                   self._multipliers)
        except RuntimeError as error:
            self._fresh_guess = True
            return f"solver error: {error}".splitlines()[0]
        self._guess.master = solution["x"]
        self._multipliers = solution["lam_x"], solution["lam_g"]
        unscaled = self._problem.mpc._opt_x(solution["x"] * self._problem.mpc.opt_x_scaling)
        inputs = np.vstack([np.asarray(unscaled["_u", k, 0]).ravel()
                            for k in range(self.horizon)])
        states = np.vstack([np.asarray(unscaled["_x", k, 0, -1]).ravel()
                            for k in range(1, self.horizon + 1)])
        outputs = np.asarray(self._outputs(states.T, inputs.T, self._disturbances.T,
                                           self._parameters)).T
        if status in _SOLVED and not (np.isfinite(inputs).all() and np.isfinite(outputs).all()):
            status = f"{status} with non-finite values"
        if status not in _SOLVED:
            self._fresh_guess = True
            return status
        self._fresh_guess = False
        self._plan_inputs = np.clip(inputs, self.lower, self.upper)
        self._plan_outputs = outputs
        return status

    def _parameters_of(self, x: np.ndarray, u: np.ndarray):
        """The NLP's parameters: x_0, u_-1 (of the move suppression) and the time-varying
        parameters of each step k (disturbances d_k, references r_k, tracking weights
        and model parameters; the stage after the horizon takes step N-1's)."""
        weights = np.array([self._tracking[i] / self._output_scale[i] ** 2
                            if name in self._reference else 0.0
                            for i, name in enumerate(self.model.outputs.names)])
        template = self._time_varying
        for k in range(self.horizon + 1):
            step = min(k, self.horizon - 1)
            _fill(template, k, "d", self._disturbances[step])
            _fill(template, k, "r", self._references[step])
            _fill(template, k, "w", weights)
            _fill(template, k, "p", self._parameters)
        mpc = self._problem.mpc
        parameters = mpc._opt_p(0)
        parameters["_x0"] = x
        parameters["_u_prev"] = u
        parameters["_tvp"] = template["_tvp"]
        parameters["_p"] = mpc.p_fun(0.0)["_p"]
        return parameters

    def _proposal(self, t: float, x: np.ndarray, u: np.ndarray, d: np.ndarray, status: str,
                  solve_time: float) -> Proposal:
        plan_inputs, plan_outputs = self._plan_inputs, self._plan_outputs
        if plan_inputs is None or plan_outputs is None:
            raise RuntimeError(f"{status}: a proposal needs the plan of a successful solve")
        now = np.asarray(self._outputs(x, u, d, self._parameters)).ravel()
        reason = plan_reason(self.model, self._reference, now, plan_outputs[-1], u,
                             plan_inputs[0], self.horizon)
        return plan_proposal(self.model, t, plan_inputs[0], plan_outputs,
                             reason, status, solve_time)

    def _held(self, t: float, u: np.ndarray, status: str, solve_time: float) -> Proposal:
        """The last good plan shifted by one step, or ``u`` held if there is none."""
        proposal, self._plan_inputs, self._plan_outputs = held_plan(
            self.model, t, u, self.lower, self.upper, self._plan_inputs, self._plan_outputs,
            status, solve_time)
        return proposal


def inlines(model: PlantModel, horizon: int) -> bool:
    """Whether the NLP of ``model`` over ``horizon`` steps is built in SX with the RK4
    step ``model.F`` inlined at every step (horizon * F's SX instructions at most
    INLINE_LIMIT), else in MX with the step's stages as calls to ``model.f``
    (``model.F_calls``). Both are the same problem; the solutions agree to rounding."""
    return horizon * model.F.n_instructions() <= INLINE_LIMIT


class _SharedProblem:
    """One do-mpc MPC problem (model structure, horizon, move weights and IPOPT options),
    set up once per process and shared by every controller of it: the formulation and
    IPOPT's NLP solver. Each controller keeps its own input bounds, initial guess,
    multipliers and parameters and passes them to :meth:`solve`, which replays what
    do-mpc's ``make_step`` gives IPOPT. IPOPT's return status is read from the solver's
    statistics after the call, so calls hold :attr:`lock`."""

    def __init__(self, model: PlantModel, horizon: int, move_weight: np.ndarray,
                 options: Mapping[str, object]) -> None:
        self.inlined = inlines(model, horizon)
        """True: the NLP is SX, F inlined at every step; False: MX, calls to f."""
        dompc_model = do_mpc.model.Model("discrete", "SX" if self.inlined else "MX")
        x = dompc_model.set_variable("_x", "x", shape=(len(model.states), 1))
        u = dompc_model.set_variable("_u", "u", shape=(len(model.inputs), 1))
        d = _time_varying(dompc_model, "d", len(model.disturbances))
        r = _time_varying(dompc_model, "r", len(model.outputs))
        weight = _time_varying(dompc_model, "w", len(model.outputs))
        p = _time_varying(dompc_model, "p", len(model.parameters))
        step = model.F if self.inlined else model.F_calls
        dompc_model.set_rhs("x", step(x, u, d, p, model.dt))
        dompc_model.setup()

        mpc = do_mpc.controller.MPC(dompc_model)
        mpc.settings.n_horizon = horizon
        mpc.settings.t_step = model.dt
        mpc.settings.store_full_solution = False
        mpc.settings.store_lagr_multiplier = False
        mpc.settings.store_solver_stats = []
        mpc.settings.nlpsol_opts.update(options)
        error = model.h(x, u, d, p) - r
        mpc.set_objective(lterm=ca.sum1(weight * error**2), mterm=ca.DM(0))
        mpc.set_rterm(u=move_weight)
        template = mpc.get_tvp_template()
        mpc.set_tvp_fun(lambda t_now: template)  # each controller passes its own
        self.time_varying = template.struct
        """The structure of the time-varying parameters over the horizon: called with 0,
        a numeric one to fill."""
        with warnings.catch_warnings():
            # do-mpc's bound checks call numpy on casadi values (casadi issue #2959)
            warnings.filterwarnings("ignore", category=FutureWarning, module="casadi")
            mpc.setup()
        self.mpc = mpc
        self.outputs = ca.Function("outputs", *_output_map(model))
        self.lock = threading.Lock()

    def solve(self, parameters, guess, lower, upper,
              multipliers: tuple[ca.DM, ca.DM] | None) -> tuple[dict[str, ca.DM], str]:
        """IPOPT from ``guess`` within [``lower``, ``upper``] with the NLP ``parameters``
        (and the ``multipliers`` of the last solve, as do-mpc after its first): the
        solution (x, lam_x, lam_g) and IPOPT's return status."""
        mpc = self.mpc
        arguments = {"x0": guess, "lbx": lower, "ubx": upper, "lbg": mpc.nlp_cons_lb,
                     "ubg": mpc.nlp_cons_ub, "p": parameters}
        if multipliers is not None:
            arguments.update(lam_x0=multipliers[0], lam_g0=multipliers[1])
        with self.lock:
            solution = mpc.S(**arguments)
            status = str(mpc.S.stats()["return_status"])
        return solution, status


def _input_bounded(mpc: do_mpc.controller.MPC, bounds, values: np.ndarray):
    """A copy of the NLP's bounds ``bounds`` with the inputs' over the horizon set to
    ``values`` (input units, scaled as do-mpc scales them)."""
    bounded = mpc._opt_x(ca.DM(bounds.master))
    bounded["_u"] = values
    index = bounded.f["_u"]
    bounded.master[index] = bounded.master[index] / mpc.opt_x_scaling.master[index]
    return bounded


def _time_varying(dompc_model: do_mpc.model.Model, name: str, size: int):
    """A do-mpc time-varying parameter vector, or an empty column if ``size`` is 0."""
    if size == 0:
        return ca.DM.zeros(0, 1)
    return dompc_model.set_variable("_tvp", name, shape=(size, 1))


def _fill(template, k: int, name: str, values: np.ndarray) -> None:
    if values.size:
        template["_tvp", k, name] = values


def _output_map(model: PlantModel) -> tuple[list[ca.SX], list[ca.SX]]:
    """(x, u, d, p) -> y, for evaluating predictions."""
    x = ca.SX.sym("x", len(model.states))
    u = ca.SX.sym("u", len(model.inputs))
    d = ca.SX.sym("d", len(model.disturbances))
    p = ca.SX.sym("p", len(model.parameters))
    return [x, u, d, p], [model.h(x, u, d, p)]
