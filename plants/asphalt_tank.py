"""Asphalt (bitumen) storage tank heated by a hot-oil coil: PHYSICS.md section 3.

Implements the well-mixed tank energy balance with a hot-oil coil treated as a heat
exchanger against a uniform bulk (effectiveness–NTU), and a first-order lag on the
hot-oil return temperature for the oil held up in the coil:

    m c_p(T) dT/dt   = Q_coil - k_loss UA_loss (T - T_amb)                   [W]
    UA_coil(T)       = k_foul h_o(T, T_sup) A_coil                           [W/K]
    Q_coil           = m_oil c_oil (T_sup - T) (1 - exp(-UA_coil(T) / (m_oil c_oil)))
    T_ret,ss         = T + (T_sup - T) exp(-UA_coil(T) / (m_oil c_oil))
    M_coil dT_ret/dt = m_oil (T_ret,ss - T_ret)                              [kg K/s]
    c_p(T)           = (1.685 + 0.00339 (T - 273.15)) / sqrt(SG)  kJ/(kg K)   (Cragoe)

h_o is the bitumen's free-convection film on the coil tube (Churchill & Chu for a
horizontal cylinder, with the Walther viscosity at the film temperature:
``bitumen.coil_film_coefficient``): about 109 W/(m^2 K) at 160 °C and 87 at 120 °C with
250 °C oil, so a cooling tank's coil heats it less, as it does in practice.

Signals (SI):
    states:       T_bulk [K], T_return [K]
    inputs:       m_oil [kg/s] hot-oil mass flow through the coil
    disturbances: T_supply [K] hot-oil supply temperature, T_ambient [K]
    outputs:      T_bulk [K], T_return [K]
    parameters:   mass [kg], SG [-], coil_area [m^2] outside area, coil_diameter [m] tube
                  outside diameter, walther_A, walther_B [-] the grade's viscosity,
                  UA_loss [W/K], c_oil [J/(kg K)], M_coil [kg], k_loss [-] loss
                  multiplier, k_foul [-] coil fouling multiplier

The nominal point is a steady state: the nominal hot-oil flow and return temperature are
solved on the model's own equations (plants/steady_state.py), so nominal inputs hold
160 °C. Simplifications: one bulk node (no stratification), constant inventory (no
loading), the oil-side film and the tube wall left out of the coil's conductance (the
bitumen's film is the controlling resistance), no flow balance with other tanks
(plants/asphalt_terminal.py has those). Seed-terminal defaults: an ~800 t tank, 650 m^2
insulated at ~1 W/(m^2 K), 110 m^2 of 2-inch coil (about 12 kW/K at 160 °C), thermal oil
at 250 °C. Storage band 140–180 °C; 200 °C is the coking limit.
"""

from __future__ import annotations

from collections.abc import Mapping

import casadi as ca

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
from plants import bitumen
from plants.steady_state import at_steady_state
from plants.views import TankView

KIND = "asphalt_tank"
CELSIUS = bitumen.CELSIUS
COIL_TUBE_DIAMETER = 0.0603
"""Outside diameter of a 2-inch (NPS 2) coil tube, m."""

DEFAULTS = PlantDefaults(
    period_s=120.0,
    reference={"T_bulk": 433.15},
    limits={"m_oil": SetpointLimit(lower=0.1, upper=10.0, max_rate=0.02)},
    controller=ControllerSettings(horizon=30, tracking={"T_bulk": 100.0, "T_return": 0.0},
                                  move_suppression={"m_oil": 0.1}),
    estimator=EstimatorSettings(estimate_parameters={"k_foul": 1e-5, "k_loss": 1e-5}),
    alarms=[
        AlarmSettings(signal="T_bulk", kind="LO", limit=140.0 + CELSIUS, deadband=1.0,
                      priority="MEDIUM", message="below the 140 °C storage band: the "
                      "bitumen thickens; check the hot-oil supply and the coil valve"),
        AlarmSettings(signal="T_bulk", kind="HI", limit=180.0 + CELSIUS, deadband=1.0,
                      priority="MEDIUM", suppressed_by=["T_bulk.HIHI"],
                      message="above the 180 °C storage band"),
        AlarmSettings(signal="T_bulk", kind="HIHI", limit=195.0 + CELSIUS, deadband=1.0,
                      priority="HIGH", message="5 K from the 200 °C coking limit: cut the "
                      "hot oil"),
    ],
)
"""Storage at 160 °C; the hot-oil valve moves at most 0.02 kg/s per second. The filter
tracks the coil-fouling and heat-loss multipliers as random walks (1e-5 per sqrt(s), about
0.3 % per day): with them fixed, a 10 % fouled coil made the NIS test flag 51 of 60
healthy ticks under control; with them estimated, none, and k_foul came out at 0.90.

Alarms: the storage band 140–180 °C and 200 °C coking (PHYSICS.md section 3, Shell
Bitumen Handbook) give LO 140 °C, HI 180 °C and HIHI 195 °C, 5 K short of coking; the
1 K deadband is 500 times the bulk sensor's 2 mK noise, so no delay is needed."""


def build_model(dt: float = 120.0) -> PlantModel:
    """The single-tank model with the seed terminal's nominal parameters; step ``dt`` s.
    The nominal hot-oil flow and return temperature hold the nominal bulk temperature."""
    walther_a, walther_b = bitumen.walther_coefficients(*bitumen.DEFAULT_GRADE[0],
                                                        *bitumen.DEFAULT_GRADE[1])
    states = [
        Signal("T_bulk", "K", 433.15, 273.15, 473.15, "bulk bitumen temperature", std=2e-3),
        Signal("T_return", "K", 440.0, 273.15, 623.15, "hot-oil return temperature", std=2e-2),
    ]
    inputs = [Signal("m_oil", "kg/s", 0.6, 0.1, 12.0, "hot-oil mass flow through the coil")]
    disturbances = [
        Signal("T_supply", "K", 523.15, 373.15, 623.15, "hot-oil supply temperature"),
        Signal("T_ambient", "K", 283.15, 233.15, 323.15, "ambient air temperature"),
    ]
    parameters = [
        Signal("mass", "kg", 8.0e5, 1.0e3, 1.0e7, "bitumen inventory"),
        Signal("SG", "1", 1.03, 1.0, 1.1, "specific gravity at 25 °C"),
        Signal("coil_area", "m2", 110.0, 1.0, 5.0e3, "coil outside area"),
        Signal("coil_diameter", "m", COIL_TUBE_DIAMETER, 0.01, 0.3,
               "coil tube outside diameter"),
        Signal("walther_A", "1", walther_a, 5.0, 15.0, "Walther constant A (nu in cSt, T in K)"),
        Signal("walther_B", "1", walther_b, 1.0, 6.0, "Walther constant B"),
        Signal("UA_loss", "W/K", 650.0, 1.0, 1.0e5, "shell loss conductance, nominal"),
        Signal("c_oil", "J/(kg K)", 2300.0, 1.0e3, 4.0e3, "hot-oil heat capacity"),
        Signal("M_coil", "kg", 2000.0, 10.0, 1.0e5, "hot oil held up in the coil"),
        Signal("k_loss", "1", 1.0, 0.1, 10.0, "heat-loss multiplier (weather, insulation)"),
        Signal("k_foul", "1", 1.0, 0.05, 2.0, "coil fouling multiplier on the coil conductance"),
    ]
    outputs = [
        Signal("T_bulk", "K", 433.15, 273.15, 473.15, "bulk temperature (probe)", std=0.2),
        Signal("T_return", "K", 440.0, 273.15, 623.15, "hot-oil return temperature", std=0.5),
    ]

    def dynamics(x, u, d, p):
        T, T_ret = x["T_bulk"], x["T_return"]
        flow = ca.fmax(u["m_oil"], 1e-6)
        capacity = flow * p["c_oil"]
        film = bitumen.coil_film_coefficient(T, d["T_supply"], p["coil_diameter"], p["SG"],
                                             p["walther_A"], p["walther_B"])
        passthrough = ca.exp(-p["k_foul"] * film * p["coil_area"] / capacity)
        q_coil = capacity * (d["T_supply"] - T) * (1 - passthrough)
        q_loss = p["k_loss"] * p["UA_loss"] * (T - d["T_ambient"])
        c_p = bitumen.specific_heat(T, p["SG"])
        T_ret_ss = T + (d["T_supply"] - T) * passthrough
        return {
            "T_bulk": (q_coil - q_loss) / (p["mass"] * c_p),
            "T_return": flow * (T_ret_ss - T_ret) / p["M_coil"],
        }

    def output(x, u, d, p):
        return {"T_bulk": x["T_bulk"], "T_return": x["T_return"]}

    model = PlantModel.build(
        KIND, states=states, inputs=inputs, disturbances=disturbances, parameters=parameters,
        outputs=outputs, dynamics=dynamics, output=output, dt=dt, substeps=4,
    )
    # residuals in µK/s: far above rounding, far below any drift that matters
    return at_steady_state(model, ["T_return"], ["m_oil"],
                           lambda rates, _: rates / 1e-6, abstol=1e-6)


def kpi_units(asset: AssetConfig) -> dict[str, str]:
    """The tank's KPIs (:func:`kpis`) and their SI units."""
    return {"coil_duty": "W"}


def kpis(model: PlantModel, asset: AssetConfig, x: Mapping, u: Mapping, d: Mapping,
         p: Mapping, y: Mapping) -> dict[str, float]:
    """The tank's KPI at the twin's estimate: ``coil_duty``, the heat the hot oil gives up,
    m_oil c_oil (T_supply - T_return), W."""
    return {"coil_duty": float(u["m_oil"] * p["c_oil"] * (d["T_supply"] - x["T_return"]))}


def view(model: PlantModel, asset: AssetConfig, x: Mapping, u: Mapping, d: Mapping,
         p: Mapping, y: Mapping, reference: Mapping[str, float],
         measured: Mapping[str, float]) -> TankView:
    """The tank's screen at the twin's estimate (plants.views.TankView); the coil duty is
    the hot oil's heat given up, m_oil c_oil (T_supply - T_return), W."""
    return TankView(T_bulk=float(x["T_bulk"]), T_return=float(x["T_return"]),
                    T_supply=float(d["T_supply"]), oil_flow=float(u["m_oil"]),
                    coil_duty=kpis(model, asset, x, u, d, p, y)["coil_duty"])
