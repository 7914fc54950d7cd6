"""Bitumen property correlations shared by the asphalt tank models: PHYSICS.md section 3.

Every function takes SI values (temperature in K, viscosity in m^2/s) and works on
Python floats, NumPy arrays and CasADi symbols alike, so the plant models build their
dynamics from the same expressions the tests check numerically.

    specific heat (Cragoe)   c_p = 1000 (1.685 + 0.00339 t) / sqrt(SG)       J/(kg K)
    density                  rho = SG rho_w,25 / (1 + beta (t - 25))          kg/m^3
    viscosity (Walther, ASTM D341)
                             log10 log10(nu + 0.7) = A - B log10(T)          nu in cSt

    thermal conductivity     k = 0.15 W/(m K)                                 (PHYSICS.md)
    coil film coefficient    h_o = Nu_D k / D, Nu_D by Churchill & Chu for a horizontal
                             cylinder (plants/convection.py), properties at the film
                             temperature T_f = T + dT_w / 2, wall excess dT_w = (T_sup - T) / 2

with t the temperature in °C, T in K, SG the specific gravity at 25/25 °C, rho_w,25 the
density of water at 25 °C and beta = 0.00061 /°C the cubical expansion (Shell Bitumen
Handbook, appendix A1.2: constant over 15–200 °C and independent of grade). The
density follows from conserving mass while the volume grows as V = V_25 (1 + beta dt).

Simplifications: the coil wall is taken at the mean of the hot-oil supply and the bulk
(dT_w = (T_sup - T) / 2; the oil-side film, some 10x the bitumen's, is left out), which
the correlation only feels as dT_w^(1/6): a wall excess off by a factor 2 moves h_o by
12 %. Walther uses the simple ``nu + 0.7`` form of ASTM D341, valid down to
2 cSt (the standard's extra exponential terms only matter below that); A and B are the
correlation's dimensionless constants with nu in cSt and T in K.
"""

from __future__ import annotations

import math

import casadi as ca
import numpy as np

from plants import convection

CELSIUS = 273.15
"""0 °C in K."""
REFERENCE_TEMPERATURE = 298.15
"""25 °C, the temperature at which specific gravity is quoted, K."""
WATER_DENSITY_25C = 997.05
"""Density of water at 25 °C, kg/m^3."""
CUBICAL_EXPANSION = 6.1e-4
"""Coefficient of cubical expansion of bitumen, 1/K (Shell Bitumen Handbook)."""
CENTISTOKES = 1e-6
"""1 cSt in m^2/s."""
THERMAL_CONDUCTIVITY = 0.15
"""Thermal conductivity of bitumen, W/(m K) (PHYSICS.md section 3)."""
DEFAULT_GRADE = ((408.15, 400e-6), (333.15, 0.2))
"""Two (K, m^2/s) viscosity points of the default 60/70-pen grade (unverified): 400 cSt at
135 °C, 2e5 cSt at 60 °C."""
WALTHER_MINIMUM_VISCOSITY = 2.0 * CENTISTOKES
"""Lowest kinematic viscosity for the simple Walther form of ASTM D341, m^2/s."""


def specific_heat(temperature, specific_gravity):
    """Cragoe's specific heat of a petroleum liquid, J/(kg K).

    c_p = 1000 (1.685 + 0.00339 (T - 273.15)) / sqrt(SG), T in K, SG at 25 °C.
    """
    return 1e3 * (1.685 + 0.00339 * (temperature - CELSIUS)) / specific_gravity**0.5


def density(temperature, specific_gravity):
    """Bitumen density at ``temperature`` K from its specific gravity at 25 °C, kg/m^3.

    rho = SG rho_w,25 / (1 + 0.00061 (T - 298.15)).
    """
    return (specific_gravity * WATER_DENSITY_25C
            / (1.0 + CUBICAL_EXPANSION * (temperature - REFERENCE_TEMPERATURE)))


def kinematic_viscosity(temperature, walther_a, walther_b):
    """Walther (ASTM D341) kinematic viscosity at ``temperature`` K, m^2/s.

    nu = (10^(10^(A - B log10 T)) - 0.7) cSt.
    """
    exponent = walther_a - walther_b * _log10(temperature)
    return (10.0 ** (10.0**exponent) - 0.7) * CENTISTOKES


def coil_film_coefficient(temperature, supply_temperature, tube_diameter, specific_gravity,
                          walther_a, walther_b):
    """Free-convection film coefficient of bitumen at ``temperature`` K on a horizontal coil
    tube of outside diameter ``tube_diameter`` m fed with hot oil at ``supply_temperature``
    K, W/(m^2 K): h_o = k Nu_D / D with Nu_D from Churchill & Chu (plants/convection.py),

        dT_w = |T_sup - T| / 2 (at least 0.01 K),  T_f = T + (T_sup - T) / 4,
        Ra_D = g beta dT_w D^3 / (nu(T_f) alpha(T_f)),  alpha = k / (rho(T_f) c_p(T_f)),
        Pr = nu(T_f) / alpha(T_f),

    nu by Walther (A, B), beta the cubical expansion, k = 0.15 W/(m K). A cooler bulk is
    far more viscous, so h_o falls as a tank cools: the coil loses effectiveness.
    """
    wall_excess = ca.fmax(abs(supply_temperature - temperature) / 2, 0.01)
    film = temperature + (supply_temperature - temperature) / 4
    viscosity = kinematic_viscosity(film, walther_a, walther_b)
    diffusivity = THERMAL_CONDUCTIVITY / (density(film, specific_gravity)
                                          * specific_heat(film, specific_gravity))
    rayleigh = convection.rayleigh_number(CUBICAL_EXPANSION, wall_excess, tube_diameter,
                                          viscosity, diffusivity)
    nusselt = convection.churchill_chu_horizontal_cylinder(rayleigh, viscosity / diffusivity)
    return nusselt * THERMAL_CONDUCTIVITY / tube_diameter


def walther_coefficients(
    temperature_1: float, viscosity_1: float, temperature_2: float, viscosity_2: float
) -> tuple[float, float]:
    """Walther constants (A, B) of the line through two viscosity measurements.

    Temperatures in K, kinematic viscosities in m^2/s. With Z = log10 log10(nu_cSt + 0.7):
    B = (Z_1 - Z_2) / (log10 T_2 - log10 T_1), A = Z_1 + B log10 T_1.
    Raises ValueError for non-positive or equal temperatures and viscosities below 2 cSt.
    """
    for name, value in (("temperature_1", temperature_1), ("temperature_2", temperature_2)):
        if not value > 0:
            raise ValueError(f"{name}: {value} K must be above 0 K")
    if temperature_1 == temperature_2:
        raise ValueError(f"temperature_2: must differ from temperature_1 ({temperature_1} K)")
    for name, value in (("viscosity_1", viscosity_1), ("viscosity_2", viscosity_2)):
        if not value >= WALTHER_MINIMUM_VISCOSITY:
            raise ValueError(
                f"{name}: {value:g} m2/s is below {WALTHER_MINIMUM_VISCOSITY:g} m2/s (2 cSt), "
                "the lower limit of the Walther form"
            )
    z_1 = math.log10(math.log10(viscosity_1 / CENTISTOKES + 0.7))
    z_2 = math.log10(math.log10(viscosity_2 / CENTISTOKES + 0.7))
    slope = (z_1 - z_2) / (math.log10(temperature_2) - math.log10(temperature_1))
    return z_1 + slope * math.log10(temperature_1), slope


def _log10(value):
    if isinstance(value, (ca.SX, ca.MX, ca.DM)):
        return ca.log10(value)
    return np.log10(value)
