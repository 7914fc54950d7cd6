"""Nonlinear MPC on do-mpc and IPOPT, over a PlantModel's RK4 step.

The do-mpc model is *discrete*: x[k+1] = F(x[k], u[k], d, p, dt) with the PlantModel's
RK4 step, and the model parameters p (nominal, or the estimator's estimates), the
disturbances d, the output references r and the tracking weights as time-varying
parameters, so they can change between calls without rebuilding the problem. Over the
horizon of N steps (t_step = the model's dt) the controller minimises

    sum_{k=0}^{N-1} [ sum_y w_y ((h_y(x_k, u_k, d, p) - r_y) / s_y)^2
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

Simplifications: no state or output constraints (soft constraints come later), one
scenario (no robust MPC), disturbances held constant over the horizon.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from typing import Any

import casadi as ca
import numpy as np

with warnings.catch_warnings():
    # do-mpc announces its optional ONNX and PyTorch features at import
    warnings.filterwarnings("ignore", message=".*(ONNX|PyTorch).*", category=UserWarning)
    import do_mpc

from controllers.mpc_common import (
    DEFAULT_MOVE_SUPPRESSION, DEFAULT_TRACKING, held_plan, input_bounds,
    parameter_vector, plan_proposal, plan_reason, require_known, spans,
)
from engine.config import ControllerSettings, SetpointLimit
from engine.messages import Proposal
from engine.model import PlantModel

_SOLVED = ("Solve_Succeeded", "Solved_To_Acceptable_Level")
_MAX_ITERATIONS = 300
"""IPOPT iteration cap: a typical solve takes about 20, so a failing one ends in bounded time."""


class DoMpcController:
    """do-mpc MPC for ``model``; satisfies ``engine.loop.Controller``. Its settings are
    checked by ``controllers.backends.check_settings``, which ``build_controller`` runs.

    Not thread-safe: one instance per asset loop (do-mpc objects do not pickle, so
    build it inside the actor that uses it)."""

    backend = "do-mpc"

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
        self._disturbances = model.disturbances.nominal
        self._parameters = model.parameters.nominal
        self._plan_inputs: np.ndarray | None = None
        self._plan_outputs: np.ndarray | None = None
        self._fresh_guess = True
        self._outputs = ca.Function("outputs", *_output_map(model))
        self._mpc = self._build(move_suppression / spans(model.inputs) ** 2)

    # -- the Controller protocol -----------------------------------------------------------

    def step(
        self, t: float, x: np.ndarray, u: np.ndarray, d: np.ndarray,
        reference: Mapping[str, float], *, p: np.ndarray | None = None,
    ) -> Proposal:
        """Solve the MPC problem from state ``x`` with ``u`` applied now and the model
        parameters ``p`` (None: nominal) and propose the first move. On solver failure
        or non-finite input, propose the last good plan shifted by one step (or hold
        ``u`` if there is none)."""
        require_known("reference", reference, self.model.outputs)
        self._parameters = parameter_vector(self.model, p)
        x = np.asarray(x, dtype=float).ravel()
        u = np.asarray(u, dtype=float).ravel()
        d = np.asarray(d, dtype=float).ravel()
        self._reference = {name: float(value) for name, value in reference.items()}
        self._disturbances = d
        start = time.perf_counter()
        status = self._solve(x, u, d)
        solve_time = time.perf_counter() - start
        if status in _SOLVED:
            return self._proposal(t, x, u, d, status, solve_time)
        return self._held(t, u, status, solve_time)

    def checkpoint(self) -> dict[str, Any]:
        """Plain-data warm-start state: the last good plan (inputs and outputs over the
        horizon), which a restored controller holds if its first solve fails."""
        if self._plan_inputs is None:
            return {}
        return {"plan_inputs": self._plan_inputs.tolist(),
                "plan_outputs": self._plan_outputs.tolist()}

    def restore(self, data: Mapping[str, Any]) -> None:
        if data:
            self._plan_inputs = np.asarray(data["plan_inputs"], float)
            self._plan_outputs = np.asarray(data["plan_outputs"], float)

    # -- construction ------------------------------------------------------------------------

    def _build(self, move_weight: np.ndarray) -> do_mpc.controller.MPC:
        model = self.model
        dompc_model = do_mpc.model.Model("discrete", "SX")
        x = dompc_model.set_variable("_x", "x", shape=(len(model.states), 1))
        u = dompc_model.set_variable("_u", "u", shape=(len(model.inputs), 1))
        d = _time_varying(dompc_model, "d", len(model.disturbances))
        r = _time_varying(dompc_model, "r", len(model.outputs))
        weight = _time_varying(dompc_model, "w", len(model.outputs))
        p = _time_varying(dompc_model, "p", len(model.parameters))
        dompc_model.set_rhs("x", model.F(x, u, d, p, model.dt))
        dompc_model.setup()

        mpc = do_mpc.controller.MPC(dompc_model)
        mpc.settings.n_horizon = self.horizon
        mpc.settings.t_step = model.dt
        mpc.settings.store_full_solution = False
        mpc.settings.store_lagr_multiplier = False
        mpc.settings.store_solver_stats = []
        mpc.settings.nlpsol_opts.update({"ipopt.print_level": 0, "print_time": False,
                                         "ipopt.sb": "yes", "ipopt.max_iter": _MAX_ITERATIONS,
                                         **self._ipopt_options})
        error = model.h(x, u, d, p) - r
        mpc.set_objective(lterm=ca.sum1(weight * error**2), mterm=ca.DM(0))
        mpc.set_rterm(u=move_weight)
        mpc.bounds["lower", "_u", "u"] = self.lower
        mpc.bounds["upper", "_u", "u"] = self.upper
        template = mpc.get_tvp_template()

        def time_varying(t_now: float):
            # reads the controller's current reference and disturbances at every solve
            reference = self.model.outputs.vector(self._reference)
            weights = np.array([self._tracking[i] / self._output_scale[i] ** 2
                                if name in self._reference else 0.0
                                for i, name in enumerate(self.model.outputs.names)])
            for k in range(self.horizon + 1):
                _fill(template, k, "d", self._disturbances)
                _fill(template, k, "r", reference)
                _fill(template, k, "w", weights)
                _fill(template, k, "p", self._parameters)
            return template

        mpc.set_tvp_fun(time_varying)
        with warnings.catch_warnings():
            # do-mpc's bound checks call numpy on casadi values (casadi issue #2959)
            warnings.filterwarnings("ignore", category=FutureWarning, module="casadi")
            mpc.setup()
        return mpc

    # -- solving -------------------------------------------------------------------------------

    def _solve(self, x: np.ndarray, u: np.ndarray, d: np.ndarray) -> str:
        """Run IPOPT; return its status, or why it was not run."""
        for signals, values in ((self.model.states, x), (self.model.inputs, u),
                                (self.model.disturbances, d)):
            bad = [n for n, v in zip(signals.names, values) if not math.isfinite(v)]
            if bad:
                return f"non-finite {', '.join(bad)}"
        mpc = self._mpc
        if self._fresh_guess:
            mpc.x0 = x
            mpc.u0 = np.clip(u, self.lower, self.upper)
            mpc.set_initial_guess()
        mpc.u0 = u  # u_{-1} of the move suppression term
        try:
            mpc.make_step(x)
        except RuntimeError as error:
            self._fresh_guess = True
            return f"solver error: {error}".splitlines()[0]
        finally:
            mpc.reset_history()  # do-mpc appends every step to its data log: keep memory bounded
        status = str(mpc.solver_stats["return_status"])
        solution = mpc.opt_x_num_unscaled
        inputs = np.vstack([np.asarray(solution["_u", k, 0]).ravel()
                            for k in range(self.horizon)])
        states = np.vstack([np.asarray(solution["_x", k, 0, -1]).ravel()
                            for k in range(1, self.horizon + 1)])
        outputs = np.asarray(self._outputs(states.T, inputs.T, d, self._parameters)).T
        if status in _SOLVED and not (np.isfinite(inputs).all() and np.isfinite(outputs).all()):
            status = f"{status} with non-finite values"
        if status not in _SOLVED:
            self._fresh_guess = True
            return status
        self._fresh_guess = False
        self._plan_inputs = np.clip(inputs, self.lower, self.upper)
        self._plan_outputs = outputs
        return status

    def _proposal(self, t: float, x: np.ndarray, u: np.ndarray, d: np.ndarray, status: str,
                  solve_time: float) -> Proposal:
        now = np.asarray(self._outputs(x, u, d, self._parameters)).ravel()
        reason = plan_reason(self.model, self._reference, now, self._plan_outputs[-1], u,
                             self._plan_inputs[0], self.horizon)
        return plan_proposal(self.model, t, self._plan_inputs[0], self._plan_outputs,
                             reason, status, solve_time)

    def _held(self, t: float, u: np.ndarray, status: str, solve_time: float) -> Proposal:
        """The last good plan shifted by one step, or ``u`` held if there is none."""
        proposal, self._plan_inputs, self._plan_outputs = held_plan(
            self.model, t, u, self.lower, self.upper, self._plan_inputs, self._plan_outputs,
            status, solve_time)
        return proposal


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
