"""The Hall–Héroult cell against PHYSICS.md section 4, Haupin's equations and first
principles (Faraday's law, conservation of mass and energy, the Stefan condition)."""

from __future__ import annotations

import itertools
import math

import casadi as ca
import numpy as np
import pytest

from plants import haupin
from plants.smelter_cell import (
    CELSIUS, DEFAULTS, FARADAY, MOLAR_MASS_ALUMINA, build_model, nominal_state,
    voltage_components,
)

MODEL = build_model()
X0, U0, D0, P0 = MODEL.steady_input_vectors()
PARAM = MODEL.parameters.mapping(P0)
R_GAS = 8.314462618
KWH = 3.6e6


def state(**values):
    return MODEL.states.vector(values, X0)


def outputs(x=None, u=None, d=None):
    y = MODEL.output(0, X0 if x is None else x, U0 if u is None else u, D0 if d is None else d)
    return MODEL.outputs.mapping(y)


def rates(x=None, u=None, d=None):
    dx = MODEL.dynamics(0, X0 if x is None else x, U0 if u is None else u,
                        D0 if d is None else d)
    return MODEL.states.mapping(dx)


def nominal(name):
    return MODEL.states[name].nominal


def current_density_cm2():
    """Anode current density over the fanned area, A/cm²."""
    return D0[0] / (PARAM["fanning_factor"] * PARAM["anode_area"]) * 1e-4


def critical_current_density_cm2(T, alumina_wt):
    """Haupin: i_c = (5.5 + 0.018 (T - 1323)) A^-0.1 (C^0.5 - 0.4), A/cm², A in cm²."""
    area_cm2 = PARAM["single_anode_area"] * 1e4
    return (5.5 + 0.018 * (T - 1323)) * area_cm2**-0.1 * (math.sqrt(alumina_wt) - 0.4)


def conductivity_s_per_m(T, alumina_wt):
    """Híveš et al. (1996): ln kappa[S/cm] = 1.9362 + 0.3092 BR - 0.004132 CaF2
    - 0.01755 Al2O3 - 1751.1/T, with BR the NaF/AlF3 weight ratio of the bath."""
    alf3, caf2 = 100 * PARAM["excess_alf3"], 100 * PARAM["caf2"]
    rest = 100 - alumina_wt - caf2 - alf3        # cryolite, 60 % NaF and 40 % AlF3
    ratio = 0.6 * rest / (0.4 * rest + alf3)
    return 100 * math.exp(1.9362 + 0.3092 * ratio - 0.004132 * caf2 - 0.01755 * alumina_wt
                          - 1751.1 / T)


def test_nominal_cell_is_about_4_2_volts_at_960_C():
    """PHYSICS.md section 4: a typical cell runs at ~4.2 V at ~960 °C. Tolerance ±0.3 V
    and ±5 K; the pseudo-resistance is (V - 1.65)/I by definition (1e-12 relative)."""
    y = outputs()
    assert y["cell_voltage"] == pytest.approx(4.2, abs=0.3)
    assert y["bath_temperature"] - CELSIUS == pytest.approx(960.0, abs=5.0)
    assert y["pseudo_resistance"] == pytest.approx((y["cell_voltage"] - 1.65) / D0[0], rel=1e-12)


def test_voltage_terms_follow_haupin():
    """Terms at the nominal point recomputed by hand in Haupin's units (A/cm², wt%):
    anode surface (T/12533) ln(i / (0.0029 C^0.56)); anode concentration
    (R T/2F) ln(i_c/(i_c - i)); bath drop i ACD / kappa. At saturation the activity is 1
    and E_rev = 1.896 - 0.000572 T, about 1.19 V at 960 °C (the textbook ~1.2 V).
    Tolerance 1e-4 V (the smooth floors shift terms by far less)."""
    T, acd, alumina_wt = nominal("bath_temperature"), nominal("acd"), 3.0
    parts = voltage_components(T, alumina_wt / 100, acd, D0[0], PARAM)
    i = current_density_cm2()
    i_c = critical_current_density_cm2(T, alumina_wt)
    assert parts["anode_surface"] == pytest.approx(
        T / 12533 * math.log(i / (0.0029 * alumina_wt**0.56)), abs=1e-4)
    assert parts["anode_concentration"] == pytest.approx(
        R_GAS * T / (2 * FARADAY) * math.log(i_c / (i_c - i)), abs=1e-4)
    assert parts["bath"] == pytest.approx(
        i * 1e4 * acd / conductivity_s_per_m(T, alumina_wt), abs=1e-4)
    saturation = haupin.alumina_saturation(T, PARAM["excess_alf3"], PARAM["caf2"])
    at_saturation = haupin.reversible_voltage(T, saturation, saturation)
    assert at_saturation == pytest.approx(1.896 - 0.000572 * T, abs=1e-4)
    assert at_saturation == pytest.approx(1.19, abs=0.01)


def test_specific_energy_is_2_980_V_over_CE_and_about_13_kWh_per_kg():
    """PHYSICS.md section 4: W = 2.980 V / CE kWh/kg Al, about 13 kWh/kg. The constant is
    3 F / M_Al = 2.97997 kWh/(kg V), rounded: tolerance 1e-4 relative; ±1 kWh/kg."""
    y = outputs()
    kwh_per_kg = y["specific_energy"] / KWH
    assert kwh_per_kg == pytest.approx(2.980 * y["cell_voltage"] / PARAM["current_efficiency"],
                                       rel=1e-4)
    assert kwh_per_kg == pytest.approx(13.0, abs=1.0)


def test_alumina_mass_balance_closes_over_two_hours_of_feed_cycling():
    """Conservation of mass: feed in = I CE M_Al2O3/(6F) consumed + rise in dissolved and
    undissolved alumina, while the feed cycles between over- and underfeeding and the
    line current steps. Tolerance 1e-9 relative to the feed."""
    model = build_model(dt=60.0)
    x = X0.copy()
    fed = consumed = 0.0
    start = x[0] + x[1]
    for minute in range(120):
        feed = U0[0] * (1.5 if (minute // 20) % 2 == 0 else 0.5)
        current = 3.0e5 if minute < 60 else 3.1e5
        d = np.array([current, D0[1], 0.0])
        x = model.step(x, [feed, 0.0], d)
        fed += feed * 60.0
        consumed += current * PARAM["current_efficiency"] * MOLAR_MASS_ALUMINA / (6 * FARADAY) * 60
    assert fed == pytest.approx(consumed + (x[0] + x[1] - start), rel=1e-9)
    assert x[1] > 0


def test_lower_alumina_raises_anode_concentration_overvoltage_and_anode_effect_indicator():
    """Haupin: i_c falls with alumina, so (R T/2F) ln(i_c/(i_c - i)) rises and the
    indicator i/i_c approaches 1 at the anode effect. At 3 wt% the indicator equals
    Haupin's i/i_c (tolerance 1e-3); at the alumina where i_c = i it exceeds 0.9."""
    T = nominal("bath_temperature")
    fractions = [0.04, 0.03, 0.02, 0.015, 0.01, 0.008]
    parts = [voltage_components(T, w, nominal("acd"), D0[0], PARAM) for w in fractions]
    overvoltage = [p["anode_concentration"] for p in parts]
    indicator = [p["anode_effect_indicator"] for p in parts]
    assert all(b > a for a, b in zip(overvoltage, overvoltage[1:]))
    assert all(b > a for a, b in zip(indicator, indicator[1:]))
    i = current_density_cm2()
    assert indicator[1] == pytest.approx(i / critical_current_density_cm2(T, 3.0), abs=1e-3)
    at_effect_wt = (0.4 + i / critical_current_density_cm2(T, 1.4**2)) ** 2
    ae = voltage_components(T, at_effect_wt / 100, nominal("acd"), D0[0], PARAM)
    assert 0.9 < ae["anode_effect_indicator"] < 1.0


def test_stopping_the_feed_drives_the_cell_into_an_anode_effect_and_empties_the_bath():
    """With no feed the dissolved alumina is consumed at I CE M_Al2O3/(6F) ≈ 0.05 kg/s,
    about 1 wt% of a 10 t bath in 35 min: within two hours the indicator must rise
    monotonically past 0.9 and the voltage by more than 0.3 V. Left unfed for 8 h the
    dissolved alumina settles at zero (within 0.01 kg), never at a negative mass."""
    x, indicator, voltage, lowest = X0.copy(), [], [], X0[0]
    for minute in range(480):
        x = MODEL.step(x, [0.0, 0.0], D0)
        lowest = min(lowest, x[0])
        if minute < 120:
            y = outputs(x)
            indicator.append(y["anode_effect_indicator"])
            voltage.append(y["cell_voltage"])
    onset = next(k for k, value in enumerate(indicator) if value > 0.9)
    assert all(b > a for a, b in zip(indicator[:onset], indicator[1:onset + 1]))
    assert voltage[-1] > outputs()["cell_voltage"] + 0.3
    assert lowest > -0.01
    assert x[0] == pytest.approx(0.0, abs=0.01)


def test_larger_acd_raises_voltage_by_the_bath_resistance():
    """R_bath = ACD / (kappa f A): dV/dACD = I / (kappa f A), kappa by Híveš et al.
    (1996) at the nominal bath. Checked on the model's output function with CasADi's
    derivative, tolerance 1e-9 relative; and 1 cm more ACD adds that times 0.01 m."""
    x = ca.SX.sym("x", len(X0))
    voltage = MODEL.h(x, U0, D0, P0)[0]
    slope = float(ca.Function("slope", [x], [ca.jacobian(voltage, x)[2]])(X0))
    kappa = conductivity_s_per_m(nominal("bath_temperature"), 3.0)
    expected = D0[0] / (kappa * PARAM["fanning_factor"] * PARAM["anode_area"])
    assert slope == pytest.approx(expected, rel=1e-9)
    raised = outputs(state(acd=nominal("acd") + 0.01))["cell_voltage"]
    assert raised - outputs()["cell_voltage"] == pytest.approx(expected * 0.01, rel=1e-9)


def test_nominal_point_is_a_steady_state_with_plausible_acd_and_ledge():
    """Feed equals consumption and the heat balance closes at the nominal ledge, so a day
    at nominal inputs moves no state by more than 1e-6 of its value. The ACD that closes
    the heat balance lies in the 4–5 cm of industrial cells (Grjotheim & Welch,
    Aluminium Smelter Technology, 1988; tolerance 0.5 cm) and the ledge is 3–20 cm."""
    model = build_model(dt=600.0)
    x = X0.copy()
    for _ in range(144):
        x = model.step(x, U0, D0)
    np.testing.assert_allclose(x, X0, rtol=1e-6)
    assert 0.035 <= nominal("acd") <= 0.055
    assert 0.03 <= nominal("ledge_thickness") <= 0.20
    assert U0[0] == pytest.approx(
        D0[0] * PARAM["current_efficiency"] * MOLAR_MASS_ALUMINA / (6 * FARADAY), rel=1e-12)


def test_ledge_grows_when_the_bath_cools_and_melts_when_it_heats():
    """Stefan condition rho L ds/dt = q_out - h (T - T_liq): 2 K below the steady bath
    temperature the ledge grows at h 2 K / (rho L), 2 K above it melts at the same rate
    (1e-9 relative). Over 12 h, 5 % more line current heats the bath and thins the
    ledge; 5 % less cools it and thickens the ledge."""
    rate = PARAM["ledge_htc"] * 2.0 / (PARAM["ledge_density"] * PARAM["ledge_latent_heat"])
    T = nominal("bath_temperature")
    assert rates(state(bath_temperature=T - 2))["ledge_thickness"] == pytest.approx(rate, rel=1e-9)
    assert rates(state(bath_temperature=T + 2))["ledge_thickness"] == pytest.approx(-rate, rel=1e-9)
    model = build_model(dt=600.0)
    for factor, sign in ((1.05, -1), (0.95, 1)):
        x, d = X0.copy(), np.array([D0[0] * factor, D0[1], 0.0])
        for _ in range(72):
            x = model.step(x, U0 * factor, d)
        assert sign * (x[3] - T) < 0
        assert sign * (x[4] - nominal("ledge_thickness")) > 1e-3


def test_ledge_cannot_melt_through_within_the_bounds():
    """At zero ledge thickness the conduction q_out = (T_liq - T_amb)/R_wall must exceed
    h (T - T_liq) at the hottest allowed bath and the warmest pot room: ds/dt > 0, so a
    simulation inside the state bounds keeps s >= 0."""
    hottest = MODEL.states["bath_temperature"].upper
    warmest = MODEL.disturbances["ambient_temperature"].upper
    d = np.array([D0[0], warmest, 0.0])
    assert rates(state(bath_temperature=hottest, ledge_thickness=0.0), d=d)["ledge_thickness"] > 0


def test_energy_balance_closes_at_steady_state():
    """At the nominal point I V = I CE E_H + A_side h (T - T_liq) + UA (T - T_amb)
    (1e-9 relative), the side flux conducted through ledge and wall (Fourier, in series)
    equals h (T - T_liq), and about half the electrical input leaves as heat (0.4–0.6;
    Kvande & Haupin, JOM 2001: a carbon-anode cell needs 6.34 of its ~13 kWh/kg).
    Away from steady state C dT/dt is that same balance (1e-9 relative)."""
    p, T, T_amb = PARAM, nominal("bath_temperature"), D0[1]
    power = D0[0] * outputs()["cell_voltage"]
    side_flux = p["ledge_htc"] * (T - p["liquidus_temperature"])
    losses = (D0[0] * p["current_efficiency"] * p["enthalpy_voltage"]
              + p["side_area"] * side_flux + p["top_bottom_conductance"] * (T - T_amb))
    assert power == pytest.approx(losses, rel=1e-9)
    conducted = (p["liquidus_temperature"] - T_amb) / (
        nominal("ledge_thickness") / p["ledge_conductivity"] + p["wall_resistance"])
    assert conducted == pytest.approx(side_flux, rel=1e-9)
    heat_fraction = 1 - p["current_efficiency"] * p["enthalpy_voltage"] / outputs()["cell_voltage"]
    assert 0.4 <= heat_fraction <= 0.6
    hotter = state(bath_temperature=T + 3.0, ledge_thickness=0.08)
    net = (D0[0] * outputs(hotter)["cell_voltage"]
           - D0[0] * p["current_efficiency"] * p["enthalpy_voltage"]
           - p["side_area"] * p["ledge_htc"] * (T + 3.0 - p["liquidus_temperature"])
           - p["top_bottom_conductance"] * (T + 3.0 - T_amb))
    assert rates(hotter)["bath_temperature"] * p["heat_capacity"] == pytest.approx(net, rel=1e-9)


def test_model_is_finite_and_differentiable_over_the_state_box():
    """The EKF and MPC differentiate f and h anywhere inside the bounds, anode effect
    included: at every corner of the state box the Jacobians are finite and the
    indicator stays in (0, 1)."""
    x = ca.SX.sym("x", len(X0))
    jacobians = ca.Function("jacobians", [x], [ca.jacobian(MODEL.f(x, U0, D0, P0), x),
                                   ca.jacobian(MODEL.h(x, U0, D0, P0), x)])
    lower, upper = MODEL.states.lower, MODEL.states.upper
    for corner in itertools.product(*zip(lower, upper)):
        corner = np.array(corner)
        for matrix in jacobians(corner):
            assert np.isfinite(np.array(matrix)).all()
        assert 0 < outputs(corner)["anode_effect_indicator"] < 1


def test_defaults_fit_the_signal_bounds():
    """The recommended references and setpoint limits lie inside the engineering bounds,
    the nominal inputs inside the limits, and the period matches the model's step."""
    assert DEFAULTS.period_s == MODEL.dt
    for name, value in DEFAULTS.reference.items():
        MODEL.outputs[name].check(value)
    for name, limit in DEFAULTS.limits.items():
        MODEL.inputs[name].check(limit.lower)
        MODEL.inputs[name].check(limit.upper)
        assert limit.lower <= MODEL.inputs[name].nominal <= limit.upper


def test_a_bath_below_its_liquidus_has_no_steady_state():
    with pytest.raises(ValueError, match="bath_temperature"):
        nominal_state(PARAM, temperature=PARAM["liquidus_temperature"] - 1.0)
