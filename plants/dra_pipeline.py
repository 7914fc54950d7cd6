"""Refined-fuel pipeline with pump stations and DRA injection skids: PHYSICS.md section 1.

A single line of inner diameter D carries one flow Q through ``stations`` pump
stations in series; leg i runs from station i to station i + 1 (the last leg to the
delivery terminal). A skid just downstream of each station injects drag-reducing agent
(DRA); the next station's pumps shear it completely, so each leg carries only its own
station's DRA.

DRA transport, each leg as ``segments_per_leg`` tanks in series of volume V = A L / n
(concentration c in ppm by volume, injection rate q in L/h; A = pi D^2 / 4):

    V dc_1/dt = q / 3.6 - Q c_1 - k_deg V c_1          (q/3.6 = Q c_inlet in ppm m^3/s)
    V dc_j/dt = Q (c_(j-1) - c_j) - k_deg V c_j         j = 2 .. n

Quasi-steady hydraulics per segment (acoustic time ~100 s << the 15 min step):

    Re    = 4 Q / (pi D nu)
    f_N   = k_f f_SJ(Re, eps/D)                         Swamee–Jain, friction multiplier k_f
    f     = smax(f_N (1 - k_DR DR(c)), f_Virk(Re))      never below Virk's asymptote
    DR(c) = DR_max c / (K + c)                           DRA-efficiency multiplier k_DR
    dP    = f (L_seg / D) rho V^2 / 2                    Darcy–Weisbach, V = Q / A

(smax is a smooth maximum of width 5 % of f_Virk, plants.hydraulics.smooth_max.)

Pump stations (one equivalent VFD pump each, affinity-law curve, relative speed N):

    H_i   = H_0 N_i^2 - B Q^2                            station head, m
    P_i   = rho g Q H_i / (eta_pump eta_motor eta_vfd)   electric power, W

Line flow. The flow that balances the line is the root Q* of the head residual

    r(Q) = sum_i (dP_i / (rho g) + dz_i) + (p_terminal - p_inlet) / (rho g) - sum_i H_i(Q)

(friction plus static head minus pump head, m; increasing in Q). The flow state relaxes
to it by a Newton flow, dQ/dt = -r(Q) / (tau_Q dr/dQ): near Q* this is the first-order
lag dQ/dt = (Q* - Q) / tau_Q, and everywhere r decays as exp(-t / tau_Q). It is smooth,
needs no implicit solve, and tau_Q = 600 s (a numerical settling time above the
~100–300 s acoustic time; RK4 with two 450 s substeps follows exp(-t / tau_Q) to
0.3 % per substep) stands for the pumps and line settling after a speed or DRA change. dr/dQ comes
from CasADi's differentiation; it is floored at 10 m per m^3/s, which binds only far below the
flow's lower bound.

Pressures are line-side, computed back from the terminal's held back-pressure:

    p_discharge,n = p_terminal + dP_n + rho g dz_n
    p_suction,i   = p_discharge,i - rho g H_i
    p_discharge,i = p_suction,(i+1) + dP_i + rho g dz_i

so at fixed flow more DRA lowers every discharge pressure; at steady state the first
station's suction equals p_inlet.

Cost rate (USD/h) = electricity price (USD/kWh) sum_i P_i / 1000 + DRA price (USD/L) sum_i q_i.

Signals (SI except where the field unit is clearer and well scaled, as marked):
    states:       dra_leg{i}_seg{j} [ppm] DRA concentration (vppm), flow [m^3/s] line flow,
                  friction_multiplier [1] k_f, dra_efficiency [1] k_DR (random walks,
                  zero dynamics, for the estimator)
    inputs:       dra_injection_{i} [L/h] skid injection rate, pump_speed_{i} [1] VFD
                  speed relative to rated; one speed per station
    disturbances: electricity_price [USD/kWh], density [kg/m^3], viscosity [m^2/s]
    outputs:      delivery_flow [m^3/s], discharge_pressure_{i} [Pa] (upper bound MAOP),
                  suction_pressure_{i} [Pa] for i >= 2, station_power_{i} [W],
                  dra_leg{i}_end [ppm], cost_rate [USD/h]
    parameters:   diameter [m], roughness [m], length_{i} [m], elevation_gain_{i} [m],
                  degradation_rate [1/s], dr_max [1], dr_half_saturation [ppm],
                  pump_shutoff_head [m], pump_head_droop [s^2/m^5], pump_efficiency,
                  motor_efficiency, vfd_efficiency [1], inlet_pressure [Pa],
                  terminal_pressure [Pa], dra_price [USD/L], flow_time_constant [s]

DR fit (Gómez Cuenca et al., Energy & Fuels 22:3293, 2008; 307 mm x 84 km diesel line):
12 vppm -> 36 % and 25 vppm -> 45 % DR. Through both points,
0.36 (K + 12)/12 = 0.45 (K + 25)/25 gives K = 0.09 / 0.012 = 7.5 ppm and
DR_max = 0.36 x 19.5 / 12 = 0.585. Chen Yang et al. (OGJ 2018) report 28–55 % for
5.8–16 ppm with another product, where this fit gives 26–40 %: a site refits DR_max
and K per product, and the EKF's dra_efficiency absorbs the rest.

Defaults: a 3-station pilot section of a 5,000-mile refined-products system; 20-in
line (508 mm OD, 9.5 mm wall, D = 0.489 m), roughness 0.045 mm, 100 km legs, diesel
(840 kg/m^3, 3 cSt) at 1200 m^3/h with 15 ppm injected at each skid. The nominal pump
speeds are computed so that the nominal point is steady with every intermediate
suction at the inlet pressure. Unverified defaults: DRA degradation 1e-5 1/s
(19 h half-life), pump curve H_0 = 800 m and B = 800 s^2/m^5, DRA price 7 USD/L.

Simplifications: one flow (no delivery tank, no side streams or batches), one
equivalent pump and constant efficiencies per station, identical station pumps,
turbulent flow only (Re = 4 Q / (pi D nu) >= 4000 needs Q >= 0.0154 m^3/s at the
default D and 10 cSt, the viscosity's upper bound: below the flow's lower bound 0.02),
DR independent of Re except through Virk's bound, DRA sheared completely at every
station, degradation first order, the multipliers constant between estimator updates.
The economic objective (cost_rate) is an output; the default controller weighs it (DEFAULTS).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import casadi as ca

from engine.config import (
    AlarmSettings,
    AssetConfig,
    ControllerSettings,
    EstimatorSettings,
    OutputLimit,
    PlantDefaults,
    SetpointLimit,
)
from engine.model import PlantModel
from engine.signals import Signal
from plants.hydraulics import (
    drag_reduction,
    reynolds_number,
    smooth_max,
    swamee_jain_friction,
    virk_friction_smooth,
)
from plants.views import PipelineView, Station

KIND = "dra_pipeline"
GRAVITY = 9.80665
"""Standard gravity, m/s^2."""
PPM_FLUX_PER_LITRE_PER_HOUR = 1e6 * 1e-3 / 3600.0
"""1 L/h of DRA into the line carries 1/3.6 ppm m^3/s (Q c with c in vppm)."""
NOMINAL_FLOW = 1200.0 / 3600.0
"""m^3/s."""
NOMINAL_INLET_CONCENTRATION = 15.0
"""ppm at each skid at the nominal point."""
MAOP = 9.93e6
"""Maximum allowable operating pressure, Pa (1440 psi), ASME class 600."""
SOFT_MAOP = 9.2e6
"""Pa; the default controller's soft upper limit on every discharge pressure: 93 % of
MAOP, 0.4 MPa (20 pressure-noise std) below the pilot site's 9.6 MPa trip interlock, so
the controller, not the interlock, keeps the pressures down."""

_VIRK_SMOOTHING = 0.05
"""Width of the smooth max against Virk's friction factor, relative to it."""
_FLOW_FLOOR = 0.01
"""m^3/s; the friction laws see at least this flow (below the state's lower bound)."""
_MIN_HEAD_SLOPE = 10.0
"""m per m^3/s; floor on dr/dQ in the flow's Newton relaxation."""

DEFAULTS = PlantDefaults(
    period_s=900.0,
    reference={"delivery_flow": NOMINAL_FLOW},
    limits={
        **{f"dra_injection_{i}": SetpointLimit(lower=0.0, upper=60.0, max_rate=10.0 / 900.0)
           for i in (1, 2, 3)},
        **{f"pump_speed_{i}": SetpointLimit(lower=0.5, upper=1.0, max_rate=0.2 / 900.0)
           for i in (1, 2, 3)},
    },
    controller=ControllerSettings(
        backend="fast",
        horizon=16,
        tracking={"delivery_flow": 100.0},
        move_suppression={**{f"dra_injection_{i}": 0.05 for i in (1, 2, 3)},
                          **{f"pump_speed_{i}": 0.1 for i in (1, 2, 3)}},
        input_tracking={**{f"dra_injection_{i}": 1.0 for i in (1, 2, 3)},
                        **{f"pump_speed_{i}": 1.0 for i in (1, 2, 3)}},
        economic={"cost_rate": 1.0},
        output_limits={f"discharge_pressure_{i}": OutputLimit(upper=SOFT_MAOP, penalty=1e3)
                       for i in (1, 2, 3)},
    ),
    estimator=EstimatorSettings(
        initial_std={"friction_multiplier": 0.05, "dra_efficiency": 0.1},
    ),
    alarms=[
        *[alarm for i in (1, 2, 3) for alarm in (
            AlarmSettings(signal=f"discharge_pressure_{i}", kind="HI", limit=SOFT_MAOP + 0.2e6,
                          deadband=0.1e6, priority="MEDIUM",
                          suppressed_by=[f"discharge_pressure_{i}.HIHI"],
                          message=f"station {i} discharge above the controller's soft limit"),
            AlarmSettings(signal=f"discharge_pressure_{i}", kind="HIHI", limit=MAOP - 0.2e6,
                          deadband=0.1e6, priority="HIGH",
                          message=f"station {i} discharge within 0.2 MPa of MAOP 9.93 MPa"),
        )],
    ],
)
"""Alarms on each discharge pressure: HI 9.4 MPa, 10 pressure-noise std (0.02 MPa) above
the controller's soft limit, so riding that limit does not alarm; HIHI 9.73 MPa, 10 std
below the 9.93 MPa MAOP; deadbands 5 std.

For the default 3 stations: 15 min step, 4 h horizon; skids move at most 10 L/h and
pumps 0.2 of rated speed per step (skids 0–60 L/h, i.e. up to 50 ppm at 1200 m^3/h;
speeds 0.5–1.0 of rated); the multipliers start 5 % and 10 % uncertain.

Economic fast MPC (weights in spans, ControllerSettings): the stage cost is

    100 ((Q - Q_nom) / 0.7 m^3/s)^2 + 1 cost_rate / 2e5 USD/h
        + 1e3 (e + e^2), e = max(0, p_discharge,i - SOFT_MAOP) / MAOP

so a delivery 1 % (12 m^3/h) off the nomination costs as much as about 450 USD/h of
pumping and DRA (the nominal cost is about 740 USD/h): the nomination is met to a
fraction of a percent while the split between pump power and DRA is the cheapest one
the model knows. Chosen by experiment on the pilot's mismatched plant: economic weights 1 and 10
give the same cost per m^3 within 0.5 %; 100 lets the delivery sag by about 1 %. With the
default prices (0.10 USD/kWh, 7 USD/L) DRA does not pay at 1200 m^3/h and the
controller winds it down, 43 % cheaper per m^3 over 8 h than tracking at 15 ppm
(tests/plants/test_pilot_economics.py); it pays where pump speed or pressure bind."""


def build_model(
    dt: float = 900.0, stations: int = 3, segments_per_leg: int = 3, maop: float = MAOP
) -> PlantModel:
    """The pipeline with ``stations`` stations, each leg as ``segments_per_leg`` DRA
    tanks in series, discharge pressures bounded by ``maop`` Pa; step ``dt`` s.

    State count: stations x segments_per_leg + 3."""
    if stations < 1:
        raise ValueError(f"stations: {stations} is below 1")
    if segments_per_leg < 1:
        raise ValueError(f"segments_per_leg: {segments_per_leg} is below 1")
    if not maop > 0:
        raise ValueError(f"maop: {maop} Pa must be positive")
    legs = range(1, stations + 1)
    parameters = _parameters(stations)
    disturbances = [
        Signal("electricity_price", "USD/kWh", 0.10, 0.0, 5.0, "electricity price"),
        Signal("density", "kg/m^3", 840.0, 650.0, 1000.0, "product density (diesel)"),
        Signal("viscosity", "m^2/s", 3.0e-6, 0.5e-6, 1.0e-5, "product kinematic viscosity"),
    ]
    p0 = {s.name: s.nominal for s in parameters}
    d0 = {s.name: s.nominal for s in disturbances}
    concentrations0 = _steady_concentrations(p0, stations, segments_per_leg)
    speeds0 = _steady_speeds(concentrations0, p0, d0)
    injection0 = NOMINAL_INLET_CONCENTRATION * NOMINAL_FLOW / PPM_FLUX_PER_LITRE_PER_HOUR

    states = [
        Signal(_segment(i, j), "ppm", concentrations0[i - 1][j - 1], 0.0, 500.0,
               f"DRA concentration (vppm), leg {i} segment {j}", std=1e-3)
        for i in legs for j in range(1, segments_per_leg + 1)
    ] + [
        Signal("flow", "m^3/s", NOMINAL_FLOW, 0.02, 0.7, "line flow", std=1e-5),
        Signal("friction_multiplier", "1", 1.0, 0.5, 2.0,
               "multiplier on the Newtonian friction factor", std=5e-5),
        Signal("dra_efficiency", "1", 1.0, 0.0, 1.6,
               "multiplier on the DRA drag reduction", std=1e-4),
    ]
    inputs = [
        Signal(f"dra_injection_{i}", "L/h", injection0, 0.0, 100.0,
               f"DRA injection rate, skid {i}") for i in legs
    ] + [
        Signal(f"pump_speed_{i}", "1", speeds0[i - 1], 0.5, 1.05,
               f"pump speed relative to rated, station {i}") for i in legs
    ]
    pressure0 = _pressures(NOMINAL_FLOW, concentrations0, 1.0, 1.0, speeds0, p0, d0)
    power0 = [_station_power(NOMINAL_FLOW, head, p0, d0)
              for head in _pump_heads(NOMINAL_FLOW, speeds0, p0)]
    cost0 = (d0["electricity_price"] * sum(power0) / 1000.0
             + p0["dra_price"] * injection0 * stations)
    outputs = [
        Signal("delivery_flow", "m^3/s", NOMINAL_FLOW, 0.0, 0.7, "flow into the terminal",
               std=2e-3),
    ] + [
        Signal(f"discharge_pressure_{i}", "Pa", pressure0[0][i - 1], 0.0, maop,
               f"discharge pressure, station {i}", std=2e4) for i in legs
    ] + [
        Signal(f"suction_pressure_{i}", "Pa", pressure0[1][i - 1], 0.0, maop,
               f"suction pressure, station {i}", std=2e4) for i in legs if i > 1
    ] + [
        Signal(f"station_power_{i}", "W", power0[i - 1], 0.0, 2.0e7,
               f"electric power, station {i}", std=1e4) for i in legs
    ] + [
        Signal(f"dra_leg{i}_end", "ppm", concentrations0[i - 1][-1], 0.0, 500.0,
               f"DRA concentration (vppm) at the end of leg {i}", std=0.5) for i in legs
    ] + [
        Signal("cost_rate", "USD/h", cost0, -1.0e5, 1.0e5,
               "electricity plus DRA cost per hour", std=1.0),
    ]

    def concentrations(x):
        return [[x[_segment(i, j)] for j in range(1, segments_per_leg + 1)] for i in legs]

    def speeds(u):
        return [u[f"pump_speed_{i}"] for i in legs]

    def dynamics(x, u, d, p):
        flow, c = x["flow"], concentrations(x)
        rates = {}
        for i in legs:
            volume = _area(p) * p[f"length_{i}"] / segments_per_leg
            upstream = u[f"dra_injection_{i}"] * PPM_FLUX_PER_LITRE_PER_HOUR
            for j, c_j in enumerate(c[i - 1], start=1):
                rates[_segment(i, j)] = ((upstream - flow * c_j) / volume
                                         - p["degradation_rate"] * c_j)
                upstream = flow * c_j
        residual = _head_residual(flow, c, x["friction_multiplier"], x["dra_efficiency"],
                                  speeds(u), p, d)
        slope = ca.fmax(ca.jacobian(residual, flow), _MIN_HEAD_SLOPE)
        rates["flow"] = -residual / (p["flow_time_constant"] * slope)
        rates["friction_multiplier"] = ca.SX(0)
        rates["dra_efficiency"] = ca.SX(0)
        return rates

    def output(x, u, d, p):
        flow, c, n = x["flow"], concentrations(x), speeds(u)
        discharge, suction = _pressures(flow, c, x["friction_multiplier"],
                                        x["dra_efficiency"], n, p, d)
        power = [_station_power(flow, head, p, d) for head in _pump_heads(flow, n, p)]
        values = {"delivery_flow": flow}
        for i in legs:
            values[f"discharge_pressure_{i}"] = discharge[i - 1]
            values[f"station_power_{i}"] = power[i - 1]
            values[f"dra_leg{i}_end"] = c[i - 1][-1]
            if i > 1:
                values[f"suction_pressure_{i}"] = suction[i - 1]
        values["cost_rate"] = (d["electricity_price"] * sum(power) / 1000.0
                               + p["dra_price"] * sum(u[f"dra_injection_{i}"] for i in legs))
        return values

    return PlantModel.build(
        KIND, states=states, inputs=inputs, disturbances=disturbances, parameters=parameters,
        outputs=outputs, dynamics=dynamics, output=output, dt=dt, substeps=2,
    )


def currency(asset: AssetConfig) -> str:
    """The site's currency for the line's costs: its tariff's (USD without one)."""
    return asset.tariff.currency if asset.tariff else "USD"


def kpi_units(asset: AssetConfig) -> dict[str, str]:
    """The line's KPIs (:func:`kpis`) and their SI units (costs in the tariff's currency)."""
    return {"cost_rate": f"{currency(asset)}/h", "specific_energy": "J/m3"}


def kpis(model: PlantModel, asset: AssetConfig, x: Mapping, u: Mapping, d: Mapping,
         p: Mapping, y: Mapping) -> dict[str, float]:
    """The line's KPIs at the twin's estimate: ``cost_rate``, electricity plus DRA per hour
    (the model's output, as the screen shows it), and ``specific_energy``, the stations'
    electric power over the delivered flow, sum_i P_i / Q, J/m^3 (left out at zero flow)."""
    legs = sum(n.startswith("pump_speed_") for n in model.inputs.names)
    values = {"cost_rate": float(y["cost_rate"])}
    if y["delivery_flow"] > 0:
        values["specific_energy"] = (sum(float(y[f"station_power_{i}"])
                                         for i in range(1, legs + 1)) / float(y["delivery_flow"]))
    return values


def view(model: PlantModel, asset: AssetConfig, x: Mapping, u: Mapping, d: Mapping,
         p: Mapping, y: Mapping, reference: Mapping[str, float],
         measured: Mapping[str, float]) -> PipelineView:
    """The line's screen at the twin's estimate (plants.views.PipelineView): the model's
    outputs there (``y``: each station's pressures and power, the cost rate) against each
    station's MAOP (the model's bound on its discharge pressure), with the DRA states."""
    legs = range(1, sum(n.startswith("pump_speed_") for n in model.inputs.names) + 1)
    segments = sum(n.startswith("dra_leg1_seg") for n in model.states.names)
    chainage, stations = 0.0, []
    for i in legs:
        stations.append(Station(
            number=i, chainage=chainage,
            suction_pressure=float(p["inlet_pressure"] if i == 1 else y[f"suction_pressure_{i}"]),
            discharge_pressure=float(y[f"discharge_pressure_{i}"]),
            maop=model.outputs[f"discharge_pressure_{i}"].upper,
            power=float(y[f"station_power_{i}"]), pump_speed=float(u[f"pump_speed_{i}"]),
            dra_injection=float(u[f"dra_injection_{i}"]),
            dra_concentration=[float(x[_segment(i, j)]) for j in range(1, segments + 1)]))
        chainage += float(p[f"length_{i}"])
    nomination = asset.nomination
    nominated = None if nomination is None else (
        sum(nomination.daily_volume) / len(nomination.daily_volume) / 86400.0
        if nomination.daily_volume else sum(nomination.hourly_flow) / len(nomination.hourly_flow))
    return PipelineView(stations=stations, length=chainage,
                        terminal_pressure=float(p["terminal_pressure"]),
                        flow=float(y["delivery_flow"]), nominated_flow=nominated,
                        cost_rate=float(y["cost_rate"]),
                        currency=currency(asset))


def _parameters(stations: int) -> list[Signal]:
    legs = range(1, stations + 1)
    return [
        Signal("diameter", "m", 0.489, 0.05, 2.0, "inner diameter (20-in, 9.5 mm wall)"),
        Signal("roughness", "m", 4.5e-5, 0.0, 1.0e-3, "absolute wall roughness"),
        *[Signal(f"length_{i}", "m", 100.0e3, 1.0e3, 400.0e3, f"length of leg {i}")
          for i in legs],
        *[Signal(f"elevation_gain_{i}", "m", 0.0, -1500.0, 1500.0,
                 f"end minus start elevation of leg {i}") for i in legs],
        Signal("degradation_rate", "1/s", 1.0e-5, 0.0, 1.0e-3,
               "first-order DRA degradation rate along the line (unverified)"),
        Signal("dr_max", "1", 0.585, 0.0, 0.99,
               "maximum drag reduction of the DRA product (fit: Gómez Cuenca 2008)"),
        Signal("dr_half_saturation", "ppm", 7.5, 0.1, 200.0,
               "concentration at half the maximum drag reduction (fit: Gómez Cuenca 2008)"),
        Signal("pump_shutoff_head", "m", 800.0, 10.0, 3000.0,
               "station shut-off head at rated speed (unverified)"),
        Signal("pump_head_droop", "s^2/m^5", 800.0, 0.0, 1.0e5,
               "B in H = H_0 N^2 - B Q^2 (unverified)"),
        Signal("pump_efficiency", "1", 0.82, 0.1, 1.0, "pump hydraulic efficiency"),
        Signal("motor_efficiency", "1", 0.95, 0.1, 1.0, "motor efficiency"),
        Signal("vfd_efficiency", "1", 0.97, 0.1, 1.0, "variable-frequency drive efficiency"),
        Signal("inlet_pressure", "Pa", 0.5e6, 0.0, 5.0e6, "suction pressure at station 1"),
        Signal("terminal_pressure", "Pa", 0.5e6, 0.0, 5.0e6,
               "back-pressure held at the delivery terminal"),
        Signal("dra_price", "USD/L", 7.0, 0.0, 100.0, "DRA product price (unverified)"),
        Signal("flow_time_constant", "s", 600.0, 60.0, 3600.0,
               "settling time of the line flow after a speed or DRA change"),
    ]


def _segment(leg: int, segment: int) -> str:
    return f"dra_leg{leg}_seg{segment}"


def _area(p):
    return math.pi * p["diameter"] ** 2 / 4.0


def _leg_pressure_drops(flow, concentrations, friction_multiplier, dra_efficiency, p, d):
    """Darcy–Weisbach friction loss of each leg, Pa, summed over its segments."""
    q = ca.fmax(flow, _FLOW_FLOOR)
    reynolds = reynolds_number(q, p["diameter"], d["viscosity"])
    newtonian = friction_multiplier * swamee_jain_friction(reynolds,
                                                           p["roughness"] / p["diameter"])
    virk = virk_friction_smooth(reynolds)
    dynamic_per_length = d["density"] * (q / _area(p)) ** 2 / (2.0 * p["diameter"])
    drops = []
    for i, leg in enumerate(concentrations, start=1):
        segment_length = p[f"length_{i}"] / len(leg)
        friction = sum(
            smooth_max(newtonian * (1.0 - dra_efficiency * drag_reduction(
                c, p["dr_max"], p["dr_half_saturation"])), virk, _VIRK_SMOOTHING * virk)
            for c in leg)
        drops.append(friction * segment_length * dynamic_per_length)
    return drops


def _pump_heads(flow, speeds, p):
    """H_i = H_0 N_i^2 - B Q^2, m."""
    return [p["pump_shutoff_head"] * n**2 - p["pump_head_droop"] * flow**2 for n in speeds]


def _station_power(flow, head, p, d):
    """P = rho g Q H / (eta_pump eta_motor eta_vfd), W."""
    efficiency = p["pump_efficiency"] * p["motor_efficiency"] * p["vfd_efficiency"]
    return d["density"] * GRAVITY * flow * head / efficiency


def _head_residual(flow, concentrations, friction_multiplier, dra_efficiency, speeds, p, d):
    """Friction plus static head minus pump head over the whole line, m."""
    rho_g = d["density"] * GRAVITY
    drops = _leg_pressure_drops(flow, concentrations, friction_multiplier, dra_efficiency,
                                p, d)
    required = sum(drop / rho_g + p[f"elevation_gain_{i}"]
                   for i, drop in enumerate(drops, start=1))
    required += (p["terminal_pressure"] - p["inlet_pressure"]) / rho_g
    return required - sum(_pump_heads(flow, speeds, p))


def _pressures(flow, concentrations, friction_multiplier, dra_efficiency, speeds, p, d):
    """(discharge, suction) pressures per station, Pa, back from the terminal."""
    rho_g = d["density"] * GRAVITY
    drops = _leg_pressure_drops(flow, concentrations, friction_multiplier, dra_efficiency,
                                p, d)
    heads = _pump_heads(flow, speeds, p)
    discharge, suction = [0.0] * len(speeds), [0.0] * len(speeds)
    downstream = p["terminal_pressure"]
    for i in reversed(range(len(speeds))):
        discharge[i] = downstream + drops[i] + rho_g * p[f"elevation_gain_{i + 1}"]
        suction[i] = discharge[i] - rho_g * heads[i]
        downstream = suction[i]
    return discharge, suction


def _steady_concentrations(p, stations: int, segments: int) -> list[list[float]]:
    """Tanks in series at the nominal flow and inlet concentration:
    c_j = c_inlet r^j with r = 1 / (1 + k_deg V / Q)."""
    concentrations = []
    for i in range(1, stations + 1):
        residence = _area(p) * p[f"length_{i}"] / segments / NOMINAL_FLOW
        ratio = 1.0 / (1.0 + p["degradation_rate"] * residence)
        concentrations.append([NOMINAL_INLET_CONCENTRATION * ratio**j
                               for j in range(1, segments + 1)])
    return concentrations


def _steady_speeds(concentrations, p, d) -> list[float]:
    """Speeds at which each station lifts its leg's friction and elevation at the
    nominal flow, with every intermediate suction at the inlet pressure and the last
    leg ending at the terminal pressure: N_i = sqrt((H_i + B Q^2) / H_0)."""
    rho_g = d["density"] * GRAVITY
    drops = _leg_pressure_drops(NOMINAL_FLOW, concentrations, 1.0, 1.0, p, d)
    speeds = []
    for i, drop in enumerate(drops, start=1):
        downstream = p["terminal_pressure"] if i == len(drops) else p["inlet_pressure"]
        head = (downstream - p["inlet_pressure"] + drop) / rho_g + p[f"elevation_gain_{i}"]
        speeds.append(math.sqrt((head + p["pump_head_droop"] * NOMINAL_FLOW**2)
                                / p["pump_shutoff_head"]))
    return speeds
