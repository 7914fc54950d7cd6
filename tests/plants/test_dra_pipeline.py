"""The DRA pipeline and its friction laws against PHYSICS.md section 1 and first principles."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from engine.config import EstimatorSettings
from plants.dra_pipeline import DEFAULTS, GRAVITY, KIND, build_model
from plants.hydraulics import (
    colebrook_friction,
    reynolds_number,
    swamee_jain_friction,
    virk_fanning_friction,
    virk_friction_smooth,
)

MODEL = build_model()
X0, U0, D0, P0 = MODEL.steady_input_vectors()


def param(name, model=MODEL):
    return model.parameters[name].nominal


def outputs(x, u=U0, d=D0, model=MODEL):
    return model.outputs.mapping(model.output(0, x, u, d))


def with_states(values, x=X0, model=MODEL):
    return model.states.vector(values, default=x)


def settle(model, u, d, steps, x=None):
    x = model.states.nominal if x is None else x
    for _ in range(steps):
        x = model.step(x, u, d)
    return x


def prandtl_karman_fanning(reynolds):
    """Smooth-pipe law 1/sqrt(f_F) = 4.0 log10(Re sqrt(f_F)) - 0.4, solved here."""
    s = brentq(lambda s: s - 4.0 * math.log10(reynolds / s) + 0.4, 1.0, 100.0, xtol=1e-14)
    return 1.0 / s**2


# -- friction laws --------------------------------------------------------------------------

def test_colebrook_and_swamee_jain_match_the_physics_check_values():
    """PHYSICS.md section 1: Re = 6e4, eps/D = 0.0023 gives Colebrook 0.02675 and
    Swamee–Jain 0.02703. Tolerance 0.1 % (the figures carry four digits)."""
    assert colebrook_friction(6e4, 0.0023) == pytest.approx(0.02675, rel=1e-3)
    assert swamee_jain_friction(6e4, 0.0023) == pytest.approx(0.02703, rel=1e-3)


def test_swamee_jain_is_within_one_percent_of_colebrook_on_the_pilot_line():
    """The model uses Swamee–Jain; at the pilot line's conditions (20-in, 0.045 mm,
    3 cSt, 600–2000 m^3/h) it stays within 1 % of Colebrook (Swamee & Jain 1976)."""
    relative_roughness = param("roughness") / param("diameter")
    for flow in np.linspace(600, 2000, 8) / 3600:
        reynolds = reynolds_number(flow, param("diameter"), 3e-6)
        assert swamee_jain_friction(reynolds, relative_roughness) == pytest.approx(
            colebrook_friction(reynolds, relative_roughness), rel=1e-2)


def test_virk_asymptote_is_about_80_percent_drag_reduction_at_re_1e5():
    """PHYSICS.md: Virk's asymptote 1/sqrt(f_F) = 19.0 log10(Re sqrt(f_F)) - 32.4 is about
    80 % drag reduction at Re = 1e5 against the smooth-pipe Prandtl–Kármán law.
    Tolerance 1.5 percentage points ("about")."""
    virk = virk_fanning_friction(1e5)
    assert 1 / math.sqrt(virk) == pytest.approx(
        19.0 * math.log10(1e5 * math.sqrt(virk)) - 32.4, abs=1e-9)
    assert 1 - virk / prandtl_karman_fanning(1e5) == pytest.approx(0.80, abs=0.015)


def test_smooth_virk_friction_solves_the_asymptote_across_the_turbulent_range():
    """The CasADi model's explicit Virk factor (Newton steps) equals the bracketed root,
    times 4 for Darcy, for 4e3 <= Re <= 1e8. Tolerance 1e-9 relative."""
    for reynolds in np.logspace(np.log10(4e3), 8, 12):
        assert virk_friction_smooth(reynolds) == pytest.approx(
            4 * virk_fanning_friction(reynolds), rel=1e-9)


def test_friction_laws_refuse_laminar_reynolds_numbers():
    """Colebrook and Virk are turbulent laws: Re below 4000 is refused, naming the bound."""
    with pytest.raises(ValueError, match="reynolds: 2000 is below 4000"):
        colebrook_friction(2000.0, 1e-4)
    with pytest.raises(ValueError, match="reynolds: 2000 is below 4000"):
        virk_fanning_friction(2000.0)


# -- drag reduction in the model ------------------------------------------------------------

def field_line():
    """Gómez Cuenca et al. (2008): 307 mm x 84 km diesel line, one leg, one segment."""
    model = build_model(stations=1, segments_per_leg=1)
    return model.with_parameters({"diameter": 0.307, "length_1": 84e3})


def drag_reduction_at(model, reynolds, concentration, **states):
    """DR = (dP0 - dP_DRA) / dP0 at equal flow, from the discharge pressure over the
    terminal back-pressure (level line)."""
    flow = reynolds * math.pi * param("diameter", model) * 3e-6 / 4
    x_plain = with_states({"flow": flow, "dra_leg1_seg1": 0.0, **states}, model.states.nominal,
                          model)
    x_dra = with_states({"dra_leg1_seg1": concentration}, x_plain, model)
    u, d = model.inputs.nominal, model.disturbances.nominal
    back = param("terminal_pressure", model)
    plain = outputs(x_plain, u, d, model)["discharge_pressure_1"] - back
    treated = outputs(x_dra, u, d, model)["discharge_pressure_1"] - back
    return 1 - treated / plain


@pytest.mark.parametrize("reynolds", [6e4, 1.6e5])
def test_drag_reduction_reproduces_the_diesel_field_range(reynolds):
    """Gómez Cuenca et al., Energy & Fuels 22:3293 (2008): 12–25 vppm gave 36–45 % DR at
    Re 6e4–1.6e5 on a 307 mm diesel line. With the default DR_max and K the model gives
    36 % at 12 vppm and 45 % at 25 vppm at both ends of the Re range, within 2 percentage
    points (the field figures' spread)."""
    model = field_line()
    assert drag_reduction_at(model, reynolds, 12.0) == pytest.approx(0.36, abs=0.02)
    assert drag_reduction_at(model, reynolds, 25.0) == pytest.approx(0.45, abs=0.02)


def test_no_drag_reduction_beyond_virk_at_huge_concentrations():
    """Virk's asymptote bounds polymer drag reduction. Even with an over-efficient DRA
    (DR_max 0.99, efficiency 1.6) at 500 and 5000 vppm, DR at Re 1e5 stays at or below
    1 - f_Virk / f_Newtonian and within 1.5 points of it (the smooth max only adds
    friction)."""
    model = field_line().with_parameters({"dr_max": 0.99})
    reynolds = 1e5
    newtonian = swamee_jain_friction(reynolds, param("roughness", model) / 0.307)
    virk_limit = 1 - 4 * virk_fanning_friction(reynolds) / newtonian
    for concentration in (500.0, 5000.0):
        reduction = drag_reduction_at(model, reynolds, concentration, dra_efficiency=1.6)
        assert reduction <= virk_limit
        assert reduction == pytest.approx(virk_limit, abs=0.015)


def test_more_dra_lowers_discharge_pressures_at_fixed_flow_by_darcy_weisbach():
    """At the nominal flow, doubling the DRA in every segment lowers every station's
    discharge pressure. The last station's discharge over the terminal back-pressure is
    the leg's Darcy–Weisbach loss sum_j f_j (L/n / D) rho V^2 / 2 with
    f_j = f_SJ (1 - DR_max c_j / (K + c_j)). Tolerance 1e-4 relative (smooth max)."""
    doubled = with_states({name: 2 * X0[MODEL.states.index(name)]
                           for name in MODEL.states.names if name.startswith("dra_leg")})
    before, after = outputs(X0), outputs(doubled)
    for i in (1, 2, 3):
        assert after[f"discharge_pressure_{i}"] < before[f"discharge_pressure_{i}"] - 1e5

    diameter, flow = param("diameter"), X0[MODEL.states.index("flow")]
    velocity = flow / (math.pi * diameter**2 / 4)
    newtonian = swamee_jain_friction(reynolds_number(flow, diameter, 3e-6),
                                     param("roughness") / diameter)
    loss = sum(
        newtonian * (1 - param("dr_max") * c / (param("dr_half_saturation") + c))
        * (param("length_3") / 3 / diameter) * 840.0 * velocity**2 / 2
        for c in (doubled[MODEL.states.index(f"dra_leg3_seg{j}")] for j in (1, 2, 3)))
    assert after["discharge_pressure_3"] - param("terminal_pressure") == pytest.approx(
        loss, rel=1e-4)


# -- transport, pumps, steady state ---------------------------------------------------------

def test_dra_mass_balance_closes_at_steady_state():
    """Active DRA: injected = carried out at each leg end + degraded in the leg,
    q / 3.6 = Q c_n + k_deg sum_j V_j c_j  (ppm m^3/s, q in L/h), per leg, with unequal
    injections. Steady state by 1500 steps of 15 min; tolerance 1e-6 relative."""
    u = MODEL.inputs.vector({"dra_injection_1": 5.0, "dra_injection_2": 30.0,
                             "dra_injection_3": 12.0})
    x = settle(MODEL, u, D0, 1500)
    flow = x[MODEL.states.index("flow")]
    for i in (1, 2, 3):
        volume = math.pi * param("diameter") ** 2 / 4 * param(f"length_{i}") / 3
        c = [x[MODEL.states.index(f"dra_leg{i}_seg{j}")] for j in (1, 2, 3)]
        injected = u[MODEL.inputs.index(f"dra_injection_{i}")] * 1e-3 / 3600 * 1e6
        leaving = flow * c[-1] + param("degradation_rate") * volume * sum(c)
        assert leaving == pytest.approx(injected, rel=1e-6)


def test_station_power_is_hydraulic_power_over_the_efficiencies():
    """P = rho g Q H / (eta_pump eta_motor eta_vfd) and, at steady state, rho g H is the
    station's pressure rise: P = Q (p_discharge - p_suction) / eta (station 1 sucks at
    the inlet pressure). Cost = price P / 1000 + DRA price q. Tolerance 1e-9 relative."""
    y = outputs(X0)
    flow = y["delivery_flow"]
    efficiency = param("pump_efficiency") * param("motor_efficiency") * param("vfd_efficiency")
    suction = {1: param("inlet_pressure"), 2: y["suction_pressure_2"],
               3: y["suction_pressure_3"]}
    for i in (1, 2, 3):
        rise = y[f"discharge_pressure_{i}"] - suction[i]
        assert y[f"station_power_{i}"] == pytest.approx(flow * rise / efficiency, rel=1e-9)
        speed = U0[MODEL.inputs.index(f"pump_speed_{i}")]
        head = param("pump_shutoff_head") * speed**2 - param("pump_head_droop") * flow**2
        assert y[f"station_power_{i}"] == pytest.approx(
            840.0 * GRAVITY * flow * head / efficiency, rel=1e-9)
    power = sum(y[f"station_power_{i}"] for i in (1, 2, 3))
    assert y["cost_rate"] == pytest.approx(0.10 * power / 1000 + 7.0 * 3 * 18.0, rel=1e-9)


def test_nominal_point_is_steady_at_1200_m3_per_hour():
    """The nominal signals are a steady operating point: every state moves less than
    1e-9 of its scale per 15-min step, and the line delivers 1200 m^3/h."""
    rates = MODEL.dynamics(0, X0, U0, D0)
    scale = np.maximum(np.abs(X0), 1.0)
    assert np.all(np.abs(rates) * MODEL.dt / scale < 1e-9)
    assert outputs(X0)["delivery_flow"] * 3600 == pytest.approx(1200.0, rel=1e-12)
    assert all(outputs(X0)[f"discharge_pressure_{i}"] < 9.93e6 for i in (1, 2, 3))


def test_flow_lags_toward_the_balance_of_pump_and_line_heads():
    """After a 1 % speed-up the flow moves toward the flow Q* at which pump heads equal
    friction plus static head: 1 - exp(-900/600) = 77.7 % of the way in one 15-min step
    (tau_Q = 600 s). Tolerance 1 percentage point (the DRA profile shifts meanwhile)."""
    u = U0 * np.r_[1, 1, 1, 1.01, 1.01, 1.01]
    index = MODEL.states.index("flow")

    def flow_rate(flow):
        return MODEL.dynamics(0, with_states({"flow": flow}), u, D0)[index]

    balance = brentq(flow_rate, X0[index], 1.2 * X0[index], xtol=1e-14)
    moved = (MODEL.step(X0, u, D0)[index] - X0[index]) / (balance - X0[index])
    assert moved == pytest.approx(1 - math.exp(-1.5), abs=0.01)


def test_flow_settles_where_the_first_station_sucks_at_the_inlet_pressure():
    """At steady state the line-side pressures (back from the terminal) meet the pump
    side: station 1's discharge minus its pump's pressure rise rho g H(Q, N) is the
    inlet pressure. Speeds up to rated, settled over 1500 steps; tolerance 1 Pa."""
    u = MODEL.inputs.vector({f"pump_speed_{i}": 1.0 for i in (1, 2, 3)})
    x = settle(MODEL, u, D0, 1500)
    y = outputs(x, u)
    head = param("pump_shutoff_head") - param("pump_head_droop") * y["delivery_flow"] ** 2
    suction = y["discharge_pressure_1"] - 840.0 * GRAVITY * head
    assert suction == pytest.approx(param("inlet_pressure"), abs=1.0)
    assert y["delivery_flow"] > 1.3 * X0[MODEL.states.index("flow")]


def test_estimator_tracks_friction_and_dra_efficiency_multipliers():
    """An EKF on the model, fed noisy flow, pressure and power measurements from a
    plant whose friction is 10 % higher and whose DRA is 20 % less effective, recovers
    both multipliers within 0.03 after 24 h. Skid 1 injects nothing, so leg 1 shows the
    Newtonian friction and the others the DRA's effect."""
    from controllers.ekf import ExtendedKalmanFilter

    u = MODEL.inputs.vector({"dra_injection_1": 0.0})
    start = settle(MODEL, u, D0, 600)
    truth = with_states({"friction_multiplier": 1.1, "dra_efficiency": 0.8}, start)
    settings = EstimatorSettings(initial_std={"friction_multiplier": 0.1,
                                              "dra_efficiency": 0.2})
    ekf = ExtendedKalmanFilter(MODEL, settings)
    state = ekf.initial_state(start)
    measured = [name for name in MODEL.outputs.names
                if name.startswith(("delivery", "discharge", "suction", "station"))]
    rng = np.random.default_rng(7)
    for _ in range(96):
        truth = MODEL.step(truth, u, D0)
        y = outputs(truth, u)
        noisy = {name: y[name] + MODEL.outputs[name].std * rng.standard_normal()
                 for name in measured}
        state = ekf.step(state, u, D0, noisy, MODEL.dt)
    estimate = MODEL.states.mapping(state.x)
    assert estimate["friction_multiplier"] == pytest.approx(1.1, abs=0.03)
    assert estimate["dra_efficiency"] == pytest.approx(0.8, abs=0.03)


# -- structure and defaults -----------------------------------------------------------------

def test_structure_options_size_the_state_and_refuse_bad_values():
    """stations x segments + 3 states (<= 20 by default); stations < 1 is refused."""
    assert len(MODEL.states) == 12
    assert len(build_model(stations=2, segments_per_leg=4).states) == 11
    with pytest.raises(ValueError, match="stations: 0 is below 1"):
        build_model(stations=0)
    with pytest.raises(ValueError, match="segments_per_leg: 0 is below 1"):
        build_model(segments_per_leg=0)


def test_defaults_name_real_signals_and_bound_pressures_by_maop():
    """DEFAULTS refer only to the model's inputs and outputs; discharge pressures are
    bounded by MAOP 9.93 MPa (1440 psi) and a site's own MAOP replaces it."""
    assert KIND == "dra_pipeline" and DEFAULTS.period_s == 900.0
    assert set(DEFAULTS.limits) <= set(MODEL.inputs.names)
    assert set(DEFAULTS.reference) <= set(MODEL.outputs.names)
    assert MODEL.outputs["discharge_pressure_1"].upper == pytest.approx(1440 * 6894.757,
                                                                        rel=1e-3)
    assert build_model(maop=8e6).outputs["discharge_pressure_2"].upper == 8e6
