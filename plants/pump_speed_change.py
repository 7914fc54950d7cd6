"""What a speed change does to a centrifugal pump: the steady operating point before and after.

A pure function of the plant model (plants.centrifugal_pump, PHYSICS.md section 5): with the
pump's state (its head and efficiency factors and vibration drift, e.g. the live
estimate), the valve and the disturbances held, the flow settles where the pump curve meets
the system curve, dQ/dt = 0, i.e. H(Q) = H_sys(Q) with the affinity laws

    H = k_H s^2 H_r(Q/s),   eta = k_eta eta_r(Q/s),   NPSH_3 = s^2 NPSH_3,r(Q/s),   s = N/N_r.

At each point it reports, from the model's outputs:

    head       H = (p_discharge - p_suction) / (rho g)                         m
    efficiency eta = Q (p_discharge - p_suction) / (P_elec eta_motor)          1
    npsh       margin = NPSH_a - NPSH_3                                        m
    bearing    T_b = T_amb + P_loss / G_b, the steady bearing oil temperature  K
               (reached with time constant C_b / G_b)
    vibration  v (BEP distance, cavitation and drift terms)                    m/s

and health_report's findings at the new point. On a friction-only system the homologous
flow Q/s is unchanged, so efficiency is too and Q ∝ N, H ∝ N^2, P ∝ N^3; against static
head a speed rise moves Q/s up the curve.
"""

from __future__ import annotations

import msgspec
import numpy as np
from scipy.optimize import brentq

from engine.model import PlantModel
from plants.centrifugal_pump import GRAVITY, HealthFinding, HealthLimits, health_report


class OperatingPoint(msgspec.Struct, frozen=True, kw_only=True):
    """A steady operating point (SI): speed [rad/s], flow [m3/s], head [m], efficiency [1],
    electric power [W], NPSH margin [m], steady bearing oil temperature [K], vibration RMS
    [m/s], flow over best-efficiency flow at this speed [1]."""

    speed: float
    flow: float
    head: float
    efficiency: float
    power: float
    npsh_margin: float
    T_bearing: float
    vibration: float
    bep_ratio: float


class SpeedChange(msgspec.Struct, frozen=True, kw_only=True):
    """The steady operating points at the present and the new speed, the bearing's time
    constant C_b / G_b [s] to approach its new temperature, and health_report's findings at
    the new point."""

    before: OperatingPoint
    after: OperatingPoint
    bearing_time_constant_s: float
    findings: tuple[HealthFinding, ...]


def speed_change(model: PlantModel, x, u, d, speed: float, p=None,
                 limits: HealthLimits | None = None) -> SpeedChange:
    """Steady operating points of the pump at state ``x`` (vectors in the model's order,
    SI) with inputs ``u`` and disturbances ``d``, at the present speed and at ``speed``
    [rad/s]. A speed outside the model's speed input bounds, or a point without a steady
    flow inside the flow bounds, raises ValueError naming it. ``limits`` (default
    HealthLimits()) are those of the findings."""
    limits = HealthLimits() if limits is None else limits
    p = model.parameters.nominal if p is None else np.asarray(p, dtype=float)
    model.inputs.check({"speed": speed})
    present, _ = _steady_point(model, x, u, d, p, limits)
    u_new = np.array(u, dtype=float)
    u_new[model.inputs.index("speed")] = speed
    changed, findings = _steady_point(model, x, u_new, d, p, limits)
    parameters = model.parameters.mapping(p)
    return SpeedChange(
        before=present, after=changed,
        bearing_time_constant_s=parameters["bearing_capacity"] / parameters["bearing_conductance"],
        findings=findings)


def _steady_point(model: PlantModel, x, u, d, p,
                  limits: HealthLimits) -> tuple[OperatingPoint, tuple[HealthFinding, ...]]:
    """The flow with dQ/dt = 0 (Brent's method inside the flow bounds), then the bearing
    temperature with dT_b/dt = 0 (its rate is linear in T_b), the outputs there and
    health_report's findings."""
    x = np.array(x, dtype=float)
    flow, bearing = model.states.index("flow"), model.states.index("T_bearing")
    bounds = model.states["flow"]

    def flow_rate(q: float) -> float:
        x[flow] = q
        return float(model.dynamics(0.0, x, u, d, p)[flow])

    low, high = bounds.lower, bounds.upper
    if not flow_rate(low) > 0 > flow_rate(high):
        speed = model.inputs.mapping(u)["speed"]
        raise ValueError(f"speed {speed:g} rad/s: no steady flow between {low:g} and "
                         f"{high:g} m3/s")
    x[flow] = brentq(flow_rate, low, high, xtol=1e-12, rtol=1e-12)
    parameters = model.parameters.mapping(p)
    x[bearing] += (float(model.dynamics(0.0, x, u, d, p)[bearing])
                   * parameters["bearing_capacity"] / parameters["bearing_conductance"])
    y = model.outputs.mapping(model.output(0.0, x, u, d, p))
    rise = y["p_discharge"] - y["p_suction"]
    findings = health_report(model, x, u, d, p, limits)
    point = OperatingPoint(
        speed=model.inputs.mapping(u)["speed"], flow=float(x[flow]),
        head=rise / (parameters["density"] * GRAVITY),
        efficiency=float(x[flow] * rise / (y["power"] * parameters["motor_efficiency"])),
        power=y["power"], npsh_margin=y["npsh_margin"], T_bearing=float(x[bearing]),
        vibration=y["vibration"],
        bep_ratio=next(f.value for f in findings if f.check == "bep_ratio"))
    return point, findings
