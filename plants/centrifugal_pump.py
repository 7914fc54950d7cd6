"""Pipeline centrifugal pump with health monitoring: PHYSICS.md section 5.

A variable-speed pump lifting product from a suction tank into a pipeline through a
discharge control valve. Pump curves at rated speed N_r, for flow Q [m3/s]:

    H_r(Q)   = A - B Q^C,  B = (A - H_d) / Q_d^C     EPANET three-point power law
    eta_r(Q) = sum_k e_k (Q / Q_d)^k,  k = 1..n       least-squares polynomial, eta_r(0) = 0

Affinity laws with speed ratio s = N / N_r, homologous flow q = Q / s, and the health
factors k_H (head) and k_eta (efficiency):

    H       = k_H s^2 H_r(q)                            pump head, m
    eta     = k_eta eta_r(q)                            pump efficiency
    P_shaft = rho g Q H / eta                           shaft power (∝ s^3 at fixed q)
    P_elec  = P_shaft / eta_motor                       electric power
    P_loss  = P_shaft - rho g Q H = (1 - eta) P_shaft   power lost in the pump

Because eta_r has no constant term, rho g Q H / eta = rho g H s Q_d / (k_eta sum_k e_k
(q/Q_d)^(k-1)): the shaft power stays finite at shutoff instead of dividing by zero.

System curve (static head, suction, pipeline and valve friction; valve opening o):

    H_sys  = (p_del - p_src)/(rho g) + z_del - z + (K_s + K_pipe + K_v/(o^2 + o_leak^2)) Q^2
    p_suct = p_src + rho g (z - K_s Q^2),    p_disch = p_suct + rho g H

Operating point: the flow is a state that lags, with time constant tau, toward one Newton
step of the intersection H(Q) = H_sys(Q):

    g(Q) = H(Q) - H_sys(Q),   D(Q) = -dg/dQ + D_min > 0
    tau dQ/dt = max(Q + g(Q)/D(Q), 0) - Q

Near the operating point dQ/dt = g/(tau D), so the head mismatch g decays as
exp(-t/tau) whatever the valve opening (no stiffness when throttled), and the steady
state is exactly the intersection. When the static head exceeds the shutoff head the
target is zero flow: the discharge check valve closes. max(., 0) and the flow inside the
power law are smooth maxima (sqrt(x^2 + eps^2)); D_min = 0.05 A / Q_d keeps D > 0 at
zero flow, where both curve slopes vanish.

Suction (PHYSICS.md: NPSH_a = (p_s - p_v)/(rho g) + z - h_f) and cavitation:

    NPSH_a = (p_src - p_vap)/(rho g) + z - K_s Q^2
    NPSH_3 = s^2 (a_3 + (b_3 - a_3) (q/Q_d)^2)          grows with flow, scales with s^2
    margin = NPSH_a - NPSH_3

Bearing and vibration (health states):

    C_b dT_b/dt = P_loss - G_b (T_b - T_amb)       steady T_b = T_amb + P_loss / G_b
    v = s v_bep (1 + k_bep (q/Q_bep - 1)^2) + v_cav (1 - tanh((margin - m_c)/(2 w_c)))/2 + v_drift
    d v_drift/dt = 0,  d k_H/dt = 0,  d k_eta/dt = 0     random walks the estimator tracks

Signals (SI):
    states:       flow [m3/s], T_bearing [K], vibration_drift [m/s], head_factor [1],
                  efficiency_factor [1]
    inputs:       speed [rad/s] shaft speed, valve_opening [1] discharge valve, 0..1
    disturbances: p_source [Pa] absolute pressure on the suction tank surface,
                  suction_level [m] liquid level above the pump centreline,
                  p_delivery [Pa] absolute pressure at the delivery point,
                  T_ambient [K]
    outputs:      p_suction [Pa], p_discharge [Pa] (absolute), flow [m3/s], power [W]
                  electric, T_bearing [K], vibration [m/s] RMS velocity, npsh_margin [m]
                  (derived from the model, not a sensor)
    parameters:   see ``build_model``.

Simplifications: incompressible product, velocity heads and the elevation between the
pressure taps neglected; constant motor efficiency; the fraction of the pump's loss
power that reaches the bearing oil is absorbed in G_b, and T_b - T_amb stands for the
oil temperature rise; vibration is an overall RMS (no bearing defect frequencies); no
reverse flow, no seal leakage, no transient pressure waves (rigid liquid column).

The default pump is an illustrative pipeline pump, not a vendor datasheet (PHYSICS.md's
"(unverified)" defaults): 3570 rpm, 0.10 m3/s at 200 m, BEP 80 % at 0.10 m3/s, in diesel.
EPANET's documented example curve is used only to test the fits: its exponent
C = ln 2 / ln 3 < 1 gives an unbounded head slope at zero flow, unsuitable for an EKF.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import casadi as ca
import msgspec
import numpy as np

from engine.config import (
    AlarmSettings,
    AssetConfig,
    ControllerSettings,
    EstimatorSettings,
    PlantDefaults,
    SetpointLimit,
)
from engine.model import PlantModel
from engine.signals import Signal
from plants.views import Curve, HealthFinding, PumpView

KIND = "centrifugal_pump"
GRAVITY = 9.80665
"""Standard gravity, m/s^2."""
RPM = 2 * math.pi / 60
"""One revolution per minute in rad/s."""

RATED_SPEED = 3570 * RPM
"""Two-pole induction motor on 60 Hz at full load, rad/s."""
HEAD_CURVE = ((0.0, 230.0), (0.10, 200.0), (0.15, 160.0))
"""(flow m3/s, head m) at rated speed: shutoff, design point, maximum flow."""
EFFICIENCY_CURVE = ((0.03, 0.45), (0.06, 0.70), (0.10, 0.80), (0.14, 0.74))
"""(flow m3/s, efficiency) at rated speed; the cubic fit misses them by < 0.06 points."""

DEFAULTS = PlantDefaults(
    period_s=10.0,
    reference={"flow": 0.10},
    limits={
        "speed": SetpointLimit(lower=0.8 * RATED_SPEED, upper=RATED_SPEED, max_rate=10.0),
        "valve_opening": SetpointLimit(lower=0.1, upper=1.0, max_rate=0.02),
    },
    controller=ControllerSettings(
        backend="fast",
        horizon=30,
        tracking={"flow": 1.0},
        move_suppression={"speed": 0.1, "valve_opening": 1.0},
        real_time_iteration=True,
    ),
    estimator=EstimatorSettings(
        process_std={"flow": 2e-4, "T_bearing": 0.02, "vibration_drift": 2e-6,
                     "head_factor": 1e-4, "efficiency_factor": 1e-4},
        initial_std={"flow": 5e-3, "T_bearing": 2.0, "vibration_drift": 5e-4,
                     "head_factor": 0.05, "efficiency_factor": 0.05},
    ),
    alarms=[
        AlarmSettings(signal="vibration", kind="HI", limit=3.0e-3, deadband=2e-4,
                      on_delay_s=25.0, priority="MEDIUM",
                      message="vibration above API 610's 3.0 mm/s RMS: bearings, "
                              "misalignment or running off BEP"),
        AlarmSettings(signal="npsh_margin", kind="LO", limit=1.0, deadband=0.5,
                      on_delay_s=25.0, priority="HIGH",
                      message="NPSH margin below 1 m: cavitation; raise suction or cut flow"),
        AlarmSettings(signal="T_bearing", kind="HI", limit=298.15 + 30.0, deadband=1.0,
                      priority="MEDIUM",
                      message="bearing oil 30 K over a 25 °C ambient (API 612/619)"),
        AlarmSettings(signal="estimate.head_factor", kind="LO", limit=0.95, deadband=0.005,
                      priority="LOW", name="head_loss",
                      message="head 5 % below the new pump: impeller or wear-ring wear"),
        AlarmSettings(signal="estimate.efficiency_factor", kind="LO", limit=0.95,
                      deadband=0.005, priority="LOW", name="efficiency_loss",
                      message="efficiency 5 % below the new pump: leakage or friction"),
        AlarmSettings(signal="kpi.health_index", kind="LO", limit=0.25, deadband=0.05,
                      priority="MEDIUM", name="health_index",
                      message="pump health below 0.25: a wear, oil or vibration signal has "
                              "used three quarters of its allowance; plan maintenance"),
    ],
)
"""Delivery of 0.10 m3/s (360 m3/h) by speed, the valve held open.

A 10 s period resolves the flow lag (tau = 5 s, RK4 sub-step 2.5 s) and matches pipeline
SCADA polling (2-10 s); the 30-step horizon (5 min) spans a VFD ramp and a valve stroke.
Bearing temperature (30 min) and wear (days to months) are slow at this rate. The VFD
ramps at most 10 rad/s per second (about 95 rpm/s) and stays above 80 % of rated speed:
below about 64 % the shutoff head falls under the nominal static head (the pump
deadheads) and below 80 % the flow leaves API 610's preferred operating region (70 % of
BEP) even with the valve open. The valve strokes 2 %/s. Valve moves
are penalised more than speed moves, so the controller throttles by speed.

The controller is the "fast" backend with one Gauss-Newton SQP iteration per step
(real-time iteration): a tracking cost on a model this mildly nonlinear needs no more, and
it follows a flow reference step as do-mpc's converged IPOPT solve does
(tests/plants/test_centrifugal_pump_control.py) at a thirtieth of its CPU time per
tick (CPU p50 2.1 ms against 63 ms at horizon 30, load average 9). Its generated C (4 MB)
takes minutes to compile on a busy machine, so it runs on CasADi's virtual machine.

The health factors' random walks (1e-4 per sqrt(s): 0.6 % in an hour, 3 % in a day)
let the EKF follow wear within hours while pressure noise (1.2 m of head per sample)
averages out; their 5 % initial std admits a pump of unknown condition.

Alarms hold the health_report limits (HealthLimits): vibration 3.0 mm/s RMS (API 610),
bearing oil 30 K over the nominal 25 °C ambient (API 612/619), NPSH margin 1 m, 5 % head
and efficiency loss. Vibration and NPSH margin wait 25 s (the third tick) and have
deadbands of 2 and 1 noise std so a noisy sample or a transient does not chatter.
The health index (plants.pump_health: the least unused share of any of those allowances,
from the trends' fitted levels) alarms at 0.25, ahead of the limits themselves; its
deadband of 0.05 is a quarter of a 5 % loss's allowance, five times the factors' std."""


# -- curve fits: plain functions on datasheet points --------------------------------------------

def fit_power_curve(points: Sequence[Sequence[float]]) -> tuple[float, float, float]:
    """EPANET's three-point pump curve H = A - B Q^C (EPANET 2.2, input3.c ``powercurve``).

    ``points`` are (flow, head) at shutoff (flow 0), at the design point and at maximum
    flow, in any consistent units. With h4 = H0 - H1 and h5 = H0 - H2:

        A = H0,   C = ln(h5 / h4) / ln(Q2 / Q1),   B = h4 / Q1^C

    Raises ValueError, as EPANET rejects the curve, unless Q0 = 0 < Q1 < Q2,
    H0 > H1 > H2, H0 > 0 and 0 < C <= 20.
    """
    if len(points) != 3:
        raise ValueError(f"head curve: needs 3 (flow, head) points, got {len(points)}")
    (q0, h0), (q1, h1), (q2, h2) = ((float(q), float(h)) for q, h in points)
    if q0 != 0.0:
        raise ValueError(f"head curve: the first point must be at zero flow, got flow {q0:g}")
    if not 0.0 < q1 < q2:
        raise ValueError(f"head curve: flows must rise 0 < {q1:g} < {q2:g}")
    if not (h0 > 0.0 and h0 > h1 > h2):
        raise ValueError(f"head curve: heads must fall from a positive shutoff head, "
                         f"got {h0:g} > {h1:g} > {h2:g}")
    exponent = math.log((h0 - h2) / (h0 - h1)) / math.log(q2 / q1)
    if not 0.0 < exponent <= 20.0:
        raise ValueError(f"head curve: exponent C = {exponent:g} is outside (0, 20]")
    return h0, (h0 - h1) / q1**exponent, exponent


def fit_efficiency_polynomial(
    points: Sequence[Sequence[float]], degree: int, reference_flow: float
) -> np.ndarray:
    """Coefficients e_1..e_n of eta(Q) = sum_k e_k (Q / Q_ref)^k, least squares on points.

    No constant term: a pump does no hydraulic work at zero flow, and eta(Q)/Q stays
    finite, so the shaft power rho g Q H / eta does too. With ``degree`` equal to the
    number of points the polynomial interpolates them exactly (it may overshoot between
    them); with fewer it smooths them. ``points`` are (flow, efficiency 0..1).
    """
    flows, efficiencies = (np.array(column, dtype=float) for column in zip(*points, strict=True))
    if not 1 <= degree <= len(flows):
        raise ValueError(f"efficiency curve: degree must be 1..{len(flows)} (the number of "
                         f"points), got {degree}")
    if not reference_flow > 0:
        raise ValueError(f"efficiency curve: reference flow must be positive, got {reference_flow}")
    if np.any(flows <= 0):
        raise ValueError(f"efficiency curve: flows must be positive, got {flows.min():g}")
    if np.any((efficiencies <= 0) | (efficiencies > 1)):
        raise ValueError("efficiency curve: efficiencies must be in (0, 1], got "
                         f"{efficiencies.min():g}..{efficiencies.max():g}")
    ratios = flows / reference_flow
    basis = np.column_stack([ratios**k for k in range(1, degree + 1)])
    coefficients, *_ = np.linalg.lstsq(basis, efficiencies, rcond=None)
    return coefficients


def efficiency(coefficients: Sequence[float] | np.ndarray, flow_ratio):
    """eta = sum_k e_k r^k at r = Q / Q_ref; floats or CasADi expressions."""
    return flow_ratio * _efficiency_over_ratio(coefficients, flow_ratio)


def best_efficiency_ratio(coefficients: Sequence[float] | np.ndarray, upper_ratio: float) -> float:
    """Flow ratio r in (0, upper_ratio] where the efficiency polynomial peaks."""
    derivative = np.polynomial.Polynomial([0.0, *coefficients]).deriv()
    candidates = [r.real for r in np.asarray(derivative.roots(), dtype=complex)
                  if abs(r.imag) < 1e-12 and 0.0 < r.real < upper_ratio] + [upper_ratio]
    return float(max(candidates, key=lambda r: efficiency(coefficients, r)))


def _efficiency_over_ratio(coefficients: Sequence[float] | np.ndarray, r):
    """eta / r = e_1 + e_2 r + ... + e_n r^(n-1), by Horner."""
    total = coefficients[-1]
    for coefficient in reversed(coefficients[:-1]):
        total = total * r + coefficient
    return total


# -- physics shared by the CasADi model and the health report ----------------------------------

def _smooth_positive(value, width):
    """max(value, 0) smoothed over ``width``: (value + sqrt(value^2 + width^2)) / 2 > 0."""
    return 0.5 * (value + ca.sqrt(value * value + width * width))


def _pump_quantities(x: Mapping, u: Mapping, d: Mapping, p: Mapping, order: int) -> dict:
    """Every derived quantity of the pump at (x, u, d, p), in SI. Values are floats or
    CasADi expressions alike; ``order`` is the efficiency polynomial's degree."""
    rho_g = p["density"] * GRAVITY
    Q_d = p["design_flow"]
    s = u["speed"] / p["rated_speed"]
    flow = x["flow"]
    Q = _smooth_positive(flow, 1e-4 * Q_d)  # inside the power law and the Newton step
    r = Q / (s * Q_d)
    A, C, k_H = p["shutoff_head"], p["head_exponent"], x["head_factor"]
    head = k_H * s**2 * (A - (A - p["design_head"]) * r**C)
    opening = u["valve_opening"]
    resistance = (p["suction_loss"] + p["pipe_loss"]
                  + p["valve_loss"] / (opening**2 + p["valve_leak"] ** 2))
    static_head = ((d["p_delivery"] - d["p_source"]) / rho_g
                   + p["delivery_elevation"] - d["suction_level"])
    mismatch = head - static_head - resistance * Q**2
    slope = (k_H * s * C * (A - p["design_head"]) * r ** (C - 1) / Q_d
             + 2 * resistance * Q + 0.05 * A / Q_d)
    coefficients = [p[f"efficiency_{k}"] for k in range(1, order + 1)]
    shaft_power = rho_g * head * s * Q_d / (x["efficiency_factor"]
                                            * _efficiency_over_ratio(coefficients, r))
    hydraulic_power = rho_g * flow * head
    p_suction = d["p_source"] + rho_g * (d["suction_level"] - p["suction_loss"] * flow**2)
    npsh_available = (d["p_source"] - p["vapour_pressure"]) / rho_g + d["suction_level"] \
        - p["suction_loss"] * flow**2
    npsh_required = (s**2 * p["npsh3_shutoff"]
                     + (p["npsh3_design"] - p["npsh3_shutoff"]) * (flow / Q_d) ** 2)
    npsh_margin = npsh_available - npsh_required
    bep_ratio = flow / (s * p["bep_flow"])
    cavitation = 0.5 * (1 - ca.tanh((npsh_margin - p["cavitation_margin"])
                                    / (2 * p["cavitation_width"])))
    vibration = (s * p["vibration_bep"] * (1 + p["vibration_off_bep"] * (bep_ratio - 1) ** 2)
                 + p["vibration_cavitation"] * cavitation + x["vibration_drift"])
    return {
        "flow_target": _smooth_positive(Q + mismatch / slope, 1e-4 * Q_d),
        "head": head, "system_head": static_head + resistance * Q**2,
        "efficiency": hydraulic_power / shaft_power,
        "loss_power": shaft_power - hydraulic_power,
        "electric_power": shaft_power / p["motor_efficiency"],
        "p_suction": p_suction, "p_discharge": p_suction + rho_g * head,
        "npsh_available": npsh_available, "npsh_required": npsh_required,
        "npsh_margin": npsh_margin, "bep_ratio": bep_ratio, "vibration": vibration,
    }


# -- the model ----------------------------------------------------------------------------------

def build_model(
    dt: float = 10.0,
    head_curve: Sequence[Sequence[float]] = HEAD_CURVE,
    efficiency_curve: Sequence[Sequence[float]] = EFFICIENCY_CURVE,
    efficiency_degree: int = 3,
) -> PlantModel:
    """The pump on its pipeline, step ``dt`` s, with curves from datasheet points at rated
    speed (``head_curve``: EPANET's three points; ``efficiency_curve``: any points, fitted
    by a polynomial of ``efficiency_degree``). The fitted coefficients become parameters.

    The nominal signals are the steady state at the design point (rated speed, valve 80 %
    open, design flow, no wear): the delivery pressure is set so the system curve passes
    through the design point, and the bearing sits at its loss-power equilibrium.
    """
    shutoff_head, _, exponent = fit_power_curve(head_curve)
    if exponent < 1.0:
        raise ValueError(f"head curve: exponent C = {exponent:g} must be at least 1 for a "
                         "finite head slope at zero flow")
    design_flow, design_head = (float(v) for v in head_curve[1])
    coefficients = fit_efficiency_polynomial(efficiency_curve, efficiency_degree, design_flow)
    max_flow, min_speed_ratio = 3.0 * design_flow, 0.3
    _require_positive_efficiency(coefficients, max_flow / (min_speed_ratio * design_flow))
    bep_ratio = best_efficiency_ratio(coefficients, float(head_curve[2][0]) / design_flow)

    parameters = [
        Signal("density", "kg/m3", 830.0, 600.0, 1100.0, "product density (diesel)"),
        Signal("vapour_pressure", "Pa", 3.0e4, 0.0, 2.0e5, "product vapour pressure"),
        Signal("rated_speed", "rad/s", RATED_SPEED, 50.0, 700.0, "speed of the curves"),
        Signal("shutoff_head", "m", shutoff_head, 1.0, 2000.0, "A: head at zero flow"),
        Signal("design_flow", "m3/s", design_flow, 1e-4, 10.0, "Q_d: design point flow"),
        Signal("design_head", "m", design_head, 1.0, 2000.0, "H_d: design point head"),
        Signal("head_exponent", "1", exponent, 1.0, 20.0, "C of H = A - B Q^C"),
        *[Signal(f"efficiency_{k}", "1", float(c), -100.0, 100.0,
                 f"e_{k}: coefficient of (Q/Q_d)^{k} in the efficiency curve")
          for k, c in enumerate(coefficients, start=1)],
        Signal("bep_flow", "m3/s", bep_ratio * design_flow, 1e-4, 10.0,
               "best efficiency flow at rated speed (peak of the fitted curve)"),
        Signal("motor_efficiency", "1", 0.95, 0.5, 1.0, "motor and drive efficiency"),
        Signal("suction_loss", "m/(m3/s)^2", 100.0, 0.0, 1e6, "K_s: suction line friction"),
        Signal("pipe_loss", "m/(m3/s)^2", 1.0e4, 0.0, 1e8, "K_pipe: pipeline friction"),
        Signal("valve_loss", "m/(m3/s)^2", 400.0, 0.0, 1e7, "K_v: valve fully open"),
        Signal("valve_leak", "1", 0.02, 1e-3, 0.5, "o_leak: equivalent opening when shut"),
        Signal("delivery_elevation", "m", 30.0, -1000.0, 3000.0,
               "z_del: delivery point above the pump centreline"),
        Signal("flow_time_constant", "s", 5.0, 0.1, 600.0, "tau: flow lag"),
        Signal("npsh3_shutoff", "m", 2.5, 0.0, 100.0, "a_3: NPSH_3 at zero flow, rated speed"),
        Signal("npsh3_design", "m", 6.0, 0.1, 100.0, "b_3: NPSH_3 at design flow, rated speed"),
        Signal("bearing_conductance", "W/K", 2500.0, 1.0, 1e6,
               "G_b: loss power per kelvin of bearing rise"),
        Signal("bearing_capacity", "J/K", 4.5e6, 1e3, 1e9, "C_b: bearing housing and oil"),
        Signal("vibration_bep", "m/s", 1.5e-3, 0.0, 0.05, "v_bep: RMS at BEP, rated speed"),
        Signal("vibration_off_bep", "1", 3.0, 0.0, 100.0, "k_bep: growth off BEP"),
        Signal("vibration_cavitation", "m/s", 4.0e-3, 0.0, 0.05,
               "v_cav: added RMS when cavitating"),
        Signal("cavitation_margin", "m", 1.0, -10.0, 50.0, "m_c: NPSH margin at half v_cav"),
        Signal("cavitation_width", "m", 0.5, 0.01, 50.0, "w_c: width of the cavitation onset"),
    ]
    names = {s.name: s.nominal for s in parameters}
    speed = Signal("speed", "rad/s", RATED_SPEED, min_speed_ratio * RATED_SPEED,
                   1.05 * RATED_SPEED, "shaft speed (VFD setpoint)")
    valve = Signal("valve_opening", "1", 0.8, 0.0, 1.0, "discharge control valve opening")
    u0 = {"speed": speed.nominal, "valve_opening": valve.nominal}
    d0 = {"p_source": 101325.0, "suction_level": 5.0, "T_ambient": 298.15}
    x0 = {"flow": design_flow, "T_bearing": d0["T_ambient"], "vibration_drift": 0.0,
          "head_factor": 1.0, "efficiency_factor": 1.0}
    d0["p_delivery"] = _balancing_delivery_pressure(x0, u0, d0, names)
    if not d0["p_delivery"] > 0:
        raise ValueError(f"centrifugal pump: the design head {design_head:g} m cannot overcome "
                         "the system friction at the design flow; lower the losses")
    at_design = _pump_quantities(x0, u0, d0, names, efficiency_degree)
    x0["T_bearing"] += at_design["loss_power"] / names["bearing_conductance"]
    y0 = _pump_quantities(x0, u0, d0, names, efficiency_degree)

    states = [
        Signal("flow", "m3/s", design_flow, 0.0, max_flow, "delivered flow", std=2e-4),
        Signal("T_bearing", "K", x0["T_bearing"], 233.15, 423.15, "bearing oil temperature",
               std=0.02),
        Signal("vibration_drift", "m/s", 0.0, -5e-3, 0.05, "vibration above the model baseline",
               std=2e-6),
        Signal("head_factor", "1", 1.0, 0.5, 1.1, "k_H: head relative to the new pump",
               std=1e-4),
        Signal("efficiency_factor", "1", 1.0, 0.5, 1.1, "k_eta: efficiency relative to new",
               std=1e-4),
    ]
    disturbances = [
        Signal("p_source", "Pa", d0["p_source"], 1e4, 5e6, "absolute pressure on the suction tank"),
        Signal("suction_level", "m", d0["suction_level"], -10.0, 50.0,
               "suction liquid level above the pump centreline"),
        Signal("p_delivery", "Pa", d0["p_delivery"], 1e4, 2e7, "absolute delivery pressure"),
        Signal("T_ambient", "K", d0["T_ambient"], 233.15, 323.15, "ambient temperature"),
    ]
    outputs = [
        Signal("p_suction", "Pa", y0["p_suction"], 0.0, 5e6, "suction pressure, absolute",
               std=2e3),
        Signal("p_discharge", "Pa", y0["p_discharge"], 0.0, 2.5e7, "discharge pressure, absolute",
               std=1e4),
        Signal("flow", "m3/s", design_flow, 0.0, max_flow, "flowmeter", std=2e-4),
        Signal("power", "W", y0["electric_power"], 0.0, 5e6, "electric power", std=1e3),
        Signal("T_bearing", "K", x0["T_bearing"], 233.15, 423.15, "bearing oil RTD", std=0.2),
        Signal("vibration", "m/s", y0["vibration"], 0.0, 0.05, "bearing housing RMS velocity",
               std=1e-4),
        Signal("npsh_margin", "m", y0["npsh_margin"], -100.0, 1000.0,
               "NPSH_a - NPSH_3 (computed, not measured)", std=0.5),
    ]

    def dynamics(x, u, d, p):
        q = _pump_quantities(x, u, d, p, efficiency_degree)
        zero = ca.SX(0.0)
        return {
            "flow": (q["flow_target"] - x["flow"]) / p["flow_time_constant"],
            "T_bearing": (q["loss_power"] - p["bearing_conductance"]
                          * (x["T_bearing"] - d["T_ambient"])) / p["bearing_capacity"],
            "vibration_drift": zero, "head_factor": zero, "efficiency_factor": zero,
        }

    def output(x, u, d, p):
        q = _pump_quantities(x, u, d, p, efficiency_degree)
        return {
            "p_suction": q["p_suction"], "p_discharge": q["p_discharge"], "flow": x["flow"],
            "power": q["electric_power"], "T_bearing": x["T_bearing"],
            "vibration": q["vibration"], "npsh_margin": q["npsh_margin"],
        }

    return PlantModel.build(
        KIND, states=states, inputs=[speed, valve], disturbances=disturbances,
        parameters=parameters, outputs=outputs, dynamics=dynamics, output=output, dt=dt,
        substeps=4,
    )


def _balancing_delivery_pressure(x: Mapping, u: Mapping, d: Mapping, p: Mapping) -> float:
    """p_del putting the system curve through the design point:
    p_del = p_src + rho g (H_d - z_del + z - (K_s + K_pipe + K_v/(o^2 + o_leak^2)) Q_d^2)."""
    opening = u["valve_opening"]
    resistance = (p["suction_loss"] + p["pipe_loss"]
                  + p["valve_loss"] / (opening**2 + p["valve_leak"] ** 2))
    static_head = p["design_head"] - resistance * x["flow"] ** 2
    return d["p_source"] + p["density"] * GRAVITY * (
        static_head - p["delivery_elevation"] + d["suction_level"])


def _require_positive_efficiency(coefficients: np.ndarray, upper_ratio: float) -> None:
    ratios = np.linspace(0.0, upper_ratio, 1001)
    worst = float(np.min(_efficiency_over_ratio(list(coefficients), ratios)))
    if not worst > 0:
        raise ValueError(f"efficiency curve: the fitted polynomial is not positive over flow "
                         f"ratios 0..{upper_ratio:g} of the design flow (eta/Q reaches "
                         f"{worst:g}); use a lower degree or more points")


# -- health assessment --------------------------------------------------------------------------

class HealthLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Alarm limits of :func:`health_report`.

    Attributes:
        vibration: overall RMS velocity, m/s; API 610 allows 3.0 mm/s inside the
            preferred operating region (PHYSICS.md section 5).
        oil_rise: bearing temperature above ambient, K; 30 K per API 612/619 (PHYSICS.md).
        head_loss: fraction of new-pump head lost to wear (default, configurable).
        efficiency_loss: fraction of new-pump efficiency lost to wear (default, configurable).
        npsh_margin: least NPSH_a - NPSH_3, m (default, configurable).
        bep_low, bep_high: preferred operating region as fractions of BEP flow at the
            running speed; API 610's is 70-120 %.
    """

    vibration: float = 3.0e-3
    oil_rise: float = 30.0
    head_loss: float = 0.05
    efficiency_loss: float = 0.05
    npsh_margin: float = 1.0
    bep_low: float = 0.7
    bep_high: float = 1.2


def health_report(model: PlantModel, x, u, d, p=None,
                  limits: HealthLimits = HealthLimits()) -> tuple[HealthFinding, ...]:
    """Health of the pump at state ``x`` with inputs ``u`` and disturbances ``d`` (vectors in
    the model's order, SI), e.g. an estimate or a what-if point. Checks, in this order:
    head loss, efficiency loss, distance from BEP, NPSH margin, vibration, bearing oil rise.
    """
    values = [group.mapping(v) for group, v in (
        (model.states, x), (model.inputs, u), (model.disturbances, d),
        (model.parameters, model.parameters.nominal if p is None else p))]
    xs, us, ds, ps = values
    order = sum(1 for name in model.parameters.names if re.fullmatch(r"efficiency_\d+", name))
    q = _pump_quantities(xs, us, ds, ps, order)
    head_loss = 1.0 - xs["head_factor"]
    efficiency_loss = 1.0 - xs["efficiency_factor"]
    oil_rise = xs["T_bearing"] - ds["T_ambient"]
    bep = float(q["bep_ratio"])
    outside_low, outside_high = bep < limits.bep_low, bep > limits.bep_high
    return (
        _finding("head_loss", head_loss, limits.head_loss, "1", head_loss > limits.head_loss,
                 f"head is {100 * head_loss:.1f} % below the new pump at the same flow "
                 f"(limit {100 * limits.head_loss:.1f} %): impeller or wear-ring wear"),
        _finding("efficiency_loss", efficiency_loss, limits.efficiency_loss, "1",
                 efficiency_loss > limits.efficiency_loss,
                 f"efficiency is {100 * efficiency_loss:.1f} % below the new pump (limit "
                 f"{100 * limits.efficiency_loss:.1f} %): internal leakage or friction"),
        _finding("bep_ratio", bep, limits.bep_low if outside_low else limits.bep_high, "1",
                 outside_low or outside_high,
                 f"flow is {100 * bep:.0f} % of best-efficiency flow at this speed; the "
                 f"preferred operating region is {100 * limits.bep_low:.0f}-"
                 f"{100 * limits.bep_high:.0f} % (API 610)"),
        _finding("npsh_margin", float(q["npsh_margin"]), limits.npsh_margin, "m",
                 float(q["npsh_margin"]) < limits.npsh_margin,
                 f"NPSH available {float(q['npsh_available']):.1f} m against NPSH_3 "
                 f"{float(q['npsh_required']):.1f} m; margin below {limits.npsh_margin:g} m "
                 f"risks cavitation"),
        _finding("vibration", float(q["vibration"]), limits.vibration, "m/s",
                 float(q["vibration"]) > limits.vibration,
                 f"vibration {1e3 * float(q['vibration']):.2f} mm/s RMS against the API 610 "
                 f"limit of {1e3 * limits.vibration:.1f} mm/s"),
        _finding("oil_rise", oil_rise, limits.oil_rise, "K", oil_rise > limits.oil_rise,
                 f"bearing oil {oil_rise:.1f} K above ambient against the {limits.oil_rise:g} K "
                 f"limit (API 612/619)"),
    )


def _finding(check: str, value: float, limit: float, unit: str, alarm: bool,
             reason: str) -> HealthFinding:
    return HealthFinding(check, float(value), float(limit), unit, bool(alarm),
                         ("ALARM: " if alarm else "ok: ") + reason)


def kpi_units(asset: AssetConfig) -> dict[str, str]:
    """The pump's KPIs (:func:`kpis`) and their SI units."""
    return {"efficiency": "1", "head_loss": "1", "efficiency_loss": "1",
            "specific_energy": "J/m3"}


def kpis(model: PlantModel, asset: AssetConfig, x: Mapping, u: Mapping, d: Mapping,
         p: Mapping, y: Mapping) -> dict[str, float]:
    """The pump's KPIs at the twin's estimate: ``efficiency`` eta = rho g Q H / P_shaft at
    the operating point (the view's operating efficiency), ``head_loss`` 1 - k_H and
    ``efficiency_loss`` 1 - k_eta (health_report's wear checks), and ``specific_energy``
    P_elec / Q, J/m^3 (left out at zero flow). Its health index and remaining life come
    from the degradation trends (plants.pump_health), not from one estimate."""
    order = sum(1 for name in model.parameters.names if re.fullmatch(r"efficiency_\d+", name))
    here = _pump_quantities(x, u, d, p, order)
    values = {"efficiency": float(here["efficiency"]), "head_loss": 1.0 - float(x["head_factor"]),
              "efficiency_loss": 1.0 - float(x["efficiency_factor"])}
    if x["flow"] > 0:
        values["specific_energy"] = float(y["power"]) / float(x["flow"])
    return values


CURVE_POINTS = 41
"""Flows sampled on each curve of :func:`view`, from zero to the model's largest flow."""


def view(model: PlantModel, asset: AssetConfig, x: Mapping, u: Mapping, d: Mapping,
         p: Mapping, y: Mapping, reference: Mapping[str, float],
         measured: Mapping[str, float]) -> PumpView:
    """The pump's screen at the twin's estimate (plants.views.PumpView): head H(Q) =
    k_H s^2 (A - (A - H_d) (Q / s Q_d)^C) and efficiency eta = rho g Q H / P_shaft at the
    running speed, with the estimated head and efficiency factors and as new (both 1),
    the system curve H_sys = static head + K Q^2 at the valve opening, the operating
    point, and :func:`health_report`."""
    order = sum(1 for name in model.parameters.names if re.fullmatch(r"efficiency_\d+", name))
    flows = np.linspace(0.0, model.states["flow"].upper, CURVE_POINTS)[1:]
    new = {**x, "head_factor": 1.0, "efficiency_factor": 1.0}

    def curve(state: Mapping, key: str, unit: str) -> Curve:
        values = [float(_pump_quantities({**state, "flow": q}, u, d, p, order)[key])
                  for q in flows]
        return Curve(x=flows.tolist(), y=values, x_unit="m3/s", y_unit=unit)

    here = _pump_quantities(x, u, d, p, order)
    states, inputs, disturbances, parameters = (group.vector(values) for group, values in (
        (model.states, x), (model.inputs, u), (model.disturbances, d), (model.parameters, p)))
    return PumpView(
        head=curve(x, "head", "m"), head_new=curve(new, "head", "m"),
        efficiency=curve(x, "efficiency", "1"), efficiency_new=curve(new, "efficiency", "1"),
        system=curve(x, "system_head", "m"), flow=float(x["flow"]),
        operating_head=float(here["head"]), operating_efficiency=float(here["efficiency"]),
        health=list(health_report(model, states, inputs, disturbances, parameters)))
