"""Natural-convection correlations shared by the plant models.

Every function works on Python floats, NumPy arrays and CasADi symbols alike.

    Churchill & Chu (1975), isothermal horizontal cylinder, all Ra_D <= 1e12:
        Nu_D = {0.60 + 0.387 Ra_D^(1/6) / [1 + (0.559/Pr)^(9/16)]^(8/27)}^2
    Rayleigh number  Ra_D = g beta dT D^3 / (nu alpha),  alpha = k / (rho c_p),  Pr = nu / alpha

Source: S. W. Churchill and H. H. S. Chu, "Correlating equations for laminar and
turbulent free convection from a horizontal cylinder", Int. J. Heat Mass Transfer 18
(1975) 1049-1053, eq. (14); as in Incropera et al., Fundamentals of Heat and Mass
Transfer, eq. 9.34. Properties at the film temperature (wall and fluid mean).
"""

from __future__ import annotations

GRAVITY = 9.80665
"""Standard gravity, m/s^2."""


def churchill_chu_horizontal_cylinder(rayleigh, prandtl):
    """Mean Nusselt number Nu_D of an isothermal horizontal cylinder in free convection,
    Churchill & Chu (1975): {0.60 + 0.387 Ra^(1/6) / [1 + (0.559/Pr)^(9/16)]^(8/27)}^2."""
    prandtl_factor = (1.0 + (0.559 / prandtl) ** (9.0 / 16.0)) ** (8.0 / 27.0)
    return (0.60 + 0.387 * rayleigh ** (1.0 / 6.0) / prandtl_factor) ** 2


def rayleigh_number(expansion, temperature_difference, length, kinematic_viscosity,
                    thermal_diffusivity):
    """Ra = g beta dT L^3 / (nu alpha): beta in 1/K, dT in K, L in m, nu and alpha in m^2/s."""
    return (GRAVITY * expansion * temperature_difference * length**3
            / (kinematic_viscosity * thermal_diffusivity))
