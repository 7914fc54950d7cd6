"""The pipeline centrifugal pump against EPANET's documented curves, the affinity laws and
first principles (PHYSICS.md section 5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from plants.centrifugal_pump import (
    DEFAULTS,
    EFFICIENCY_CURVE,
    GRAVITY,
    build_model,
    efficiency,
    fit_efficiency_polynomial,
    fit_power_curve,
    health_report,
)

MODEL = build_model()
X0, U0, D0, P0 = MODEL.steady_input_vectors()
RHO_G = MODEL.parameters["density"].nominal * GRAVITY

EPANET_HEAD = ((0.0, 200.0), (1000.0, 100.0), (3000.0, 0.0))
EPANET_EFFICIENCY = ((200.0, 0.50), (1000.0, 0.85), (2000.0, 0.75), (3000.0, 0.65))


def param(name):
    return MODEL.parameters[name].nominal


def vectors(x=None, u=None, d=None):
    """State, input and disturbance vectors: nominal values with some replaced by name."""
    return (MODEL.states.vector(x or {}), MODEL.inputs.vector(u or {}),
            MODEL.disturbances.vector(d or {}))


def outputs(x, u, d):
    return MODEL.outputs.mapping(MODEL.output(0, x, u, d))


def steady_flow(u, d):
    """The flow where dQ/dt = 0, by bracketing: the operating point of pump and system."""
    x = X0.copy()
    flow = MODEL.states.index("flow")

    def rate(q):
        x[flow] = q
        return MODEL.dynamics(0, x, u, d)[flow]

    x[flow] = brentq(rate, 1e-4, 0.3, xtol=1e-15, rtol=1e-14)
    return x


def head(x, u, d):
    """Pump head from the two pressure outputs, (p_d - p_s) / (rho g)."""
    y = outputs(x, u, d)
    return (y["p_discharge"] - y["p_suction"]) / RHO_G


# -- curve fits --------------------------------------------------------------------------------

def test_three_point_fit_matches_epanet_example():
    """EPANET manual example (0, 200), (1000, 100), (3000, 0) with EPANET's powercurve:
    h4 = 200 - 100 = 100, h5 = 200 - 0 = 200, C = ln(h5/h4)/ln(3000/1000) = ln 2/ln 3
    ≈ 0.6309, B = h4 / 1000^C = 100 / 78.125 ≈ 1.2800, A = 200. Coefficients to 1e-12
    relative; the curve through its three points to 1e-9 ft."""
    A, B, C = fit_power_curve(EPANET_HEAD)
    assert A == 200.0
    assert C == pytest.approx(math.log(2) / math.log(3), rel=1e-12)
    assert B == pytest.approx(100.0 / 1000.0 ** (math.log(2) / math.log(3)), rel=1e-12)
    assert (C, B) == pytest.approx((0.6309, 1.2800), abs=1e-4)
    for flow, head_ft in EPANET_HEAD:
        assert A - B * flow**C == pytest.approx(head_ft, abs=1e-9)


def test_three_point_fit_rejects_a_curve_epanet_rejects():
    """EPANET refuses a curve whose head does not fall with flow (input3.c powercurve)."""
    with pytest.raises(ValueError, match="head curve: heads must fall"):
        fit_power_curve(((0.0, 100.0), (1000.0, 120.0), (3000.0, 0.0)))


def test_efficiency_polynomial_passes_epanet_points():
    """EPANET manual efficiency example 200 -> 50 %, 1000 -> 85 %, 2000 -> 75 %,
    3000 -> 65 %: a quartic with zero efficiency at zero flow interpolates the four points;
    tolerance 1e-9 (round-off of the least-squares solve)."""
    coefficients = fit_efficiency_polynomial(EPANET_EFFICIENCY, 4, reference_flow=1000.0)
    for flow, eta in EPANET_EFFICIENCY:
        assert efficiency(coefficients, flow / 1000.0) == pytest.approx(eta, abs=1e-9)
    assert efficiency(coefficients, 0.0) == 0.0


def test_default_efficiency_fit_error_is_as_documented():
    """The module documents its cubic efficiency fit within 0.06 percentage points of the
    datasheet points; checked at each point with that tolerance."""
    for flow, eta in EFFICIENCY_CURVE:
        ratio = flow / param("design_flow")
        fitted = efficiency([param(f"efficiency_{k}") for k in (1, 2, 3)], ratio)
        assert fitted == pytest.approx(eta, abs=6e-4)


# -- hydraulics --------------------------------------------------------------------------------

def test_affinity_laws_on_a_pure_friction_system():
    """With zero static head the system curve H = K Q^2 is a parabola of homologous points,
    so doubling the speed gives Q x2, H x4 and shaft (and electric) power x8 (affinity
    laws, PHYSICS.md section 5). The head also equals the system's friction K Q^2.
    Tolerance 1e-6 relative (smoothing of zero flow is ~1e-8)."""
    d = MODEL.disturbances.vector({"p_delivery": D0[MODEL.disturbances.index("p_source")],
                                   "suction_level": param("delivery_elevation")})
    rated = param("rated_speed")
    points = []
    for speed in (0.5 * rated, rated):
        u = MODEL.inputs.vector({"speed": speed, "valve_opening": 0.6})
        x = steady_flow(u, d)
        points.append((x[0], head(x, u, d), outputs(x, u, d)["power"]))
    (q1, h1, p1), (q2, h2, p2) = points
    assert q2 / q1 == pytest.approx(2.0, rel=1e-6)
    assert h2 / h1 == pytest.approx(4.0, rel=1e-6)
    assert p2 / p1 == pytest.approx(8.0, rel=1e-6)
    friction = (param("suction_loss") + param("pipe_loss")
                + param("valve_loss") / (0.6**2 + param("valve_leak") ** 2))
    assert h2 == pytest.approx(friction * q2**2, rel=1e-6)


def test_head_degradation_lowers_head_by_the_factor_at_the_same_flow():
    """H = k_H s^2 H_r(Q/s): a 10 % worn impeller gives 90 % of the head at the same flow
    and speed, to 1e-12 relative; a 10 % efficiency loss raises the power drawn for the
    same flow and head by 1/0.9."""
    u = MODEL.inputs.vector({"speed": 0.9 * param("rated_speed")})
    x_new, _, d = vectors({"flow": 0.08})
    x_worn, _, _ = vectors({"flow": 0.08, "head_factor": 0.9})
    x_leaky, _, _ = vectors({"flow": 0.08, "efficiency_factor": 0.9})
    assert head(x_worn, u, d) / head(x_new, u, d) == pytest.approx(0.9, rel=1e-12)
    assert head(x_leaky, u, d) == pytest.approx(head(x_new, u, d), rel=1e-12)
    ratio = outputs(x_leaky, u, d)["power"] / outputs(x_new, u, d)["power"]
    assert ratio == pytest.approx(1 / 0.9, rel=1e-12)


def test_npsh_available_follows_the_suction_formula():
    """NPSH_a = (p_s - p_v)/(rho g) + z - h_f with h_f = K_s Q^2 (PHYSICS.md section 5); the
    suction gauge reads p_src + rho g (z - h_f), so (p_suction - p_v)/(rho g) is NPSH_a.
    NPSH_3 = s^2 (a_3 + (b_3 - a_3) (Q/(s Q_d))^2), margin = NPSH_a - NPSH_3. 1e-9 m."""
    flow, level, p_source, s = 0.12, 2.0, 1.5e5, 0.9
    x, _, d = vectors({"flow": flow}, d={"suction_level": level, "p_source": p_source})
    u = MODEL.inputs.vector({"speed": s * param("rated_speed")})
    npsh_a = (p_source - param("vapour_pressure")) / RHO_G + level \
        - param("suction_loss") * flow**2
    a3, b3 = param("npsh3_shutoff"), param("npsh3_design")
    npsh_3 = s**2 * (a3 + (b3 - a3) * (flow / (s * param("design_flow"))) ** 2)
    y = outputs(x, u, d)
    assert (y["p_suction"] - param("vapour_pressure")) / RHO_G == pytest.approx(npsh_a, abs=1e-9)
    assert y["npsh_margin"] == pytest.approx(npsh_a - npsh_3, abs=1e-9)


# -- thermal and steady state ------------------------------------------------------------------

def test_bearing_temperature_settles_at_ambient_plus_loss_over_conductance():
    """C_b dT/dt = P_loss - G_b (T - T_amb), P_loss = P_shaft - rho g Q H with
    P_shaft = P_elec eta_motor and rho g H = p_d - p_s, at a throttled, part-speed, worn
    operating point. Steady T = T_amb + P_loss/G_b to 1e-9 K."""
    u = MODEL.inputs.vector({"speed": 0.9 * param("rated_speed"), "valve_opening": 0.4})
    _, _, d = vectors(d={"T_ambient": 308.15})
    x = steady_flow(u, d)
    x[MODEL.states.index("efficiency_factor")] = 0.85
    bearing = MODEL.states.index("T_bearing")

    def rate(T):
        x[bearing] = T
        return MODEL.dynamics(0, x, u, d)[bearing]

    settled = brentq(rate, 250.0, 500.0, xtol=1e-12)
    y = outputs(x, u, d)
    loss = y["power"] * param("motor_efficiency") - y["flow"] * (y["p_discharge"] - y["p_suction"])
    assert settled == pytest.approx(308.15 + loss / param("bearing_conductance"), abs=1e-9)


def test_nominal_is_a_steady_state_near_best_efficiency():
    """dx/dt at the nominal signals moves no state by more than 1e-6 of its nominal value
    (or 1e-9 absolute for zero states) over the default 10 s period; the outputs there equal the
    outputs' nominal values (1e-9 relative); and the rated flow lies within 80-110 % of
    BEP flow, API 610's requirement for the rated point."""
    rates = MODEL.dynamics(0, X0, U0, D0)
    scale = np.maximum(np.abs(X0) * 1e-6, 1e-9)
    assert np.all(np.abs(rates) * DEFAULTS.period_s < scale)
    np.testing.assert_allclose(MODEL.output(0, X0, U0, D0), MODEL.outputs.nominal, rtol=1e-9)
    assert 0.8 <= X0[0] / param("bep_flow") <= 1.1


# -- health report -----------------------------------------------------------------------------

def alarms(x, u=U0, d=D0):
    return {finding.check: finding for finding in health_report(MODEL, x, u, d)}


def test_health_report_is_clear_at_nominal():
    """A new pump at its design point near BEP raises no alarm (all checks present)."""
    findings = alarms(X0)
    assert set(findings) == {"head_loss", "efficiency_loss", "bep_ratio", "npsh_margin",
                             "vibration", "oil_rise"}
    assert not any(f.alarm for f in findings.values())


def test_health_report_flags_vibration_above_api610_limit():
    """API 610: 3.0 mm/s RMS overall inside the preferred operating region (PHYSICS.md).
    The drift state lifts the measured vibration to 3.1 mm/s (alarm) or 2.9 mm/s (none)."""
    baseline = outputs(X0, U0, D0)["vibration"]
    for level, expected in ((3.1e-3, True), (2.9e-3, False)):
        x, _, _ = vectors({"vibration_drift": level - baseline})
        finding = alarms(x)["vibration"]
        assert finding.value == pytest.approx(level, rel=1e-12)
        assert finding.alarm is expected
        assert "API 610" in finding.reason


def test_health_report_flags_bearing_oil_rise_above_30_kelvin():
    """Bearing oil rise at most 30 K (API 612/619, PHYSICS.md): 31 K alarms, 29 K does not."""
    ambient = D0[MODEL.disturbances.index("T_ambient")]
    for rise, expected in ((31.0, True), (29.0, False)):
        x, _, _ = vectors({"T_bearing": ambient + rise})
        finding = alarms(x)["oil_rise"]
        assert finding.alarm is expected
        assert "30 K" in finding.reason


def test_health_report_flags_a_worn_pump_and_running_off_best_efficiency():
    """7 % head loss exceeds the 5 % default; a nearly shut valve puts the flow below 70 % of
    BEP flow, outside API 610's preferred operating region."""
    x, _, _ = vectors({"head_factor": 0.93})
    assert alarms(x)["head_loss"].alarm
    u = MODEL.inputs.vector({"valve_opening": 0.05})
    throttled = steady_flow(u, D0)
    finding = alarms(throttled, u)["bep_ratio"]
    assert finding.alarm and finding.value < 0.7
