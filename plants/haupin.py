"""Haupin's breakdown of the voltage of a Hall–Héroult cell: PHYSICS.md section 4.

Each function works on Python floats and on CasADi SX alike (only ``casadi``'s
elementwise operations, which accept floats), so one set of equations serves the
numerics, the tests and the symbolic model. Arguments and results are SI: temperature
K, current density A/m², mass fractions (0.03 = 3 wt%), lengths m, areas m²,
conductivity S/m, volts. The published correlations are written in A/cm², wt% and cm;
each function converts on entry and says so.

    V_cell = E_rev + eta_anode_surface + eta_anode_concentration + eta_cathode_concentration
             + V_bath + V_bubble + I (R_anode + R_cathode + R_external)

Each term has its own current density, as in Haupin's breakdown: the anode terms
(surface and concentration overvoltage, bubble layer) the anode current density
I / A_anode over the anodes' working (bottom) area; the bath drop I ACD / (kappa A_bath)
over the larger area the current fans out to (:func:`fanned_bath_area`); the cathode
overvoltage I / A_cathode over the metal pad.

Sources:
    W. Haupin, "Interpreting the components of cell voltage", Light Metals 1998
    (reversible voltage, overvoltages, bubble layer, critical current density), in the
    form collected in the appendix of Y. Yao et al., AIChE J 63:2806 (2017);
    E. Skybakmoen, A. Solheim, Å. Sterten, Metall. Mater. Trans. B 28:81 (1997) for
    alumina solubility; J. Híveš, J. Thonstad, Å. Sterten, P. Fellner, Metall. Mater.
    Trans. B 27:255 (1996) for bath conductivity; A. Solheim et al., "Liquidus temperature
    and alumina solubility in the system Na3AlF6-AlF3-LiF-CaF2-MgF2", Light Metals (1996)
    for the liquidus; K. Grjotheim, H. Kvande, Introduction to Aluminium Electrolysis
    (2nd ed., 1993) for the fanning of the bath current.

Simplification: the bath holds NaF, AlF3, Al2O3, CaF2 and MgF2 (no LiF or KF).
"""

from __future__ import annotations

import casadi as ca

FARADAY = 96485.33212
"""Faraday constant, C/mol."""
GAS_CONSTANT = 8.314462618
"""Molar gas constant, J/(mol K)."""
CELSIUS = 273.15

ANODE_EFFECT_GAP_FLOOR = 200.0
"""Smallest margin i_c - i the anode concentration overvoltage sees, A/m² (0.02 A/cm²):
it bounds that overvoltage at (R T / 2F) ln(1 + i / floor), about 0.2 V, past the
critical current density."""


def smooth_max(a, b, width):
    """max(a, b) rounded over ``width`` (a softplus): b + width ln(1 + exp((a - b)/width)).

    Differentiable everywhere, never below max(a, b), above it by width ln 2 at a = b and
    by a margin that decays like exp(-|a - b|/width) away from it, so the correlations
    it guards are unchanged in normal operation. Evaluated without overflow as
    b + width (max(z, 0) + ln(1 + exp(-|z|))), z = (a - b)/width."""
    z = (a - b) / width
    return b + width * (ca.fmax(z, 0) + ca.log(1 + ca.exp(-ca.fabs(z))))


def bath_ratio(alumina, excess_alf3, caf2, mgf2):
    """Weight ratio NaF/AlF3 of the bath (Yao et al. 2017, eq. A20):

        BR = (1 - x) / (2/3 + x),  x = [AlF3]_excess / (100 - [Al2O3] - [CaF2] - [MgF2])

    (wt%). Cryolite Na3AlF6 is 60 % NaF and 40 % AlF3 by mass, so pure cryolite has
    BR = 1.5. All arguments are mass fractions (the ratio x is the same in wt%)."""
    x = excess_alf3 / (1 - alumina - caf2 - mgf2)
    return (1 - x) / (2.0 / 3.0 + x)


def alumina_saturation(temperature, excess_alf3, caf2, mgf2):
    """Alumina solubility as a mass fraction (Skybakmoen et al. 1997):

        [Al2O3]_sat = A (t / 1000)^B  wt%,  t in °C,
        A = 11.9 - 0.062 [AlF3] - 0.0031 [AlF3]^2 - 0.2 [CaF2] - 0.3 [MgF2],
        B = 4.8 - 0.048 [AlF3]

    with the mass fractions converted to wt%; about 8 wt% at 960 °C with 11 % AlF3 and
    5 % CaF2."""
    alf3, calcium, magnesium = 100.0 * excess_alf3, 100.0 * caf2, 100.0 * mgf2
    a = 11.9 - 0.062 * alf3 - 0.0031 * alf3**2 - 0.2 * calcium - 0.3 * magnesium
    b = 4.8 - 0.048 * alf3
    celsius = temperature - CELSIUS
    return 0.01 * a * ca.exp(b * ca.log(celsius / 1000.0))


def alumina_activity(ratio_to_saturation):
    """Activity of alumina from its ratio to saturation ROS (Haupin 1998, after Dewing
    and Thonstad):  a = -0.03791 ROS + 2.364 ROS^2 - 2.194 ROS^3 + 0.8686 ROS^4.

    a(1) = 1.0005; positive and increasing for ROS above 0.02."""
    r = ratio_to_saturation
    return r * (-0.03791 + r * (2.364 + r * (-2.194 + r * 0.8686)))


def reversible_voltage(temperature, alumina, saturation):
    """E_rev = 1.896 - 0.000572 T + (R T / 12 F) ln(1 / a^2), a = activity(alumina /
    saturation) (PHYSICS.md section 4): about 1.2 V at 960 °C, rising as alumina falls.
    Checked against Haupin's breakdown, ~1.2 V (smelter_cell.REFERENCE_BREAKDOWN)."""
    activity = alumina_activity(alumina / saturation)
    return (1.896 - 0.000572 * temperature
            - GAS_CONSTANT * temperature / (12 * FARADAY) * 2 * ca.log(activity))


def anode_surface_overvoltage(temperature, current_density, alumina):
    """eta = (T / 12533) ln(i / i_r), i_r = 0.0029 [Al2O3]^0.56 A/cm² ([Al2O3] in wt%)
    (Haupin 1998). ``current_density`` in A/m² is converted to A/cm²: the anode current
    density over the anodes' working area. With the concentration overvoltage checked
    against Haupin's anode overvoltage, 0.5-0.6 V (smelter_cell.REFERENCE_BREAKDOWN)."""
    reference = 0.0029 * ca.exp(0.56 * ca.log(100.0 * alumina))
    return temperature / 12533.0 * ca.log(1e-4 * current_density / reference)


def critical_current_density(temperature, alumina, single_anode_area):
    """Critical anode current density, A/m² (Haupin 1998; Yao et al. 2017, eq. A7):

        i_c = (5.5 + 0.018 (T - 1323)) A^-0.1 ([Al2O3]^0.5 - 0.4)  A/cm²

    with A the area of one anode in cm² and [Al2O3] in wt%. i_c falls as alumina
    depletes; the anode effect starts when the anode current density reaches it."""
    return _critical_scale(temperature, single_anode_area) * (ca.sqrt(100.0 * alumina) - 0.4)


def alumina_at_anode_effect(temperature, current_density, single_anode_area):
    """Mass fraction of alumina at which i_c equals ``current_density``, the inverse of
    :func:`critical_current_density`: [Al2O3]^0.5 = 0.4 + i / ((5.5 + ...) A^-0.1)."""
    root = 0.4 + current_density / _critical_scale(temperature, single_anode_area)
    return 0.01 * root**2


def _critical_scale(temperature, single_anode_area):
    """(5.5 + 0.018 (T - 1323)) A^-0.1 of Haupin's i_c, converted to A/m² (A in cm²)."""
    area_cm2 = 1e4 * single_anode_area
    return 1e4 * (5.5 + 0.018 * (temperature - 1323.0)) * ca.exp(-0.1 * ca.log(area_cm2))


def critical_current_margin(current_density, critical):
    """Margin i_c - i kept above :data:`ANODE_EFFECT_GAP_FLOOR` by a smooth max, A/m²."""
    return smooth_max(critical - current_density, ANODE_EFFECT_GAP_FLOOR, ANODE_EFFECT_GAP_FLOOR)


def anode_concentration_overvoltage(temperature, current_density, critical):
    """eta = (R T / 2F) ln(i_c / (i_c - i)) (Haupin 1998), written as
    (R T / 2F) ln(1 + i / margin) with margin = :func:`critical_current_margin`:
    equal to Haupin's form while i_c - i is well above the floor, smooth, increasing as
    i_c falls, and bounded past the anode effect instead of diverging. ``current_density``
    over the anodes' working area; with the surface overvoltage checked against Haupin's
    anode overvoltage, 0.5-0.6 V (smelter_cell.REFERENCE_BREAKDOWN)."""
    margin = critical_current_margin(current_density, critical)
    return GAS_CONSTANT * temperature / (2 * FARADAY) * ca.log(1 + current_density / margin)


def anode_effect_indicator(current_density, critical):
    """i / (i + margin), dimensionless: equal to i / i_c in normal operation, rising
    towards 1 (and bounded by it) as the anode approaches and passes the anode effect."""
    margin = critical_current_margin(current_density, critical)
    return current_density / (current_density + margin)


def cathode_concentration_overvoltage(temperature, cathode_current_density, ratio):
    """eta = (2/3) (R T / F) (1.375 - 0.25 BR) ln(i_cathode / 0.257)  (i in A/cm²)
    (Haupin 1998 as in Yao et al. 2017, eq. A13). ``cathode_current_density`` in A/m²,
    over the metal pad. Checked against Haupin's ~0.1 V (smelter_cell.REFERENCE_BREAKDOWN)."""
    return (2.0 / 3.0 * GAS_CONSTANT * temperature / FARADAY * (1.375 - 0.25 * ratio)
            * ca.log(1e-4 * cathode_current_density / 0.257))


def bath_conductivity(temperature, alumina, caf2, mgf2, ratio):
    """Electrical conductivity of the bath, S/m (Híveš et al. 1996):

        ln kappa = 1.9362 + 0.3092 BR - 0.004132 [CaF2] - 0.01755 [Al2O3]
                   - 0.00398 [MgF2] - 1751.1 / T

    kappa in S/cm, wt% (from the mass fractions given), T in K, BR the NaF/AlF3 weight
    ratio: about 2.2 S/cm at 960 °C."""
    per_cm = ca.exp(1.9362 + 0.3092 * ratio - 0.4132 * caf2 - 1.755 * alumina
                    - 0.398 * mgf2 - 1751.1 / temperature)
    return 100.0 * per_cm


def fanned_bath_area(acd, anode_count, anode_length, anode_width, allowance):
    """Effective area of the bath drop, m²: each anode's length and width grown by a
    fringe of ``allowance`` x ACD on every side, as the current fans out beyond the
    anode's shadow (the fanning of Haupin's breakdown, as in Grjotheim & Kvande 1993):

        A_bath = n (L + 2 a ACD) (W + 2 a ACD)

    so the bath resistance ACD / (kappa A_bath) grows less than linearly with the ACD.
    Fringes of neighbouring anodes are not clipped where they overlap (a simplification:
    the inter-anode gaps are a few cm). The bath drop I ACD / (kappa A_bath) is checked
    against Haupin's 1.5-1.7 V (smelter_cell.REFERENCE_BREAKDOWN)."""
    fringe = 2 * allowance * acd
    return anode_count * (anode_length + fringe) * (anode_width + fringe)


def liquidus_temperature(alumina, excess_alf3, caf2, mgf2):
    """Liquidus temperature of the bath, K (Solheim et al. 1996), in wt%:

        t_liq = 1011 + 0.50 [AlF3] - 0.13 [AlF3]^2.2 - 3.45 [CaF2] / (1 + 0.0173 [CaF2])
                + 0.124 [CaF2][AlF3] - 0.00542 ([CaF2][AlF3])^1.5
                - 7.93 [Al2O3] / (1 + 0.0936 [Al2O3] - 0.0017 [Al2O3]^2
                                  - 0.0023 [AlF3][Al2O3])
                - 3.95 [MgF2]                                           °C

    (the published form also has -8.90 [LiF]/(1 + 0.0047 [LiF] + 0.0010 [AlF3]^2) and
    -3.95 [KF], zero in this bath). Pure cryolite melts at 1011 °C; a bath of 11 %
    excess AlF3, 5 % CaF2 and 3 % Al2O3 at 959.8 °C; each per cent of AlF3 lowers it by
    about 4 K there, each per cent of alumina by about 6 K. ``excess_alf3`` and ``caf2``
    must not be negative (their powers are fractional)."""
    alf3, calcium = 100.0 * excess_alf3, 100.0 * caf2
    oxide, magnesium = 100.0 * alumina, 100.0 * mgf2
    celsius = (1011.0 + 0.50 * alf3 - 0.13 * alf3**2.2
               - 3.45 * calcium / (1 + 0.0173 * calcium)
               + 0.124 * calcium * alf3 - 0.00542 * (calcium * alf3)**1.5
               - 7.93 * oxide / (1 + 0.0936 * oxide - 0.0017 * oxide**2 - 0.0023 * alf3 * oxide)
               - 3.95 * magnesium)
    return celsius + CELSIUS


def bubble_thickness(current_density):
    """Gas bubble layer thickness under the anode, m: d_b = (0.5517 + i)/(1 + 2.167 i)
    cm with i in A/cm² (Haupin 1998)."""
    i = 1e-4 * current_density
    return 0.01 * (0.5517 + i) / (1 + 2.167 * i)


def bubble_coverage(current_density, alumina, alumina_anode_effect, ratio):
    """Fraction of the anode covered by bubbles (Haupin 1998; Yao et al. 2017, eq. A18):

        phi = 0.9 (0.509 + 0.1823 i - 0.1723 i^2 + 0.05504 i^3
                   + (0.4322 - 0.3781 BR)/(1 + 1.637 BR)
                   + (0.431 - 0.1437 x)/(1 + 7.353 x)),   x = [Al2O3] - [Al2O3]_AE  (wt%)

    i in A/cm². x is kept positive by a smooth max (0.01 wt% wide), so coverage
    rises smoothly to about 0.9 at the anode effect instead of the correlation's pole."""
    i = 1e-4 * current_density
    x = smooth_max(100.0 * (alumina - alumina_anode_effect), 0.0, 0.01)
    return 0.9 * (0.509 + 0.1823 * i - 0.1723 * i**2 + 0.05504 * i**3
                  + (0.4322 - 0.3781 * ratio) / (1 + 1.637 * ratio)
                  + (0.431 - 0.1437 * x) / (1 + 7.353 * x))


def bubble_voltage(current_density, conductivity, coverage):
    """Drop across the bubble layer: V = i d_b phi / (kappa (1 - phi)) (Haupin 1998), with
    i the anode current density over the anodes' working area. Checked against Haupin's
    0.2-0.3 V (smelter_cell.REFERENCE_BREAKDOWN)."""
    return current_density * bubble_thickness(current_density) * coverage / (
        conductivity * (1 - coverage))
