"""The Klatt-Engell CSTR: do-mpc's main example (examples/CSTR), as a PlantModel.

A reference plant for benchmarks and tests of the MPC backends, not an asset kind (it is
not in ``plants.BUILDERS``). Cyclopentadiene A reacts to cyclopentenol B (wanted), on to
cyclopentanediol C, and dimerises to D (Klatt & Engell 1998):

    K_1 = beta K0_ab exp(-E_A_ab / (T_R + 273.15))     K_2 = K0_bc exp(-E_A_bc / (T_R + 273.15))
    K_3 = K0_ad exp(-alpha E_A_ad / (T_R + 273.15))
    dC_a/dt = F (C_A0 - C_a) - K_1 C_a - K_3 C_a^2
    dC_b/dt = -F C_b + K_1 C_a - K_2 C_b
    dT_R/dt = (K_1 C_a H_ab + K_2 C_b H_bc + K_3 C_a^2 H_ad) / (-rho c_p)
              + F (T_in - T_R) + K_w A_R (T_K - T_R) / (rho c_p V_R)
    dT_K/dt = (Q_dot + K_w A_R (T_R - T_K)) / (m_k c_pk)

with do-mpc's constants, rates per hour. The model's time is in seconds like every
PlantModel: the rates are divided by 3600, and do-mpc's step of 0.005 h is dt = 18 s.
Units are do-mpc's: concentrations mol/l, temperatures degC, F (feed flow over reactor
volume) 1/h, Q_dot (heat removed by the jacket) kJ/h.

States (also the outputs) C_a, C_b, T_R, T_K; inputs F in [5, 100] 1/h and Q_dot in
[-8500, 0] kJ/h; parameters alpha, beta (do-mpc's uncertain activation-energy and rate
factors, nominal 1). State bounds are do-mpc's template_mpc bounds (C in [0.1, 2] mol/l,
T in [50, 140] degC). Initial state of the example: C_a 0.8, C_b 0.5, T_R 134.14,
T_K 130.0; inputs 30 1/h and -6000 kJ/h (template_model's u0); do-mpc's objective is
(C_b - 0.6)^2 with move suppression 0.1 on F and 1e-3 on Q_dot.
"""

from __future__ import annotations

import casadi as ca

from engine.model import PlantModel
from engine.signals import Signal

STEP_S = 18.0
"""do-mpc's t_step, 0.005 h."""
HOURS = 3600.0

K0_ab, K0_bc, K0_ad = 1.287e12, 1.287e12, 9.043e9  # 1/h, 1/h, l/(mol h)
E_A_ab, E_A_bc, E_A_ad = 9758.3, 9758.3, 8560.0  # activation energies over R, K
H_R_ab, H_R_bc, H_R_ad = 4.2, -11.0, -41.85  # reaction enthalpies, kJ/mol
RHO, CP, CP_K = 0.9342, 3.01, 2.0  # kg/l, kJ/(kg K), kJ/(kg K)
A_R, V_R, M_K = 0.215, 10.01, 5.0  # m^2, l, kg
T_IN, K_W = 130.0, 4032.0  # degC, kJ/(h m^2 K)
C_A0 = (5.7 + 4.5) / 2.0  # mol/l

INITIAL_STATE = {"C_a": 0.8, "C_b": 0.5, "T_R": 134.14, "T_K": 130.0}
INITIAL_INPUTS = {"F": 30.0, "Q_dot": -6000.0}
C_B_TARGET = 0.6

_STATES = [
    Signal("C_a", "mol/l", 0.8, 0.1, 2.0, "concentration of A"),
    Signal("C_b", "mol/l", 0.5, 0.1, 2.0, "concentration of B (the product)"),
    Signal("T_R", "degC", 134.14, 50.0, 140.0, "reactor temperature"),
    Signal("T_K", "degC", 130.0, 50.0, 140.0, "jacket temperature"),
]


def build_model(dt: float = STEP_S, substeps: int = 1) -> PlantModel:
    """The CSTR with step ``dt`` seconds; outputs are the four states."""

    def dynamics(x, u, d, p):
        T = x["T_R"] + 273.15
        K_1 = p["beta"] * K0_ab * ca.exp(-E_A_ab / T)
        K_2 = K0_bc * ca.exp(-E_A_bc / T)
        K_3 = K0_ad * ca.exp(-p["alpha"] * E_A_ad / T)
        C_a, C_b, F = x["C_a"], x["C_b"], u["F"]
        per_hour = {
            "C_a": F * (C_A0 - C_a) - K_1 * C_a - K_3 * C_a**2,
            "C_b": -F * C_b + K_1 * C_a - K_2 * C_b,
            "T_R": (K_1 * C_a * H_R_ab + K_2 * C_b * H_R_bc + K_3 * C_a**2 * H_R_ad) / (-RHO * CP)
            + F * (T_IN - x["T_R"]) + K_W * A_R * (x["T_K"] - x["T_R"]) / (RHO * CP * V_R),
            "T_K": (u["Q_dot"] + K_W * A_R * (x["T_R"] - x["T_K"])) / (M_K * CP_K),
        }
        return {name: rate / HOURS for name, rate in per_hour.items()}

    return PlantModel.build(
        "cstr",
        states=_STATES,
        inputs=[Signal("F", "1/h", 30.0, 5.0, 100.0, "feed flow over reactor volume"),
                Signal("Q_dot", "kJ/h", -6000.0, -8500.0, 0.0, "heat flow into the jacket")],
        disturbances=[],
        parameters=[Signal("alpha", "1", 1.0, 0.5, 1.5, "activation energy factor of A -> D"),
                    Signal("beta", "1", 1.0, 0.5, 1.5, "rate factor of A -> B")],
        outputs=_STATES,
        dynamics=dynamics,
        output=lambda x, u, d, p: dict(x),
        dt=dt,
        substeps=substeps,
    )
