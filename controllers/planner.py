"""The DRA pipeline's 7-day forward plan: hourly DRA injection per skid and pump speed per
station that minimise electricity at a time-of-use tariff plus DRA, deliver the
nomination and keep every discharge pressure under MAOP (PHYSICS.md section 1, "7-day
plan"; issue 14 item 3).

Problem, hour k = 0 .. K-1 (K = 168), controls held over the hour:

    min  sum_k [ price_k sum_i P_i,k / 1000 + c_DRA sum_i q_i,k ] x 1 h
    s.t. s_(k+1) = Phi(s_k, Q_k, u_k)                  DRA transport and degradation
         r(s_k+1/2, Q_k, u_k) = 0                      the hour's flow balances the line
         p_discharge,i(s_k+1/2, Q_k, u_k) <= MAOP_i     every station, every hour
         sum_(k in day j) Q_k x 3600 s = V_j           daily nomination (or Q_k = Q_nom,k)
         u_lower <= u_k <= u_upper, |u_k - u_(k-1)| <= max_rate x 3600 s

with s the model's states other than the flow (the DRA concentration of every line
segment, the estimated friction and DRA-efficiency multipliers), u_k = (q_i, N_i) the
skids' injection [L/h] and the pumps' relative speeds, Q_k the hour's flow [m^3/s],
P_i the station power [W], cost in the tariff's currency. Everything comes from the
plant model's own f and h: Phi is RK4 on f's concentration rows with the flow held at
Q_k (two 1800 s substeps; s_(k+1/2) is one 1800 s substep), r = 0 is f's flow row set
to zero, pressures, power and cost rate are h's outputs with the hour's price as the
electricity_price disturbance.

Why hourly steady hydraulics but dynamic DRA: the model's flow settles with
tau_Q = 600 s (flow_time_constant), so within an hour it is within exp(-6) of the flow
that balances the line, and the hour's flow is taken at that balance (f's flow rate
zero, evaluated at the hour's midpoint concentrations). The DRA is not fast: a 100 km
leg of the 0.489 m line holds A L = 18,800 m^3, 15.7 h at 1200 m^3/h, and degrades with
1 / k_deg = 28 h, so concentrations are states of the NLP (direct multiple shooting,
one node per hour) and a plan can load DRA into a leg hours before a price peak.

Storage: the model has no delivery tank or linepack (one incompressible flow), so with
an hourly flow nomination the plan can only trade DRA against pump energy hour by hour
(and pre-load DRA ahead of a peak). With a daily volume nomination the hourly flow is
free within the day, and the plan moves pumping out of the peak hours (the receiving
terminal's tanks buffer the day, as a daily nomination implies).

Baselines on the same model, tariff and solver: ``constant_dra`` (every skid at a fixed
rate, the flow constant through each day at its nomination, speeds at their cheapest
feasible split) and ``no_dra`` (the same with no DRA). A baseline that cannot meet its
flow under the speed limits or MAOP is reported infeasible with the violated bound,
never with a cost.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import casadi as ca
import msgspec
import numpy as np
from scipy.optimize import brentq

from controllers.casadi_compile import CompileError, compiled
from engine.config import (
    AssetConfig,
    NominationSettings,
    SetpointLimit,
    SiteConfig,
    TariffSettings,
    TripInterlock,
)
from engine.model import PlantModel

log = logging.getLogger(__name__)

HOURS = 168
HOUR_S = 3600.0
_SUBSTEPS = 2
_COST_SCALE = 1.0e3
"""Currency units per unit of the scaled objective (about one hour's cost on the pilot)."""
_PRESSURE_SCALE = 1.0e6
_VOLUME_SCALE = 1.0e3
_FEASIBILITY_TOLERANCE = 1.0e-5
"""Largest scaled constraint violation (MPa, m^3/h, ppm, 1000 m^3) a solution may keep."""
_JUDGED = ("Solve_Succeeded", "Solved_To_Acceptable_Level", "Infeasible_Problem_Detected",
           "Restoration_Failed")
"""IPOPT statuses whose point is judged by its constraint violation (an infeasible one
is then diagnosed); any other status (iteration limit, invalid number) is a failed solve."""


class PlanHour(msgspec.Struct, frozen=True, kw_only=True):
    """One hour of a plan; lists are indexed by station/skid 1 .. n.

    Attributes:
        hour: hours from the plan's start.
        electricity_price: tariff price this hour, currency per kWh.
        flow: line flow, m^3/s.
        dra_injection: each skid's injection, L/h.
        pump_speed: each station's speed relative to rated.
        discharge_pressure: each station's discharge pressure at mid-hour, Pa.
        station_power: each station's electric power at mid-hour, W.
        cost: electricity plus DRA this hour, currency.
    """

    hour: int
    electricity_price: float
    flow: float
    dra_injection: list[float]
    pump_speed: list[float]
    discharge_pressure: list[float]
    station_power: list[float]
    cost: float


class Baseline(msgspec.Struct, frozen=True, kw_only=True):
    """A reference operation priced on the same model and tariff.

    Attributes:
        feasible: whether it meets its flow with speeds and pressures within bounds.
        cost: its total cost, currency; None when infeasible.
        dra_injection: the fixed rate of every skid, L/h.
        reason: why it is infeasible (the violated bound and the hour), else empty.
        hours: its hourly trajectory (empty when infeasible).
    """

    feasible: bool
    cost: float | None
    dra_injection: float
    reason: str = ""
    hours: list[PlanHour] = []


class InjectionPlan(msgspec.Struct, frozen=True, kw_only=True):
    """The planner's answer.

    Attributes:
        currency: the tariff's currency, which every cost here is in.
        start_hour_of_week: hour of the week of the plan's first hour (0 = Monday 00:00).
        hours: the plan, hour by hour.
        cost, energy_cost, dra_cost: the plan's total, electricity and DRA cost.
        delivered_volume: m^3 delivered on each day of the plan.
        baselines: ``constant_dra`` and ``no_dra``.
        solver_status: IPOPT's return status of the plan's solve.
        iterations: IPOPT iterations of the plan's solve.
        compute_time_s: wall time of the plan's and the baselines' solves.
    """

    currency: str
    start_hour_of_week: int
    hours: list[PlanHour]
    cost: float
    energy_cost: float
    dra_cost: float
    delivered_volume: list[float]
    baselines: dict[str, Baseline]
    solver_status: str
    iterations: int
    compute_time_s: float


class PlanInfeasibleError(ValueError):
    """No plan meets the nomination within the speed, injection and pressure bounds."""


class InjectionPlanner:
    """Builds the hourly NLP for a DRA pipeline model once; ``plan`` solves it.

    ``model`` is a plants.dra_pipeline model (states ``flow`` and the DRA segments,
    inputs ``dra_injection_i`` and ``pump_speed_i``, outputs ``discharge_pressure_i``,
    ``station_power_i`` and ``cost_rate``, disturbance ``electricity_price``); ``limits``
    bound the inputs (default: the inputs' signal bounds, no rate limit). ``compiled``
    generates C for the per-hour functions (cached, controllers.casadi_compile); without
    a C compiler it runs interpreted and says so in ``compile_note``."""

    def __init__(self, model: PlantModel, limits: Mapping[str, SetpointLimit] | None = None,
                 hours: int = HOURS, compiled: bool = True) -> None:
        if hours < 1:
            raise ValueError(f"hours: {hours} is below 1")
        self.model, self.hours, self.compiled = model, hours, compiled
        self.compile_note = ""
        self.limits = dict(limits or {})
        names = model.inputs.names
        self.skids = [n for n in names if n.startswith("dra_injection_")]
        self.pumps = [n for n in names if n.startswith("pump_speed_")]
        self.stations = len(self.pumps)
        self._flow = model.states.names.index("flow")
        self._slow = [i for i in range(len(model.states)) if i != self._flow]
        outputs = model.outputs.names
        self._pressure_rows = [outputs.index(f"discharge_pressure_{i}")
                               for i in range(1, self.stations + 1)]
        self._power_rows = [outputs.index(f"station_power_{i}")
                            for i in range(1, self.stations + 1)]
        self._cost_row = outputs.index("cost_rate")
        self._price = model.disturbances.names.index("electricity_price")
        self._hour_functions()
        self._solver = self._build_nlp()

    # -- the model over one hour ------------------------------------------------------------

    def _hour_functions(self) -> None:
        """hour(s, Q, u, d, p) -> (s_next, s_mid, residual m^3/h, y at mid-hour)."""
        model, slow = self.model, self._slow
        s = ca.SX.sym("s", len(slow))
        flow = ca.SX.sym("Q")
        u = ca.SX.sym("u", len(model.inputs))
        d = ca.SX.sym("d", len(model.disturbances))
        p = ca.SX.sym("p", len(model.parameters))

        def full(states):
            x: list[Any] = [None] * len(model.states)  # every slot set below
            for k, i in enumerate(slow):
                x[i] = states[k]
            x[self._flow] = flow
            return ca.vertcat(*x)

        def rates(states):
            return model.f(full(states), u, d, p)[slow]

        def rk4(states, h, steps):
            for _ in range(steps):
                k1 = rates(states)
                k2 = rates(states + h / 2 * k1)
                k3 = rates(states + h / 2 * k2)
                k4 = rates(states + h * k3)
                states = states + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            return states

        step = HOUR_S / _SUBSTEPS
        s_next = rk4(s, step, _SUBSTEPS)
        s_mid = rk4(s, step, _SUBSTEPS // 2)
        tau = p[model.parameters.names.index("flow_time_constant")]
        # f's flow row is -r / (tau dr/dQ): times tau it is the Newton step to the balance.
        residual = -tau * model.f(full(s_mid), u, d, p)[self._flow] * HOUR_S
        y = model.h(full(s_mid), u, d, p)
        self._hour = ca.Function("hour", [s, flow, u, d, p], [s_next, s_mid, residual, y])

    def _build_nlp(self):
        """Multiple shooting with w = (z_0 .. z_(K-1), s_K), z_k = (s_k, u_k, Q_k), and
        g = (per hour: transport defect, flow balance, pressures; then input moves; then
        daily volumes). Only the per-hour rows are nonlinear, each in its own z_k, so the
        constraint Jacobian and the Lagrangian's Hessian are block diagonal plus a constant:
        their 18 x 18 blocks are differentiated once for one hour and mapped over the
        horizon (CasADi's own colouring of the 168-hour graph is 20x slower)."""
        model, K = self.model, self.hours
        ns, nu = len(self._slow), len(model.inputs)
        nd, npar = len(model.disturbances), len(model.parameters)
        m, days = ns + nu + 1, math.ceil(K / 24)
        # one hour: cost and nonlinear rows, with their derivatives
        z, d, p = ca.SX.sym("z", m), ca.SX.sym("d", nd), ca.SX.sym("p", npar)
        s_next, _, residual, y = self._hour(z[:ns], z[m - 1], z[ns:m - 1], d, p)
        cost = y[self._cost_row] * (HOUR_S / 3600.0) / _COST_SCALE
        rows = ca.vertcat(s_next, residual, y[self._pressure_rows] / _PRESSURE_SCALE)
        nc = rows.numel()
        sigma, lam = ca.SX.sym("sigma"), ca.SX.sym("lam", nc)
        hessian, _ = ca.hessian(sigma * cost + ca.dot(lam, rows), z)
        shared = {"cse": True}
        value = ca.Function("dra_plan_hour", [z, d, p], [cost, rows], shared)
        slope = ca.Function("dra_plan_hour_slope", [z, d, p],
                            [ca.gradient(cost, z), ca.jacobian(rows, z)], shared)
        curvature = ca.Function("dra_plan_hour_curvature", [z, d, p, sigma, lam],
                                [ca.triu(hessian)], shared)
        if self.compiled:
            try:
                value, slope, curvature = compiled(value), compiled(slope), compiled(curvature)
            except CompileError as error:
                self.compile_note = f"code generation failed, running interpreted: {error}"
                log.warning("DRA planner: %s", self.compile_note)
                self.compiled = False
        # the horizon
        w = ca.MX.sym("w", m * K + ns)
        theta = ca.MX.sym("theta", nd * K + npar + nu)
        Z = ca.reshape(w[:m * K], m, K)
        U, Q = Z[ns:m - 1, :], Z[m - 1, :]
        D = ca.reshape(theta[:nd * K], nd, K)
        P = ca.repmat(theta[nd * K:nd * K + npar], 1, K)
        u_prev = theta[nd * K + npar:]
        costs, hourly = value.map(K)(Z, D, P)
        gradients, jacobians = slope.map(K)(Z, D, P)
        following = ca.horzcat(Z[:ns, 1:], w[m * K:])
        shift = ca.vertcat(-following, ca.MX(nc - ns, K))
        linear = ca.vertcat(
            ca.vec(ca.horzcat(U[:, 0] - u_prev, U[:, 1:] - U[:, :K - 1])),
            ca.vertcat(*[ca.sum2(Q[:, 24 * j:min(24 * (j + 1), K)]) * HOUR_S
                         for j in range(days)]) / _VOLUME_SCALE)
        g = ca.vertcat(ca.vec(hourly + shift), linear)
        f = ca.sum2(costs)
        constant = ca.Function("constant_jacobian", [w, theta],
                               [ca.jacobian(ca.vertcat(ca.vec(shift), linear), w)])
        constant_part = ca.DM(constant(np.zeros(w.numel()), np.zeros(theta.numel())))
        diagonal = ca.horzcat(ca.diagcat(*ca.horzsplit(jacobians, m)), ca.MX(nc * K, ns))
        jacobian = ca.vertcat(diagonal, ca.MX(linear.numel(), w.numel())) + constant_part
        lam_f, lam_g = ca.MX.sym("lam_f"), ca.MX.sym("lam_g", g.numel())
        blocks = curvature.map(K)(Z, D, P, ca.repmat(lam_f, 1, K),
                                      ca.reshape(lam_g[:nc * K], nc, K))
        hess = ca.diagcat(*ca.horzsplit(blocks, m), ca.MX(ns, ns))
        derivatives = {
            "grad_f": ca.Function("grad_f", [w, theta], [f, ca.vertcat(ca.vec(gradients),
                                                                       ca.MX(ns, 1))],
                                  ["x", "p"], ["f", "grad_f_x"]),
            "jac_g": ca.Function("jac_g", [w, theta], [g, jacobian], ["x", "p"],
                                 ["g", "jac_g_x"]),
            "hess_lag": ca.Function("hess_lag", [w, theta, lam_f, lam_g], [hess],
                                    ["x", "p", "lam_f", "lam_g"], ["triu_hess_gamma_x_x"]),
        }
        self._constraints = ca.Function("constraints", [w, theta], [g])
        self._layout = {"ns": ns, "nu": nu, "nd": nd, "nc": nc, "m": m,
                        "days": days}
        options: dict[str, Any] = {
            "ipopt.print_level": 0, "print_time": False, "ipopt.tol": 1e-8,
            "ipopt.acceptable_tol": 1e-6, "ipopt.max_iter": 500,
            "ipopt.mu_strategy": "adaptive", "ipopt.sb": "yes",
            "calc_lam_p": False, "no_nlp_grad": True,  # f and g have no derivatives
            **derivatives}
        return ca.nlpsol("dra_plan", "ipopt", {"x": w, "f": f, "g": g, "p": theta}, options)

    # -- solving -----------------------------------------------------------------------------

    def plan(
        self,
        x0: Mapping[str, float] | Sequence[float],
        tariff: TariffSettings,
        nomination: NominationSettings,
        maop: Sequence[float],
        *,
        u0: Mapping[str, float] | Sequence[float] | None = None,
        d: Mapping[str, float] | None = None,
        start_hour_of_week: int = 0,
        constant_dra_rate: float | None = None,
    ) -> InjectionPlan:
        """The cheapest plan from state ``x0`` (the twin's estimate, model state order or
        by name; the model's parameter values are the estimated ones), with the inputs
        ``u0`` applied now (the first hour's moves start from them; default: no rate
        limit on the first hour) and disturbances ``d`` besides the price held.
        ``maop`` is each station's discharge pressure bound, Pa. ``constant_dra_rate``
        is the constant_dra baseline's rate of every skid, L/h (default: the model's
        nominal injection of skid 1).

        Raises ValueError naming the field and the bound for a nomination the line
        cannot carry or bad MAOP, PlanInfeasibleError when the bounds leave no plan."""
        started = time.perf_counter()
        model, K = self.model, self.hours
        state = _vector(model.states, x0, "x0")
        if len(maop) != self.stations:
            raise ValueError(f"maop: {len(maop)} values for {self.stations} stations")
        for i, bound in enumerate(maop):
            if not bound > 0:
                raise ValueError(f"maop[{i}]: {bound} Pa (station {i + 1}) is not above 0")
        prices = np.asarray(tariff.prices(K, start_hour_of_week))
        d_nominal = _vector(model.disturbances, d or {}, "d")
        D = np.tile(d_nominal[:, None], (1, K))
        D[self._price, :] = prices
        p = model.parameters.nominal
        nominated = self._nominated(nomination)
        self._check_capacity(nomination, nominated, state, d_nominal, p)
        u_prev = None if u0 is None else _vector(model.inputs, u0, "u0")
        parameters = np.concatenate([D.T.ravel(), p, np.zeros(len(model.inputs))
                                     if u_prev is None else u_prev])
        rate = float(model.inputs.nominal[model.inputs.names.index(self.skids[0])]
                if constant_dra_rate is None else constant_dra_rate)
        if not rate >= 0:
            raise ValueError(f"constant_dra_rate: {rate} L/h is below 0")
        flat = np.repeat([volume / (24 * HOUR_S) for volume in nominated[1]], 24)[:K] \
            if nominated[0] is None else nominated[0]
        baselines: dict[str, Baseline] = {}
        starts: list[dict[str, Any]] = []
        for name, injection in (("constant_dra", rate), ("no_dra", 0.0)):
            result = self._solve(state, parameters, nominated, u_prev, prices, maop,
                                 fixed_flow=flat, fixed_injection=injection,
                                 guess=starts[0] if starts else None)
            if result["feasible"]:
                starts.append(result)
                baselines[name] = Baseline(feasible=True, cost=result["cost"],
                                           dra_injection=injection, hours=result["hours"])
            else:
                baselines[name] = Baseline(feasible=False, cost=None, dra_injection=injection,
                                           reason=result["reason"])
        # The problem is not convex: start from each feasible baseline (each is a feasible
        # point of the plan's problem) and keep the cheapest local optimum.
        guesses: list[dict[str, Any] | None] = list(starts) if starts else [None]
        solved = [self._solve(state, parameters, nominated, u_prev, prices, maop, guess=start)
                  for start in guesses]
        feasible = [result for result in solved if result["feasible"]]
        if not feasible:
            raise PlanInfeasibleError(f"no plan within the bounds: {solved[0]['reason']}")
        best = min(feasible, key=lambda result: result["cost"])
        hours = best["hours"]
        dra_price = float(p[model.parameters.names.index("dra_price")])
        dra_cost = sum(dra_price * sum(h.dra_injection) for h in hours) * (HOUR_S / 3600.0)
        return InjectionPlan(
            currency=tariff.currency, start_hour_of_week=start_hour_of_week, hours=hours,
            cost=best["cost"], energy_cost=best["cost"] - dra_cost, dra_cost=dra_cost,
            delivered_volume=[sum(h.flow for h in hours[24 * j:24 * (j + 1)]) * HOUR_S
                              for j in range(self._layout["days"])],
            baselines=baselines, solver_status=best["status"], iterations=best["iterations"],
            compute_time_s=time.perf_counter() - started)

    def _nominated(self, nomination: NominationSettings):
        """(hourly flow or None, daily volumes or None) over the plan's hours."""
        K, days = self.hours, self._layout["days"]
        if nomination.hourly_flow:
            if len(nomination.hourly_flow) < K:
                raise ValueError(f"nomination.hourly_flow: {len(nomination.hourly_flow)} "
                                 f"hours given, {K} needed")
            return np.asarray(nomination.hourly_flow[:K], dtype=float), None
        volumes = nomination.daily_volume
        if len(volumes) == 1:
            volumes = volumes * days
        if len(volumes) < days:
            raise ValueError(f"nomination.daily_volume: {len(volumes)} days given, "
                             f"{days} needed (or one for every day)")
        hours_of_day = [min(24, K - 24 * j) for j in range(days)]
        return None, [v * n / 24 for v, n in zip(volumes[:days], hours_of_day, strict=True)]

    def _bounds(self, name: str) -> tuple[float, float]:
        limit = self.limits.get(name)
        signal = self.model.inputs[name]
        return (limit.lower, limit.upper) if limit else (signal.lower, signal.upper)

    def _capacity(self, x0, d, p) -> tuple[float, float]:
        """Steady flows (m^3/s) with every pump at its lowest speed and no DRA, and at
        its highest speed with every skid at its highest rate: what the line can carry
        for a day, MAOP aside. Concentrations settle over 5 days of hourly steps."""
        bounds = {name: self._bounds(name) for name in self.skids + self.pumps}
        flows = []
        for side in (0, 1):
            u = np.array([bounds[n][side] if n in bounds else 0.0
                          for n in self.model.inputs.names])
            u[[self.model.inputs.names.index(n) for n in self.skids]] *= side
            s = np.asarray(x0)[self._slow]
            for _ in range(120):
                flow = brentq(self._balance, *self._flow_bounds(), args=(s, u, d, p))
                s = np.asarray(self._hour(s, flow, u, d, p)[0]).ravel()
            flows.append(flow)
        return flows[0], flows[1]

    def _balance(self, flow, s, u, d, p) -> float:
        """The hour's head balance at ``flow``, m^3/h (zero at the steady flow)."""
        return float(self._hour(s, flow, u, d, p)[2])

    def _flow_bounds(self) -> tuple[float, float]:
        signal = self.model.states["flow"]
        return signal.lower, signal.upper

    def _check_capacity(self, nomination, nominated, x0, d, p) -> None:
        low, high = self._capacity(x0, d, p)
        hourly, daily = nominated
        if hourly is not None:
            checks = [(f"nomination.hourly_flow[{k}]", q, low, high, "m^3/s")
                      for k, q in enumerate(hourly)]
        else:
            days = [min(24, self.hours - 24 * j) * HOUR_S for j in range(len(daily))]
            checks = [(f"nomination.daily_volume[{j}]", v, low * n, high * n, "m^3")
                      for j, (v, n) in enumerate(zip(daily, days, strict=True))]
        for field, value, lower, upper, unit in checks:
            if value > upper:
                raise ValueError(f"{field}: {value:.6g} {unit} is above {upper:.6g} {unit}, "
                                 "what the line carries with every pump at its highest "
                                 "speed and every skid at its highest rate")
            if value < lower:
                raise ValueError(f"{field}: {value:.6g} {unit} is below {lower:.6g} {unit}, "
                                 "what the line carries with every pump at its lowest "
                                 "speed and no DRA")

    def _solve(self, x0, parameters, nominated, u_prev, prices, maop, *, fixed_flow=None,
               fixed_injection=None, guess=None) -> dict:
        model, K = self.model, self.hours
        ns, nu, m = (self._layout[key] for key in ("ns", "nu", "m"))
        days, stations = self._layout["days"], self.stations
        # variable bounds: z_k = (s_k, u_k, Q_k), then s_K
        low = np.array([model.states[i].lower for i in self._slow]
                       + [self._bounds(n)[0] for n in model.inputs.names] + [0.0])
        high = np.array([model.states[i].upper for i in self._slow]
                        + [self._bounds(n)[1] for n in model.inputs.names] + [0.0])
        low[m - 1], high[m - 1] = self._flow_bounds()
        if fixed_injection is not None:
            for name in self.skids:
                index = ns + model.inputs.names.index(name)
                low[index] = high[index] = fixed_injection
        lbx = np.concatenate([np.tile(low, K), low[:ns]])
        ubx = np.concatenate([np.tile(high, K), high[:ns]])
        lbx[:ns] = ubx[:ns] = x0[self._slow]
        hourly, daily = nominated
        flows = fixed_flow if fixed_flow is not None else hourly
        if flows is not None:
            lbx[m - 1:m * K:m] = ubx[m - 1:m * K:m] = flows
        # constraint bounds: per hour (defect, balance, pressures), moves, daily volumes
        hour_low = np.concatenate([np.zeros(ns + 1), np.full(stations, -np.inf)])
        hour_high = np.concatenate([np.zeros(ns + 1), np.asarray(maop) / _PRESSURE_SCALE])
        moves = np.tile([self.limits[n].max_rate * HOUR_S if n in self.limits else np.inf
                         for n in model.inputs.names], K)
        if u_prev is None:
            moves[:nu] = np.inf
        volume = np.full(days, np.inf) if daily is None else np.asarray(daily) / _VOLUME_SCALE
        lbg = np.concatenate([np.tile(hour_low, K), -moves,
                              -volume if daily is None else volume])
        ubg = np.concatenate([np.tile(hour_high, K), moves, volume])
        if guess is not None:
            w0 = guess["w"]
        else:
            mean_flow = np.mean(flows) if flows is not None else sum(daily) / (K * HOUR_S)
            z0 = np.concatenate([x0[self._slow], model.inputs.nominal, [mean_flow]])
            w0 = np.concatenate([np.tile(z0, K), x0[self._slow]])
        solution = self._solver(x0=np.clip(w0, lbx, ubx), p=parameters, lbx=lbx, ubx=ubx,
                                lbg=lbg, ubg=ubg)
        stats = self._solver.stats()
        w = np.asarray(solution["x"]).ravel()
        # g afresh at the returned point: after a failed solve the solver's g may be zeros
        g = np.asarray(self._constraints(w, parameters)).ravel()
        violation = np.maximum(lbg - g, 0) + np.maximum(g - ubg, 0)
        result = {"w": w, "status": stats["return_status"], "iterations": stats["iter_count"]}
        status = stats["return_status"]
        if (status not in _JUDGED or not np.all(np.isfinite(g))) and guess is not None:
            # a failed solve from a warm start: once more from the cold start
            return self._solve(x0, parameters, nominated, u_prev, prices, maop,
                               fixed_flow=fixed_flow, fixed_injection=fixed_injection)
        if status not in _JUDGED or not np.all(np.isfinite(g)):
            # IPOPT may stop at once (Invalid_Number_Detected) on a problem whose MAOP
            # bounds leave no interior: the same diagnosis as for a violated solution
            return self._without_maop(
                x0, parameters, nominated, u_prev, prices, maop, fixed_flow, fixed_injection,
                result, f"the solver stopped with {status} after {stats['iter_count']} "
                "iterations")
        if violation.max() > _FEASIBILITY_TOLERANCE:
            return self._without_maop(
                x0, parameters, nominated, u_prev, prices, maop, fixed_flow, fixed_injection,
                result, self._describe(violation, stats))
        hours = self._hours(w, parameters, prices)
        result.update(feasible=True, hours=hours, cost=sum(h.cost for h in hours))
        return result

    def _without_maop(self, x0, parameters, nominated, u_prev, prices, maop, fixed_flow,
                      fixed_injection, failed: dict, failure: str) -> dict:
        """What a failed solve (``failed``, which ``failure`` describes) becomes once the
        same problem is solved without the MAOP bounds.

        If that relaxed optimum keeps every pressure within MAOP it is a feasible point
        of the bounded problem, and so its optimum: it is returned, feasible (IPOPT may
        fail on the bounded problem of a baseline, whose flows and injection leave the
        pump speeds no freedom, and converge on the relaxed one). Otherwise the result is
        infeasible with the reason: MAOP, named with the highest pressure the flows need,
        when they can be carried without it; else ``failure``. When the relaxed problem
        fails too and the injection is free, the operation with every skid at its highest
        rate from the first hour (the first move unbounded) is tried for the diagnosis: a
        far simpler problem, so it does not hang on IPOPT converging the free one from a
        cold start (it may stop with Invalid_Number_Detected)."""
        failed.update(feasible=False, reason=failure)
        if all(math.isinf(bound) for bound in maop):
            return failed
        unbounded = [math.inf] * self.stations
        attempts: list[tuple[float | None, Any, str]] = [
            (fixed_injection, u_prev, "without the bound")]
        if fixed_injection is None:
            full = min(self._bounds(name)[1] for name in self.skids)
            attempts.append((full, None, f"without the bound, every skid at {full:g} L/h"))
        for attempt, (injection, previous, how) in enumerate(attempts):
            free = self._solve(x0, parameters, nominated, previous, prices, unbounded,
                               fixed_flow=fixed_flow, fixed_injection=injection)
            if not free["feasible"]:
                failed["reason"] = free["reason"]
                continue
            excess, hour, station = max(
                (h.discharge_pressure[i] - maop[i], h.hour, i)
                for h in free["hours"] for i in range(self.stations))
            if excess <= _FEASIBILITY_TOLERANCE * _PRESSURE_SCALE:
                if attempt == 0:
                    return free
                failed["reason"] = failure
                return failed
            pressure = free["hours"][hour].discharge_pressure[station]
            failed["reason"] = (
                f"needs discharge_pressure_{station + 1} above MAOP {maop[station]:.4g} "
                f"Pa: {pressure:.4g} Pa at hour {hour} {how}")
            return failed
        return failed

    def _describe(self, violation, stats) -> str:
        """The worst violated constraint, by hour."""
        ns, nu, nc, K = self._layout["ns"], self._layout["nu"], self._layout["nc"], self.hours
        worst = int(np.argmax(violation))
        solver = f"(IPOPT: {stats['return_status']})"
        if worst < nc * K:
            hour, row = divmod(worst, nc)
            if row > ns:
                return f"hour {hour}: discharge_pressure_{row - ns} above MAOP {solver}"
            if row == ns:
                return (f"hour {hour}: the pumps at their speed limits cannot carry the flow "
                        f"(head balance off by {violation[worst]:.3g} m^3/h) {solver}")
            return f"hour {hour}: DRA transport off by {violation[worst]:.3g} ppm {solver}"
        if worst < nc * K + nu * K:
            hour, index = divmod(worst - nc * K, nu)
            return (f"hour {hour}: {self.model.inputs.names[index]} moves faster than its "
                    f"max_rate {solver}")
        return f"day {worst - nc * K - nu * K}: daily volume not met {solver}"

    def _hours(self, w, parameters, prices) -> list[PlanHour]:
        model, K = self.model, self.hours
        ns, nd, m = (self._layout[key] for key in ("ns", "nd", "m"))
        Z = w[:m * K].reshape(K, m)
        D = parameters[:nd * K].reshape(K, nd)
        p = parameters[nd * K:nd * K + len(model.parameters)]
        skid = [model.inputs.names.index(n) for n in self.skids]
        pump = [model.inputs.names.index(n) for n in self.pumps]
        hours = []
        for k in range(K):
            s, u, flow = Z[k, :ns], Z[k, ns:m - 1], Z[k, m - 1]
            y = np.asarray(self._hour(s, flow, u, D[k], p)[3]).ravel()
            hours.append(PlanHour(
                hour=k, electricity_price=float(prices[k]), flow=float(flow),
                dra_injection=[float(u[i]) for i in skid],
                pump_speed=[float(u[i]) for i in pump],
                discharge_pressure=[float(y[i]) for i in self._pressure_rows],
                station_power=[float(y[i]) for i in self._power_rows],
                cost=float(y[self._cost_row]) * HOUR_S / 3600.0))
        return hours


def station_maop(site: SiteConfig, asset: AssetConfig, model: PlantModel) -> list[float]:
    """Each station's discharge pressure bound, Pa: the lowest of the model's bound on
    ``discharge_pressure_i`` (its MAOP) and the ``above`` of every trip interlock of the
    site watching it, so a plan never trips the line."""
    bounds = []
    for i in range(1, sum(n.startswith("pump_speed_") for n in model.inputs.names) + 1):
        signal = f"discharge_pressure_{i}"
        trips = [lock.above for lock in site.interlocks if isinstance(lock, TripInterlock)
                 and f"{asset.id}.{signal}" in lock.when]
        bounds.append(min([model.outputs[signal].upper, *trips]))
    return bounds


def _vector(signals, values, field: str) -> np.ndarray:
    """``values`` (by name, the rest at nominal, or a full vector) as a vector in the
    order of ``signals``; unknown names or a wrong length raise ValueError naming ``field``."""
    if isinstance(values, Mapping):
        unknown = sorted(set(values) - set(signals.names))
        if unknown:
            raise ValueError(f"{field}: unknown signals {unknown}")
        return np.array([values.get(s.name, s.nominal) for s in signals], dtype=float)
    vector = np.asarray(values, dtype=float).ravel()
    if vector.size != len(signals):
        raise ValueError(f"{field}: {vector.size} values for {len(signals)} signals")
    return vector
