"""Bitumen property correlations against PHYSICS.md section 3 and the handbooks it cites."""

from __future__ import annotations

import casadi as ca
import pytest

from plants import bitumen

CST = 1e-6  # m^2/s


def test_walther_fit_reproduces_the_published_constants():
    """PHYSICS.md: 32 cSt at 40 °C and 5.4 cSt at 100 °C give A = 9.5259, B = 3.7449.
    The published pair was computed with T = t + 273 (not 273.15), so the points go in at
    313 K and 373 K; with 273.15 the constants are 9.5308 and 3.7466, outside 1e-3.
    Tolerance 1e-3 absolute (PHYSICS.md's figures are rounded to 4 decimals)."""
    a, b = bitumen.walther_coefficients(313.0, 32 * CST, 373.0, 5.4 * CST)
    assert a == pytest.approx(9.5259, abs=1e-3)
    assert b == pytest.approx(3.7449, abs=1e-3)


def test_published_walther_constants_give_back_the_two_viscosities():
    """A = 9.5259, B = 3.7449 (PHYSICS.md) evaluated at 313 K and 373 K give 32 and
    5.4 cSt. Tolerance 0.5 % relative: the 4-decimal rounding of A moves nu by ~0.05 %."""
    assert bitumen.kinematic_viscosity(313.0, 9.5259, 3.7449) == pytest.approx(32 * CST, rel=5e-3)
    assert bitumen.kinematic_viscosity(373.0, 9.5259, 3.7449) == pytest.approx(5.4 * CST, rel=5e-3)


def test_fitted_walther_line_passes_through_both_points():
    """A line fitted through two points reproduces both (ASTM D341 is exact on its two
    defining points). Tolerance 1e-9 relative (round-off through two logarithms)."""
    a, b = bitumen.walther_coefficients(313.15, 32 * CST, 373.15, 5.4 * CST)
    assert bitumen.kinematic_viscosity(313.15, a, b) == pytest.approx(32 * CST, rel=1e-9)
    assert bitumen.kinematic_viscosity(373.15, a, b) == pytest.approx(5.4 * CST, rel=1e-9)
    assert bitumen.kinematic_viscosity(343.15, a, b) < 32 * CST


@pytest.mark.parametrize(
    ("arguments", "named"),
    [((313.15, 1.5 * CST, 373.15, 5.4 * CST), "viscosity_1"),
     ((313.15, 32 * CST, 313.15, 5.4 * CST), "temperature_2"),
     ((-1.0, 32 * CST, 373.15, 5.4 * CST), "temperature_1")],
)
def test_walther_fit_refuses_points_outside_its_validity(arguments, named):
    """The simple Walther form holds from 2 cSt up (ASTM D341) and needs two distinct,
    positive absolute temperatures: the error names the argument at fault."""
    with pytest.raises(ValueError, match=named):
        bitumen.walther_coefficients(*arguments)


def test_cragoe_specific_heat_by_hand():
    """Cragoe: c_p = (1.685 + 0.00339 t[°C]) / sqrt(SG) kJ/(kg K) (PHYSICS.md).
    By hand: 25 °C, SG 1.00: 1.685 + 0.08475 = 1.76975; 160 °C, SG 1.03:
    (1.685 + 0.5424) / 1.014889 = 2.19472 kJ/(kg K). Tolerance 1e-5 relative."""
    assert bitumen.specific_heat(298.15, 1.00) == pytest.approx(1769.75, rel=1e-5)
    assert bitumen.specific_heat(433.15, 1.03) == pytest.approx(2194.72, rel=1e-5)


def test_density_follows_cubical_expansion():
    """Shell Bitumen Handbook A1.2: cubical expansion 0.00061 /°C. By hand, SG 1.03 at
    25/25 °C: rho_25 = 1.03 x 997.05 = 1026.96 kg/m^3; at 125 °C the volume is
    1 + 0.061 times larger, so rho = 1026.96 / 1.061 = 967.92 kg/m^3. Tolerance 1e-5."""
    assert bitumen.density(298.15, 1.03) == pytest.approx(1026.96, rel=1e-5)
    assert bitumen.density(398.15, 1.03) == pytest.approx(967.92, rel=1e-5)


def test_density_agrees_with_astm_d4311_volume_correction():
    """ASTM D4311 (table 1, column A): V_15 / V_T = 1.009 - 6.3341e-4 T + 1.4571e-7 T^2,
    T in °C, = 0.91138 at 160 °C. The constant-coefficient model gives
    rho_160 / rho_15 = 0.91828. Tolerance 1 % (D4311's coefficient is 0.00063 /°C, a
    slightly different fit to the same tables)."""
    ratio = bitumen.density(433.15, 1.03) / bitumen.density(288.15, 1.03)
    assert ratio == pytest.approx(0.91138, rel=1e-2)


def test_correlations_give_the_same_numbers_symbolically():
    """The plant models build CasADi expressions from these functions; the expressions
    must evaluate to the numeric values. Tolerance 1e-12 relative."""
    temperature = ca.SX.sym("T")
    symbolic = ca.Function("props", [temperature], [
        bitumen.specific_heat(temperature, 1.03),
        bitumen.density(temperature, 1.03),
        bitumen.kinematic_viscosity(temperature, 9.56, 3.50),
    ])
    for value, expected in zip(symbolic(433.15), [
        bitumen.specific_heat(433.15, 1.03),
        bitumen.density(433.15, 1.03),
        bitumen.kinematic_viscosity(433.15, 9.56, 3.50),
    ], strict=True):
        assert float(value) == pytest.approx(expected, rel=1e-12)


def test_churchill_chu_reproduces_the_published_cylinder_case_term_by_term():
    """Churchill & Chu (1975) for a horizontal cylinder, Nu_D = {0.60 + 0.387 Ra^(1/6) /
    [1 + (0.559/Pr)^(9/16)]^(8/27)}^2, at Incropera's air case Pr = 0.69, Gr = 2.63e9
    (Bergman et al., Introduction to Heat Transfer, 6th ed., Example 9.2), worked by
    hand: Ra = Gr Pr = 1.8147e9, Ra^(1/6) = 34.925, the Prandtl factor
    [1 + 0.8888]^(8/27) = 1.2073, 0.387 x 34.925 / 1.2073 = 11.196, Nu = 11.796^2 =
    139.13; C. Bell's ht library (Nu_horizontal_cylinder_Churchill_Chu(0.69, 2.63e9))
    publishes 139.1349. Tolerances 1e-4 relative on the hand-rounded terms."""
    from plants import convection

    rayleigh = 0.69 * 2.63e9
    assert rayleigh == pytest.approx(1.8147e9, rel=1e-4)
    assert rayleigh ** (1 / 6) == pytest.approx(34.925, rel=1e-4)
    assert (1 + (0.559 / 0.69) ** (9 / 16)) ** (8 / 27) == pytest.approx(1.2073, rel=1e-4)
    nusselt = convection.churchill_chu_horizontal_cylinder(rayleigh, 0.69)
    assert nusselt == pytest.approx((0.60 + 11.196) ** 2, rel=1e-4)
    assert nusselt == pytest.approx(139.1349, rel=1e-6)


def test_coil_film_coefficient_of_bitumen_term_by_term():
    """The coil's outside film at 160 °C bulk and 250 °C oil on a 60.3 mm (2-inch) tube,
    default 60/70 grade, SG 1.03, worked by hand: wall excess dT_w = 45 K; film at
    T_f = 455.65 K, where Walther gives nu = 58.17 cSt, Shell's expansion rho = 936.9
    kg/m^3, Cragoe c_p = 2270 J/(kg K), so alpha = 0.15 / (rho c_p) = 7.053e-8 m^2/s,
    Pr = nu / alpha = 824.8 and Ra = 9.80665 x 6.1e-4 x 45 x 0.0603^3 / (nu alpha) =
    1.4386e7; Churchill & Chu give Nu = 43.64 and h_o = Nu k / D = 108.6 W/(m^2 K).
    Tolerance 1e-3 relative (the hand figures' rounding)."""
    from plants import convection

    a, b = bitumen.walther_coefficients(*bitumen.DEFAULT_GRADE[0], *bitumen.DEFAULT_GRADE[1])
    film = 433.15 + (523.15 - 433.15) / 4
    assert film == pytest.approx(455.65, abs=1e-9)
    nu = bitumen.kinematic_viscosity(film, a, b)
    rho, c_p = bitumen.density(film, 1.03), bitumen.specific_heat(film, 1.03)
    assert (nu / CST, rho, c_p) == pytest.approx((58.17, 936.9, 2270.0), rel=1e-3)
    alpha = bitumen.THERMAL_CONDUCTIVITY / (rho * c_p)
    assert (alpha, nu / alpha) == pytest.approx((7.053e-8, 824.8), rel=1e-3)
    rayleigh = convection.rayleigh_number(bitumen.CUBICAL_EXPANSION, 45.0, 0.0603, nu, alpha)
    assert rayleigh == pytest.approx(1.4386e7, rel=1e-3)
    assert convection.churchill_chu_horizontal_cylinder(rayleigh, nu / alpha) == pytest.approx(
        43.64, rel=1e-3)
    h = bitumen.coil_film_coefficient(433.15, 523.15, 0.0603, 1.03, a, b)
    assert h == pytest.approx(108.6, rel=1e-3)
    symbolic = ca.SX.sym("T")
    as_casadi = ca.Function("h", [symbolic], [bitumen.coil_film_coefficient(
        symbolic, 523.15, 0.0603, 1.03, a, b)])
    assert float(as_casadi(433.15)) == pytest.approx(h, rel=1e-12)
