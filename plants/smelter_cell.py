"""Hall–Héroult aluminium reduction cell: PHYSICS.md section 4.

Five states: dissolved and undissolved alumina, anode–cathode distance (ACD), bath
temperature and side-ledge thickness, in the 5-state form PHYSICS.md suggests for MPC.

Alumina (point feeding averaged over shots; a fraction r of the feed dissolves slowly):

    du/dt   = r F - k_d u                                            [kg/s]
    dm/dt   = (1 - r) F + k_d u - I CE M_Al2O3 / (6 F_c) g(w)        [kg/s]
    w       = m / M_bath                                             [mass fraction]

g(w) = 1 - exp(-w / 0.1 %) is 1 in operation and fades the consumption to zero as the
bath is exhausted (see depletion_factor).

ACD, moved by the anode beam, drifting with anode burn-off net of metal-pad rise:

    dACD/dt = beam_rate + acd_drift                                  [m/s]

Cell voltage: Haupin's breakdown (plants/haupin.py), each term at its own current
density: the anode surface and concentration overvoltages and the bubble layer at
i_a = I / A_anode over the anodes' working area (A_anode = n L W), the bath drop
I ACD / (kappa A_bath(ACD)) over the area the current fans out to (each anode grown by
a fringe of a ACD on every side), the cathode overvoltage at I / A_cathode; anode,
cathode and external drops as fixed resistances. At 5 cm ACD (the reference cell of
REFERENCE_BREAKDOWN) the terms are 1.22 V reversible, 0.51 V anode overvoltage,
0.07 V cathode, 1.50 V bath, 0.19 V bubble and 0.84 V fixed: 4.31 V.

Liquidus: Solheim et al. (1996) in the bath's chemistry, T_liq(w, AlF3, CaF2, MgF2)
(haupin.liquidus_temperature): 950.6 °C for the nominal bath at 3 % alumina, lower with
more alumina (about 6 K per wt%) and more AlF3 (about 4 K per wt% here), so the
superheat T - T_liq, and the ledge it melts or freezes, move with the chemistry.

Heat (one lumped bath + metal node of heat capacity C; 1-D conduction through the
ledge and the side lining in series; Stefan condition at the ledge face):

    q_in    = h (T - T_liq)                   bath -> ledge face          [W/m²]
    q_out   = (T_liq - T_amb) / (s / k + R_wall)  ledge face -> pot room  [W/m²]
    C dT/dt = I V - I CE E_H - A_side q_in - UA_top (T - T_amb)          [W]
    rho L ds/dt = q_out - q_in                                           [W/m²]

E_H = 2.128 V is the enthalpy of 2 Al2O3 + 3 C -> 4 Al + 3 CO2 with reactants from
25 °C to products at 960 °C, 6.34 kWh/kg Al (Kvande & Haupin, JOM 53(5):29, 2001),
over 2.980 kWh/(kg V). With the nominal chemistry and alumina up to the top of
ALUMINA_BAND, while the bath is below its upper bound the ledge cannot melt through: at
s = 0, q_out = (T_liq - T_amb)/R_wall exceeds the largest q_in (tested). That needs a
liquidus above 944.6 °C; a bath with more AlF3 or alumina, held at 980 °C, melts the
ledge away, and the model does not stop it at zero (a real cell's side wall is then
attacked).

Outputs: cell voltage; pseudo-resistance (V - 1.65)/I; bath temperature; specific
energy V / CE * 3 F_c / M_Al (= 2.980 V/CE kWh/kg); the anode-effect indicator i/i_c
(bounded by 1, see haupin.anode_effect_indicator); alumina mass fraction (a bath sample
in practice, hence its large noise).

Signals (SI):
    states:       alumina_dissolved [kg], alumina_undissolved [kg], acd [m],
                  bath_temperature [K], ledge_thickness [m]
    inputs:       alumina_feed [kg/s], beam_rate [m/s]
    disturbances: line_current [A], ambient_temperature [K], acd_drift [m/s],
                  excess_alf3 [1] (mass fraction, from the daily bath sample: AlF3
                  additions and sodium uptake move it over days)
    parameters:   ... caf2 [1], mgf2 [1] (mass fractions, slow: they accumulate from
                  the alumina's impurities), see parameter_signals
    outputs:      cell_voltage [V], pseudo_resistance [Ohm], bath_temperature [K],
                  specific_energy [J/kg], anode_effect_indicator [1], alumina_fraction [1]

Nominal cell: 300 kA, 40 anodes of 1.60 m x 0.65 m (41.6 m², 0.72 A/cm²), 50 m² of
metal pad, 12.5 % excess AlF3 (cryolite ratio 2.15), 5 % CaF2, 0.5 % MgF2, 3 % alumina,
10 t of bath, 960 °C with 9.4 K superheat, CE 0.94. The nominal ACD is the one that
closes the heat balance (as operators set it), the nominal ledge the one that passes
the nominal side heat flux, the nominal feed the consumption: the nominal point is a
steady state.

Simplifications: constant bath mass (melted ledge and tapped metal not tracked), CE a
parameter, the bath chemistry other than alumina given (AlF3 a disturbance, not a
state driven by additions), feed shots averaged into a rate and their sensible heat
charged at the consumption rate through E_H, bath chemistry without LiF/KF, the
liquidus of the bulk bath used at the ledge face, no metal-pad or MHD effects. The
anode effect is bounded: where a real cell jumps to tens of volts, the smooth limits
here raise the voltage by about 1.6 V (mostly bubble layer), so flag it by the
indicator, not the voltage. Alumina below 0.3 wt% is read as 0.3 wt% by the voltage
and the liquidus.
"""

from __future__ import annotations

from collections.abc import Mapping

import casadi as ca
from scipy.optimize import brentq

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
from plants import haupin
from plants.views import SmelterView

KIND = "smelter_cell"
CELSIUS = haupin.CELSIUS
FARADAY = haupin.FARADAY
MOLAR_MASS_ALUMINA = 0.1019600
"""kg/mol, Al2O3."""
MOLAR_MASS_ALUMINIUM = 0.02698154
"""kg/mol, Al."""
DEPLETION_SCALE = 1e-3
"""Alumina mass fraction over which Faradaic consumption fades at exhaustion."""
BACK_EMF = 1.65
"""Intercept of the pseudo-resistance (V - 1.65)/I, V (PHYSICS.md section 4)."""

NOMINAL_CURRENT = 3.0e5
NOMINAL_TEMPERATURE = 960.0 + CELSIUS
NOMINAL_ALUMINA = 0.03
NOMINAL_AMBIENT = 40.0 + CELSIUS
NOMINAL_EXCESS_ALF3 = 0.125
"""Mass fraction: with 5 % CaF2, 0.5 % MgF2 and 3 % alumina a liquidus of 950.6 °C
(Solheim et al. 1996), 9.4 K under the nominal 960 °C."""
EXCESS_ALF3 = Signal("excess_alf3", "1", NOMINAL_EXCESS_ALF3, 0.0, 0.2,
                     "excess AlF3 mass fraction of the bath (bath sample)")
"""The disturbance excess_alf3, one definition for the model and nominal_state (its
bounds are this model's engineering bounds, as before; industrial baths run about
8–14 %)."""
ALUMINA_FLOOR = 0.003
"""Mass fraction below which the voltage and liquidus read the alumina as this (smooth
floor, 0.01 % wide), to keep their logarithms and ratios defined."""

BATH_TEMPERATURE_BAND = (955.0 + CELSIUS, 965.0 + CELSIUS)
"""K: about 5–15 K of superheat over the nominal bath's liquidus (950.6 °C at 3 %
alumina) around the typical 960 °C (PHYSICS.md section 4); less superheat freezes
ledge and risks freezing the bath, more melts the ledge. The liquidus moves with the
chemistry (about -6 K per wt% alumina), so the band is a temperature band, not a
superheat band."""
ALUMINA_BAND = (0.02, 0.04)
"""Alumina mass fraction: below about 2 % the anode effect nears (the indicator rises),
above about 4 % undissolved alumina sludges (point-fed cells run 2–4 wt%)."""
MIN_PSEUDO_RESISTANCE = 7.2e-6
"""Ohm: (V - 1.65) / I at an ACD of 32 mm, 955 °C, 3 % alumina and 300 kA with the
nominal chemistry; the soft floor that keeps the ACD, which is not measured, well above
its 20 mm bound."""

REFERENCE_ACD = 0.05
"""m: the ACD at which this cell is compared with REFERENCE_BREAKDOWN, the upper end of
the 4–5 cm of industrial prebake cells (Grjotheim & Welch, Aluminium Smelter
Technology, 1988), at 300 kA, 960 °C, 3 % alumina and the nominal chemistry."""
REFERENCE_BREAKDOWN = {
    "reversible": (1.15, 1.25),
    "anode_overvoltage": (0.50, 0.60),
    "cathode_concentration": (0.05, 0.15),
    "bath": (1.50, 1.70),
    "bubble": (0.20, 0.30),
}
"""V: Haupin's breakdown of a prebake cell's voltage ("Interpreting the components of
cell voltage", Light Metals 1998): reversible (decomposition) voltage ~1.2 V,
anode overvoltage (surface + concentration) 0.5–0.6 V, cathode concentration
overvoltage ~0.1 V, bath ohmic drop 1.5–1.7 V, bubble layer 0.2–0.3 V; the anode,
cathode and external drops are this cell's resistances. Checked per term with a
tolerance of 0.05 V on each end (the published figures are rounded) and in total within
the sum of the ranges plus the fixed drops, widened by 0.1 V."""
BATH_ALARM_MARGIN = 3.0
"""K: the bath temperature alarms sit this far outside BATH_TEMPERATURE_BAND (2 noise std
of the 1.5 K thermocouple), because the economic controller holds the bath at the band's
cool edge by design (see DEFAULTS); LO is then about 2 K of superheat over the nominal chemistry's
951 °C liquidus."""
ANODE_EFFECT_ALARM = 0.9
"""The anode-effect indicator i/i_c (1 at the anode effect) above which the anode effect
is imminent: starving the nominal cell of feed takes it past 0.9 before the effect
(test_smelter_cell), minutes of warning at the alumina's depletion rate."""

DEFAULTS = PlantDefaults(
    period_s=60.0,
    reference={"alumina_fraction": NOMINAL_ALUMINA},
    limits={
        "alumina_feed": SetpointLimit(lower=0.0, upper=0.15, max_rate=0.005),
        "beam_rate": SetpointLimit(lower=-5e-5, upper=5e-5, max_rate=5e-6),
    },
    controller=ControllerSettings(
        backend="fast",
        horizon=30,
        tracking={"alumina_fraction": 1.0},
        move_suppression={"alumina_feed": 0.1, "beam_rate": 0.5},
        economic={"specific_energy": 1.0},
        output_limits={
            "bath_temperature": OutputLimit(lower=BATH_TEMPERATURE_BAND[0],
                                            upper=BATH_TEMPERATURE_BAND[1], penalty=1e3),
            "alumina_fraction": OutputLimit(lower=ALUMINA_BAND[0], upper=ALUMINA_BAND[1],
                                            penalty=1e3),
            "pseudo_resistance": OutputLimit(lower=MIN_PSEUDO_RESISTANCE, penalty=1e3),
        },
    ),
    estimator=EstimatorSettings(unfiltered_outputs=["pseudo_resistance", "specific_energy"],
                                initial_std={
        "alumina_dissolved": 50.0, "alumina_undissolved": 5.0, "acd": 3e-3,
        "bath_temperature": 3.0, "ledge_thickness": 0.02,
    }),
    alarms=[
        AlarmSettings(signal="anode_effect_indicator", kind="HI", limit=ANODE_EFFECT_ALARM,
                      deadband=0.02, priority="HIGH", name="anode_effect",
                      message="anode effect imminent or on: feed alumina now"),
        AlarmSettings(signal="bath_temperature", kind="LO",
                      limit=BATH_TEMPERATURE_BAND[0] - BATH_ALARM_MARGIN, deadband=1.5,
                      on_delay_s=150.0, priority="MEDIUM",
                      message="bath superheat under 2 K: the bath may freeze"),
        AlarmSettings(signal="bath_temperature", kind="HI",
                      limit=BATH_TEMPERATURE_BAND[1] + BATH_ALARM_MARGIN, deadband=1.5,
                      on_delay_s=150.0, priority="MEDIUM",
                      message="bath superheat over 18 K: the side ledge melts"),
        AlarmSettings(signal="alumina_fraction", kind="LO", limit=ALUMINA_BAND[0],
                      deadband=2e-3, on_delay_s=150.0, priority="MEDIUM",
                      suppressed_by=["anode_effect"],
                      message="alumina below 2 %: the anode effect nears"),
        AlarmSettings(signal="alumina_fraction", kind="HI", limit=ALUMINA_BAND[1],
                      deadband=2e-3, on_delay_s=150.0, priority="MEDIUM",
                      message="alumina above 4 %: undissolved alumina sludges"),
    ],
)
"""A 60 s step: feed cycles and the dissolution time (1/k_d = 500 s) are minutes, the
alumina inventory turns over in about 1.7 h and the heat balance in hours, and the
pseudo-resistance (every 5–10 s) is averaged over a step. 30 steps look half an hour
ahead. Feed moves at most 0.005 kg/s per second; the beam at most 3 mm/min.

Alarms: the anode effect (ANODE_EFFECT_ALARM), the bath temperature BATH_ALARM_MARGIN
outside its band and the alumina outside ALUMINA_BAND (PHYSICS.md section 4), the last
two on their third consecutive minute (on-delay 150 s) with a deadband of one noise std;
the alumina LO is suppressed by design while the anode-effect alarm is active.

Economic fast MPC (weights in spans, ControllerSettings): the stage cost is

    1 SE / 1e8 J/kg + 1 ((w - 3 %) / 0.1)^2 + 0.1 (dF / 0.2 kg/s)^2 + 0.5 (dv / 2e-4 m/s)^2
        + 1e3 sum_c (e_c + e_c^2)            soft limits c, violations e_c in spans

minimising the specific energy SE (kWh/kg Al is SE / 3.6e6) with the bath temperature
in BATH_TEMPERATURE_BAND, the alumina in ALUMINA_BAND and the pseudo-resistance above
MIN_PSEUDO_RESISTANCE. At steady state the heat balance fixes the voltage at a given
bath temperature, so the controller lowers the ACD until the bath sits at the band's
cool edge (less superheat: less side heat loss, a thicker ledge). The bath
temperature has no reference, so it is not tracked (a site or operator that sets one
gets it tracked with weight 1). The alumina is held near 3 % by a small tracking weight:
with the voltage pinned by the heat balance, the ACD and alumina trade against each
other, and leaner alumina raises the liquidus (less superheat, less side loss), so,
untracked, the alumina falls towards the band's bottom and the anode effect (2.2 %
after 2 h on cell-01, still falling). The pseudo-resistance floor keeps the ACD (not
measured) near 32 mm: without it the controller dived the plant's ACD to 7.6 mm,
below the state's 20 mm bound, for a quicker cool-down. Weights chosen by experiment on
the pilot cells: economic weights 1 and 10 give the same energy within 0.1 %. Measured
against tracking 960 °C and 3 % on the pilot's cells: 8.2 % less energy per kg Al over
2 h (tests/plants/test_pilot_economics.py) and over 10 h (12.27 against 13.37 kWh/kg,
cell-02), the ACD held on its floor (31 mm) and the alumina at 2.7–2.8 %.

The filter leaves the specific energy and the pseudo-resistance out of its corrections:
both are the measured cell voltage rescaled (by the current and by the current
efficiency, which the model holds at 0.94), so filtering them counted the voltage's
noise three times and let a cell whose efficiency differs (cell-02, 0.98 of the
model's) fail the NIS test on every correction through its specific energy alone."""


def parameter_signals() -> list[Signal]:
    """The cell's parameters with their nominal values (the 300 kA cell above)."""
    return [
        Signal("current_efficiency", "1", 0.94, 0.80, 0.99, "Faradaic current efficiency"),
        Signal("anode_count", "1", 40.0, 1.0, 100.0, "anodes in the cell"),
        Signal("anode_length", "m", 1.60, 0.3, 3.0, "length of one anode's bottom face"),
        Signal("anode_width", "m", 0.65, 0.3, 2.0, "width of one anode's bottom face"),
        Signal("fanning_allowance", "1", 0.5, 0.0, 2.0,
               "fringe of the bath current beyond each anode edge, per m of ACD"),
        Signal("cathode_area", "m^2", 50.0, 1.0, 200.0, "metal pad (cathode) area"),
        Signal("caf2", "1", 0.05, 0.0, 0.1, "CaF2 mass fraction of the bath"),
        Signal("mgf2", "1", 0.005, 0.0, 0.05, "MgF2 mass fraction of the bath"),
        Signal("bath_mass", "kg", 1.0e4, 1.0e3, 5.0e4, "electrolyte mass"),
        Signal("slow_fraction", "1", 0.4, 0.0, 1.0, "share of the feed that dissolves slowly"),
        Signal("dissolution_rate", "1/s", 2.0e-3, 1.0e-5, 1.0, "k_d of undissolved alumina"),
        Signal("anode_resistance", "Ohm", 1.2e-6, 0.0, 1e-5, "anode assembly and carbon"),
        Signal("cathode_resistance", "Ohm", 0.9e-6, 0.0, 1e-5, "cathode block and collector"),
        Signal("external_resistance", "Ohm", 0.7e-6, 0.0, 1e-5, "busbars, cell's share"),
        Signal("enthalpy_voltage", "V", 2.128, 1.5, 2.5, "E_H: reaction + reactant heating"),
        Signal("heat_capacity", "J/K", 4.2e7, 1.0e6, 1.0e9, "bath and metal pad"),
        Signal("side_area", "m^2", 16.0, 1.0, 100.0, "ledge area wetted by bath and metal"),
        Signal("ledge_htc", "W/(m^2 K)", 1000.0, 50.0, 5000.0, "bath-to-ledge coefficient h"),
        Signal("ledge_conductivity", "W/(m K)", 1.6, 0.5, 5.0, "frozen bath k"),
        Signal("wall_resistance", "m^2 K/W", 0.025, 1e-3, 1.0, "side lining, shell and air"),
        Signal("top_bottom_conductance", "W/K", 540.0, 10.0, 1e4, "crust, top and bottom loss"),
        Signal("ledge_density", "kg/m^3", 2500.0, 1500.0, 3500.0, "frozen bath density"),
        Signal("ledge_latent_heat", "J/kg", 5.1e5, 1e5, 1e6, "heat of fusion of the bath"),
    ]


def anode_area(p: Mapping):
    """Working (bottom) area of all anodes, n L W, m²: 41.6 m² nominal."""
    return p["anode_count"] * p["anode_length"] * p["anode_width"]


def anode_current_density(current, p: Mapping):
    """i_a = I / (n L W), A/m²: the current density of Haupin's anode terms."""
    return current / anode_area(p)


def bath_area(acd, p: Mapping):
    """Effective area of the bath drop at ``acd`` m, m² (haupin.fanned_bath_area): 1.10
    times the anodes' area at 4.5 cm and 1.13 times at 6 cm with the nominal allowance
    of half the ACD, the range of the single fanning factor f of Yao et al. (2017;
    1.138 for their cell)."""
    return haupin.fanned_bath_area(acd, p["anode_count"], p["anode_length"],
                                   p["anode_width"], p["fanning_allowance"])


def floored_alumina(alumina):
    """The alumina mass fraction as the voltage and liquidus read it: kept above
    :data:`ALUMINA_FLOOR` by a smooth max."""
    return haupin.smooth_max(alumina, ALUMINA_FLOOR, 1e-4)


def liquidus(alumina, excess_alf3, p: Mapping):
    """Liquidus of the bath, K: haupin.liquidus_temperature (Solheim et al. 1996) at the
    dissolved ``alumina`` and the ``excess_alf3`` mass fractions and the parameters'
    CaF2 and MgF2."""
    return haupin.liquidus_temperature(floored_alumina(alumina), excess_alf3, p["caf2"],
                                       p["mgf2"])


def voltage_components(temperature, alumina, acd, current, excess_alf3, p: Mapping) -> dict:
    """Haupin's voltage breakdown, V, plus the anode-effect indicator and the bath
    conductivity, at bath ``temperature`` K, ``alumina`` and ``excess_alf3`` mass
    fractions, ``acd`` m and line ``current`` A, with parameters ``p`` (name -> float or
    SX). Alumina below 0.3 % is read as 0.3 % (:func:`floored_alumina`).

    Each term at its own current density, each checked against REFERENCE_BREAKDOWN
    (Haupin's breakdown of a prebake cell) in tests/plants/test_smelter_cell.py:
        reversible             E_rev at the alumina activity                 ~1.2 V
        anode_surface          at i_a = I / A_anode                  } together 0.5-0.6 V
        anode_concentration    at i_a, i_c per anode of L x W       }
        cathode_concentration  at I / A_cathode                             ~0.1 V
        bath                   I ACD / (kappa A_bath(ACD)), fanned       1.5-1.7 V
        bubble                 at i_a, over the anodes' working area     0.2-0.3 V
        ohmic_fixed            I (R_anode + R_cathode + R_external)  this cell's 0.84 V
    """
    w = floored_alumina(alumina)
    i = anode_current_density(current, p)
    single = p["anode_length"] * p["anode_width"]
    ratio = haupin.bath_ratio(w, excess_alf3, p["caf2"], p["mgf2"])
    kappa = haupin.bath_conductivity(temperature, w, p["caf2"], p["mgf2"], ratio)
    saturation = haupin.alumina_saturation(temperature, excess_alf3, p["caf2"], p["mgf2"])
    critical = haupin.critical_current_density(temperature, w, single)
    alumina_ae = haupin.alumina_at_anode_effect(temperature, i, single)
    coverage = haupin.bubble_coverage(i, w, alumina_ae, ratio)
    fixed = p["anode_resistance"] + p["cathode_resistance"] + p["external_resistance"]
    return {
        "reversible": haupin.reversible_voltage(temperature, w, saturation),
        "anode_surface": haupin.anode_surface_overvoltage(temperature, i, w),
        "anode_concentration": haupin.anode_concentration_overvoltage(temperature, i, critical),
        "cathode_concentration": haupin.cathode_concentration_overvoltage(
            temperature, current / p["cathode_area"], ratio),
        "bath": current * acd / (kappa * bath_area(acd, p)),
        "bubble": haupin.bubble_voltage(i, kappa, coverage),
        "ohmic_fixed": current * fixed,
        "anode_effect_indicator": haupin.anode_effect_indicator(i, critical),
        "conductivity": kappa,
    }


VOLTAGE_TERMS = ("reversible", "anode_surface", "anode_concentration",
                 "cathode_concentration", "bath", "bubble", "ohmic_fixed")
"""The keys of :func:`voltage_components` that add up to the cell voltage."""


def cell_voltage(temperature, alumina, acd, current, excess_alf3, p: Mapping):
    """Cell voltage, V: the sum of :data:`VOLTAGE_TERMS`."""
    parts = voltage_components(temperature, alumina, acd, current, excess_alf3, p)
    return sum(parts[name] for name in VOLTAGE_TERMS)


def kpi_units(asset: AssetConfig) -> dict[str, str]:
    """The cell's KPIs (:func:`kpis`) and their SI units."""
    return {"specific_energy": "J/kg"}


def kpis(model: PlantModel, asset: AssetConfig, x: Mapping, u: Mapping, d: Mapping,
         p: Mapping, y: Mapping) -> dict[str, float]:
    """The cell's KPI at the twin's estimate: ``specific_energy`` V / CE 3 F / M_Al,
    J/kg Al (:func:`specific_energy`; 3.6e6 J/kg = 1 kWh/kg), the model's output there."""
    return {"specific_energy": float(y["specific_energy"])}


def view(model: PlantModel, asset: AssetConfig, x: Mapping, u: Mapping, d: Mapping,
         p: Mapping, y: Mapping, reference: Mapping[str, float],
         measured: Mapping[str, float]) -> SmelterView:
    """The cell's screen at the twin's estimate (plants.views.SmelterView): the model's
    outputs there (``y``), Haupin's breakdown term by term (:func:`voltage_components`,
    which add up to ``y["cell_voltage"]``) and the superheat over the liquidus."""
    alumina = y["alumina_fraction"]
    parts = voltage_components(x["bath_temperature"], alumina, x["acd"], d["line_current"],
                               d["excess_alf3"], p)
    melting = float(liquidus(alumina, d["excess_alf3"], p))
    return SmelterView(
        voltage={name: float(parts[name]) for name in VOLTAGE_TERMS},
        cell_voltage=float(y["cell_voltage"]), bath_temperature=float(y["bath_temperature"]),
        liquidus=melting, superheat=float(y["bath_temperature"]) - melting,
        alumina=float(alumina), acd=float(x["acd"]),
        specific_energy=float(y["specific_energy"]),
        anode_effect_indicator=float(y["anode_effect_indicator"]))


def alumina_consumption(current, p: Mapping):
    """I CE M_Al2O3 / (6 F), kg/s: six electrons per Al2O3 reduced."""
    return current * p["current_efficiency"] * MOLAR_MASS_ALUMINA / (6 * FARADAY)


def depletion_factor(alumina):
    """g(w) = 1 - exp(-w / 0.1 %): the share of the Faradaic alumina consumption that the
    bath can supply. It differs from 1 by e^-30 at 3 wt%; at exhaustion (a deep anode
    effect, where the current electrolyses fluorides instead, not modelled) it fades to 0
    so the dissolved alumina settles at zero. Below zero, an estimator's excursion, it
    turns negative and pushes back, limited to -(e^2 - 1) by a smooth floor on w at
    -0.2 % so the restoring rate stays within RK4's stability at the model's step."""
    floor = -2 * DEPLETION_SCALE
    bounded = haupin.smooth_max(alumina, floor, DEPLETION_SCALE / 4)
    return 1 - ca.exp(-bounded / DEPLETION_SCALE)


def specific_energy(voltage, p: Mapping):
    """V / CE * 3 F / M_Al, J/kg Al (2.980 V/CE kWh/kg, PHYSICS.md section 4)."""
    return voltage / p["current_efficiency"] * 3 * FARADAY / MOLAR_MASS_ALUMINIUM


def heat_flows(temperature, ledge, voltage, current, ambient, liquidus_temperature,
               p: Mapping) -> dict:
    """The bath's heat balance terms, W, and the ledge-face fluxes q_in, q_out, W/m², with
    the ledge face at ``liquidus_temperature`` K."""
    q_in = p["ledge_htc"] * (temperature - liquidus_temperature)
    q_out = (liquidus_temperature - ambient) / (
        ledge / p["ledge_conductivity"] + p["wall_resistance"])
    return {
        "joule": current * voltage,
        "reaction": current * p["current_efficiency"] * p["enthalpy_voltage"],
        "side": p["side_area"] * q_in,
        "top_bottom": p["top_bottom_conductance"] * (temperature - ambient),
        "q_in": q_in,
        "q_out": q_out,
    }


def nominal_state(p: Mapping[str, float], current: float = NOMINAL_CURRENT,
                  ambient: float = NOMINAL_AMBIENT, temperature: float = NOMINAL_TEMPERATURE,
                  alumina: float = NOMINAL_ALUMINA,
                  excess_alf3: float = NOMINAL_EXCESS_ALF3) -> dict[str, float]:
    """The steady state at the given current, ambient, bath temperature and chemistry:
    feed = consumption, u = r F / k_d, the ACD whose voltage balances the heat losses
    (the voltage rises monotonically with the ACD; solved by Brent's method between 5 mm
    and 20 cm) and the ledge whose conduction passes q_in."""
    t_liq = float(liquidus(alumina, EXCESS_ALF3.check(excess_alf3), p))
    if not temperature > t_liq:
        raise ValueError(f"signal 'bath_temperature': {temperature:g} K must be above the "
                         f"liquidus {t_liq:g} K of the bath for a steady ledge")
    feed = float(alumina_consumption(current, p))
    flows = heat_flows(temperature, 0.0, 0.0, current, ambient, t_liq, p)
    balancing_voltage = (flows["reaction"] + flows["side"] + flows["top_bottom"]) / current

    def excess(acd: float) -> float:
        return float(cell_voltage(temperature, alumina, acd, current, excess_alf3, p)
                     - balancing_voltage)

    acd = brentq(excess, 0.005, 0.2, xtol=1e-12)
    ledge = p["ledge_conductivity"] * ((t_liq - ambient) / flows["q_in"] - p["wall_resistance"])
    return {
        "alumina_dissolved": alumina * p["bath_mass"],
        "alumina_undissolved": p["slow_fraction"] * feed / p["dissolution_rate"],
        "acd": float(acd),
        "bath_temperature": temperature,
        "ledge_thickness": float(ledge),
        "alumina_feed": feed,
    }


def build_model(dt: float = 60.0) -> PlantModel:
    """The 300 kA cell with its nominal parameters at its steady state; step ``dt`` s."""
    parameters = parameter_signals()
    p_nominal = {s.name: s.nominal for s in parameters}
    steady = nominal_state(p_nominal)
    parts = voltage_components(NOMINAL_TEMPERATURE, NOMINAL_ALUMINA, steady["acd"],
                               NOMINAL_CURRENT, NOMINAL_EXCESS_ALF3, p_nominal)
    voltage = float(sum(parts[name] for name in VOLTAGE_TERMS))
    states = [
        Signal("alumina_dissolved", "kg", steady["alumina_dissolved"], 0.0, 800.0,
               "alumina dissolved in the bath", std=0.05),
        Signal("alumina_undissolved", "kg", steady["alumina_undissolved"], 0.0, 500.0,
               "fed alumina not yet dissolved", std=0.02),
        Signal("acd", "m", steady["acd"], 0.02, 0.08, "anode-cathode distance", std=1e-6),
        Signal("bath_temperature", "K", NOMINAL_TEMPERATURE, 940.0 + CELSIUS,
               980.0 + CELSIUS, "electrolyte temperature", std=2e-3),
        Signal("ledge_thickness", "m", steady["ledge_thickness"], 0.0, 0.4,
               "frozen side ledge", std=1e-6),
    ]
    inputs = [
        Signal("alumina_feed", "kg/s", steady["alumina_feed"], 0.0, 0.2,
               "alumina feed rate, averaged over shots"),
        Signal("beam_rate", "m/s", 0.0, -1e-4, 1e-4, "anode beam speed, up positive"),
    ]
    disturbances = [
        Signal("line_current", "A", NOMINAL_CURRENT, 1.0e5, 4.0e5, "potline current"),
        Signal("ambient_temperature", "K", NOMINAL_AMBIENT, 0.0 + CELSIUS, 60.0 + CELSIUS,
               "pot room air"),
        Signal("acd_drift", "m/s", 0.0, -1e-6, 1e-6, "anode burn-off minus metal-pad rise"),
        EXCESS_ALF3,
    ]
    outputs = [
        Signal("cell_voltage", "V", voltage, 0.0, 10.0, "cell voltage", std=0.01),
        Signal("pseudo_resistance", "Ohm", (voltage - BACK_EMF) / NOMINAL_CURRENT, 0.0, 3e-5,
               "(V - 1.65) / I", std=0.01 / NOMINAL_CURRENT),
        Signal("bath_temperature", "K", NOMINAL_TEMPERATURE, 940.0 + CELSIUS,
               980.0 + CELSIUS, "bath thermocouple", std=1.5),
        Signal("specific_energy", "J/kg", float(specific_energy(voltage, p_nominal)), 0.0, 1e8,
               "electrical energy per kg of aluminium", std=1.2e5),
        Signal("anode_effect_indicator", "1", float(parts["anode_effect_indicator"]), 0.0, 1.0,
               "i / i_c, 1 at the anode effect", std=0.01),
        Signal("alumina_fraction", "1", NOMINAL_ALUMINA, 0.0, 0.1, "bath sample", std=2e-3),
    ]

    def dynamics(x, u, d, p):
        current = d["line_current"]
        alumina = x["alumina_dissolved"] / p["bath_mass"]
        voltage = cell_voltage(x["bath_temperature"], alumina, x["acd"], current,
                               d["excess_alf3"], p)
        flows = heat_flows(x["bath_temperature"], x["ledge_thickness"], voltage, current,
                           d["ambient_temperature"], liquidus(alumina, d["excess_alf3"], p), p)
        slow = p["slow_fraction"] * u["alumina_feed"]
        dissolving = p["dissolution_rate"] * x["alumina_undissolved"]
        return {
            "alumina_dissolved": u["alumina_feed"] - slow + dissolving
            - alumina_consumption(current, p) * depletion_factor(alumina),
            "alumina_undissolved": slow - dissolving,
            "acd": u["beam_rate"] + d["acd_drift"],
            "bath_temperature": (flows["joule"] - flows["reaction"] - flows["side"]
                                 - flows["top_bottom"]) / p["heat_capacity"],
            "ledge_thickness": (flows["q_out"] - flows["q_in"])
            / (p["ledge_density"] * p["ledge_latent_heat"]),
        }

    def output(x, u, d, p):
        current = d["line_current"]
        alumina = x["alumina_dissolved"] / p["bath_mass"]
        parts = voltage_components(x["bath_temperature"], alumina, x["acd"], current,
                                   d["excess_alf3"], p)
        voltage = sum(parts[name] for name in VOLTAGE_TERMS)
        return {
            "cell_voltage": voltage,
            "pseudo_resistance": (voltage - BACK_EMF) / current,
            "bath_temperature": x["bath_temperature"],
            "specific_energy": specific_energy(voltage, p),
            "anode_effect_indicator": parts["anode_effect_indicator"],
            "alumina_fraction": alumina,
        }

    return PlantModel.build(
        KIND, states=states, inputs=inputs, disturbances=disturbances, parameters=parameters,
        outputs=outputs, dynamics=dynamics, output=output, dt=dt, substeps=4,
    )
