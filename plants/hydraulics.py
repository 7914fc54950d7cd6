"""Turbulent pipe friction and polymer drag reduction: PHYSICS.md section 1.

Friction factors are Darcy's (f = 4 f_Fanning) unless a name says Fanning.

    Reynolds number     Re = V D / nu = 4 Q / (pi D nu)
    Colebrook           1/sqrt(f) = -2 log10(eps/(3.7 D) + 2.51/(Re sqrt(f)))
    Swamee–Jain         f = 0.25 / [log10(eps/(3.7 D) + 5.74/Re^0.9)]^2
    Virk's asymptote    1/sqrt(f_F) = 19.0 log10(Re sqrt(f_F)) - 32.4   (maximum drag
                        reduction by polymers, Virk, AIChE J 21:625, 1975)
    Drag reduction      DR(c) = DR_max c / (K + c)   (Michaelis–Menten form, DR at
                        equal flow relative to the Newtonian friction)

The explicit forms (``swamee_jain_friction``, ``virk_friction_smooth``,
``drag_reduction``, ``smooth_max``) use only arithmetic and CasADi operations, so they
accept floats as well as CasADi symbols and one expression serves the CasADi model and
numeric checks. ``colebrook_friction`` and ``virk_fanning_friction`` solve the implicit
laws with a bracketing root finder: plain numeric references for checks.

Validity: fully turbulent flow, Re >= 4000; the drag-reduction law ignores the weak
dependence of DR on Re and wall shear stress except through Virk's bound.
"""

from __future__ import annotations

import math

import casadi as ca
from scipy.optimize import brentq

TURBULENT_REYNOLDS = 4000.0
"""Lowest Reynolds number the turbulent friction laws here are used for."""

_LN10 = math.log(10.0)


def reynolds_number(flow, diameter, kinematic_viscosity):
    """Re = 4 Q / (pi D nu) for volumetric flow Q [m^3/s], inner diameter D [m] and
    kinematic viscosity nu [m^2/s]; dimensionless."""
    return 4.0 * flow / (math.pi * diameter * kinematic_viscosity)


def swamee_jain_friction(reynolds, relative_roughness):
    """Darcy friction factor by Swamee–Jain, f = 0.25 / log10(eps/(3.7 D) + 5.74/Re^0.9)^2.

    Explicit and smooth in Re; within about 1 % of Colebrook for 5e3 <= Re <= 1e8 and
    1e-6 <= eps/D <= 1e-2 (Swamee & Jain, J. Hydraul. Div. 102:657, 1976)."""
    return 0.25 / ca.log10(relative_roughness / 3.7 + 5.74 / reynolds**0.9) ** 2


def colebrook_friction(reynolds: float, relative_roughness: float) -> float:
    """Darcy friction factor from the Colebrook equation, solved to machine precision.

    Solves g(s) = s + 2 log10(eps/(3.7 D) + 2.51 s / Re) = 0 for s = 1/sqrt(f), which
    is increasing in s, by Brent's method on s in [0.5, 50] (f from 4e-4 to 4).
    Raises ValueError for Re below 4000 or eps/D outside [0, 0.05]."""
    _check_reynolds(reynolds)
    if not 0.0 <= relative_roughness <= 0.05:
        raise ValueError(
            f"relative_roughness: {relative_roughness:g} is outside [0, 0.05] "
            "where the Colebrook equation applies")

    def residual(s: float) -> float:
        return s + 2.0 * math.log10(relative_roughness / 3.7 + 2.51 * s / reynolds)

    return 1.0 / brentq(residual, 0.5, 50.0, xtol=1e-14, rtol=1e-14) ** 2


def virk_fanning_friction(reynolds: float) -> float:
    """Fanning friction factor on Virk's maximum-drag-reduction asymptote.

    Solves g(s) = s - 19.0 log10(Re / s) + 32.4 = 0 for s = 1/sqrt(f_F) (the asymptote
    with Re sqrt(f_F) = Re / s), increasing in s, by Brent's method on s in [1, 500].
    Raises ValueError for Re below 4000."""
    _check_reynolds(reynolds)

    def residual(s: float) -> float:
        return s - 19.0 * math.log10(reynolds / s) + 32.4

    return 1.0 / brentq(residual, 1.0, 500.0, xtol=1e-14, rtol=1e-14) ** 2


def virk_friction_smooth(reynolds, iterations: int = 4):
    """Darcy friction factor on Virk's asymptote, f = 4 f_F, in explicit smooth form.

    Newton's method on g(s) = s + 19.0 log10(s) - 19.0 log10(Re) + 32.4 for
    s = 1/sqrt(f_F), unrolled ``iterations`` times from Virk's power-law fit
    f_F = 0.58 Re^-0.58 (s0 = Re^0.29 / sqrt(0.58)). g is increasing and concave, so the
    iteration converges quadratically; four steps reach machine precision for
    4e3 <= Re <= 1e8."""
    s = reynolds**0.29 / math.sqrt(0.58)
    for _ in range(iterations):
        g = s + 19.0 * ca.log10(s) - 19.0 * ca.log10(reynolds) + 32.4
        s = s - g / (1.0 + 19.0 / (_LN10 * s))
    return 4.0 / s**2


def drag_reduction(concentration, maximum, half_saturation):
    """DR(c) = DR_max c / (K + c): fraction of the Newtonian friction removed at equal flow.

    concentration c and half-saturation K in the same unit (ppm by volume here);
    DR_max dimensionless. Defined for c > -K; concentrations are >= 0 physically."""
    return maximum * concentration / (half_saturation + concentration)


def smooth_max(a, b, width):
    """0.5 (a + b + sqrt((a - b)^2 + width^2)): a smooth upper bound of max(a, b).

    Never below max(a, b); exceeds it by at most width/2 (where a = b) and by about
    width^2 / (4 |a - b|) away from the crossover."""
    return 0.5 * (a + b + ca.sqrt((a - b) ** 2 + width**2))


def _check_reynolds(reynolds: float) -> None:
    if not reynolds >= TURBULENT_REYNOLDS:
        raise ValueError(
            f"reynolds: {reynolds:g} is below {TURBULENT_REYNOLDS:g}, the turbulent range "
            "where this friction law applies")
