"""Sucker-rod pump: wave solvers, card diagnostics, Goodman, inflow model (PHYSICS.md section 2)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from plants import rod_pump
from plants.rod_pump import (
    INCH,
    KSI,
    TENSILE_STRENGTH,
    analyze_pump_card,
    card_confidence,
    goodman_allowable_stress,
    goodman_loading,
    pump_displacement,
    signal_to_noise_db,
)
from plants.rod_pump_wave import (
    GRAVITY,
    PumpBoundary,
    RodSection,
    diagnose_downhole_card,
    harmonic_surface_position,
    predict_cards,
)

STRAIGHT = (RodSection(1500.0, 0.75 * INCH),)
TAPERED = (RodSection(600.0, 0.875 * INCH), RodSection(900.0, 0.75 * INCH))
PERIOD = 60.0 / 8.0  # 8 SPM
STROKE = 100 * INCH
FLUID_LOAD = 20e3  # N, ~4,500 lbf
NU = 0.1
BBL = 0.158987294928  # m^3


def _cards(rods, fillage, samples=400, implementation="numba", segments=60):
    position = harmonic_surface_position(STROKE, samples)
    pump = PumpBoundary(FLUID_LOAD, fillage, transfer_length=0.2)
    return predict_cards(rods, position, PERIOD, pump, NU, segments=segments,
                         implementation=implementation)


def test_wave_speed_of_steel_rods():
    """a = sqrt(E/rho) for steel (E = 30.5e6 psi, 490 lb/ft^3) is about 16,980 ft/s
    (PHYSICS.md section 2); tolerance 0.5 %."""
    speed_ft_s = RodSection(100.0, 0.75 * INCH).wave_speed / 0.3048
    assert speed_ft_s == pytest.approx(16_980, rel=5e-3)


@pytest.mark.parametrize("rods", [STRAIGHT, TAPERED], ids=["straight", "tapered"])
@pytest.mark.parametrize("fillage", [1.0, 0.6], ids=["full", "pounding"])
def test_diagnostic_recovers_imposed_pump_card(rods, fillage):
    """Round trip (issue 3 acceptance criterion): the predictive solver with a known pump
    boundary condition makes a surface card; the Everitt & Jennings diagnostic (on its
    own coarser grid, 400 samples per stroke) recovers the imposed pump load within 2 %
    of the peak load at every sample, and the plunger position within 2 % of its stroke."""
    cards = _cards(rods, fillage)
    pump = diagnose_downhole_card(rods, cards.surface.position, cards.surface.load, PERIOD, NU)
    peak = cards.pump.load.max()
    assert peak == pytest.approx(FLUID_LOAD, rel=1e-6)  # the fluid load is fully carried
    assert np.max(np.abs(pump.load - cards.pump.load)) < 0.02 * peak
    stroke = np.ptp(cards.pump.position)
    assert np.max(np.abs(pump.position - cards.pump.position)) < 0.02 * stroke


def test_numba_and_numpy_versions_agree():
    """The numba kernels and the plain-NumPy references run the same algorithm: same
    cards to 1e-9 of the load scale and the stroke."""
    fast = _cards(TAPERED, 0.6, samples=200, segments=20)
    slow = _cards(TAPERED, 0.6, samples=200, segments=20, implementation="numpy")
    for a, b in ((fast.surface.load, slow.surface.load), (fast.pump.load, slow.pump.load)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * FLUID_LOAD)
    np.testing.assert_allclose(fast.pump.position, slow.pump.position, rtol=0, atol=1e-9 * STROKE)
    args = (TAPERED, fast.surface.position, fast.surface.load, PERIOD, NU)
    a = diagnose_downhole_card(*args)
    b = diagnose_downhole_card(*args, implementation="numpy")
    np.testing.assert_allclose(a.load, b.load, rtol=0, atol=1e-9 * FLUID_LOAD)
    np.testing.assert_allclose(a.position, b.position, rtol=0, atol=1e-9 * STROKE)


def test_unstable_diagnostic_grid_raises():
    """A diagnostic grid with dx/(a dt) >= 1 is unstable: ValueError naming the bound.
    At 400 samples per 7.5 s stroke a dt ≈ 97 m, so one 600 m segment is far over it."""
    position = harmonic_surface_position(STROKE, 400)
    with pytest.raises(ValueError, match=r"dx/\(a dt\) = .* must be < 1"):
        diagnose_downhole_card(TAPERED, position, np.zeros(400), PERIOD, NU, segments=[1, 9])


@pytest.mark.parametrize("grade, expected_ksi", [("C", 90 / 4 + 5.625), ("K", 85 / 4 + 5.625),
                                                 ("D", 115 / 4 + 5.625)])
def test_goodman_allowable_stress_per_api_rp_11br(grade, expected_ksi):
    """API RP 11BR: S_a = (T/4 + 0.5625 S_min) SF; at S_min = 10 ksi, SF = 1:
    C 28.125, K 26.875, D 34.375 ksi (by hand); SF scales it; a rod load point at S_a
    uses exactly the whole allowable range. Tolerance 1e-12 relative."""
    allowable = goodman_allowable_stress(TENSILE_STRENGTH[grade], 10 * KSI, 1.0)
    assert allowable / KSI == pytest.approx(expected_ksi, rel=1e-12)
    assert goodman_allowable_stress(TENSILE_STRENGTH[grade], 10 * KSI, 0.9) / KSI == \
        pytest.approx(0.9 * expected_ksi, rel=1e-12)
    assert goodman_loading(allowable, 10 * KSI, TENSILE_STRENGTH[grade]) == pytest.approx(1.0)


def test_pump_displacement_matches_oilfield_formula():
    """PD = 0.1166 D^2 S_p N bbl/d (D, S_p in inches): a 1.75 in plunger, 100 in stroke at
    8 SPM gives 285.7 bbl/d; the SI function agrees within 0.05 % (0.1166 is rounded)."""
    si = pump_displacement(1.75 * INCH, 100 * INCH, 8.0)
    assert si * 86400 / BBL == pytest.approx(0.1166 * 1.75**2 * 100 * 8, rel=5e-4)


@pytest.mark.parametrize("fillage", [1.0, 0.8, 0.65, 0.5, 0.3])
def test_fillage_and_fluid_pound_from_diagnosed_card(fillage):
    """Fillage read from a diagnosed pump card (PHYSICS.md's midway-crossing definition)
    is the imposed fillage within 0.01; fluid pound is reported exactly when fillage
    < 70 %; the fluid load lines are F_o apart within 5 %."""
    cards = _cards(TAPERED, fillage)
    pump = diagnose_downhole_card(TAPERED, cards.surface.position, cards.surface.load, PERIOD, NU)
    analysis = analyze_pump_card(pump.position, pump.load)
    assert analysis.fillage == pytest.approx(fillage, abs=0.01)
    assert analysis.fluid_pound == (fillage < 0.7)
    assert analysis.fluid_load == pytest.approx(FLUID_LOAD, rel=0.05)


def test_snr_of_sine_in_white_noise():
    """First principles: a sine of amplitude A in white noise of std s has
    SNR = 10 log10(A^2 / (2 s^2)); here 30 dB, estimated within 1 dB."""
    rng = np.random.default_rng(1)
    samples = 400
    amplitude = 1.0
    noise_std = amplitude / math.sqrt(2 * 10**3)
    signal = amplitude * np.sin(2 * np.pi * np.arange(samples) / samples)
    snr = signal_to_noise_db(signal + noise_std * rng.standard_normal(samples))
    assert snr == pytest.approx(30.0, abs=1.0)


def test_card_confidence_falls_with_noise():
    """More load-cell noise on the same surface card means lower confidence: a clean
    card is trusted (> 0.9), 10 kN of noise on a ~40 kN card is not (< 0.1), and it
    falls monotonically in between."""
    cards = _cards(TAPERED, 0.8)
    rng = np.random.default_rng(2)
    white = rng.standard_normal(cards.surface.load.size)
    confidences = [card_confidence(cards.surface.position, cards.surface.load + std * white)
                   for std in (0.0, 500.0, 1500.0, 3000.0, 10000.0)]
    assert confidences[0] > 0.9
    assert confidences[-1] < 0.1
    assert all(a >= b for a, b in itertools.pairwise(confidences))


def test_inflow_equals_pump_output_at_nominal():
    """The nominal point is a steady state: inflow J (p_res - p_casing - rho g h) equals
    the pump's net output PD (1 - leak) fillage (computed here from the formulas),
    within 0.1 %, and the level does not move (|dh/dt| < 1e-6 m/s)."""
    model = rod_pump.build_model()
    x, u, d, p = model.steady_input_vectors()
    xs, us, ds, ps = (g.mapping(v) for g, v in zip(
        (model.states, model.inputs, model.disturbances, model.parameters), (x, u, d, p),
        strict=True))
    y = model.outputs.mapping(model.output(0.0, x, u, d, p))
    rho_g = ps["fluid_density"] * GRAVITY
    inflow = xs["productivity_multiplier"] * ps["productivity_index"] * (
        ps["reservoir_pressure"] - ds["casing_pressure"] - rho_g * xs["submergence"])
    fluid_load = math.pi / 4 * ps["plunger_diameter"] ** 2 * (
        ds["tubing_pressure"] + rho_g * (1500.0 - xs["submergence"]) - ds["casing_pressure"])
    stretch = sum(s.length / (s.youngs_modulus * s.area) for s in rod_pump.DEFAULT_ROD_STRING)
    plunger_stroke = ps["stroke_length"] - fluid_load * stretch
    output = (math.pi / 4 * ps["plunger_diameter"] ** 2 * plunger_stroke * us["SPM"] / 60
              * (1 - xs["pump_leak"]) * y["fillage"])
    assert output == pytest.approx(inflow, rel=1e-3)
    assert abs(model.dynamics(0.0, x, u, d, p)[model.states.index("submergence")]) < 1e-6
    assert y["fillage"] == pytest.approx(0.9, abs=0.02)


def test_pumped_off_well_settles_at_inflow_over_capacity():
    """Run faster than the well can give (11 SPM) for a day: the level falls to the pump
    and fillage settles at inflow / net pump capacity with the intake at the casing
    pressure (pumped off), within 2 %."""
    model = rod_pump.build_model()
    x, _, d, p = model.steady_input_vectors()
    u = np.array([11.0])
    for _ in range(720):
        x = model.step(x, u, d, p)
    ps = model.parameters.mapping(p)
    y = model.outputs.mapping(model.output(0.0, x, u, d, p))
    assert model.states.mapping(x)["submergence"] < 0.5
    inflow = ps["productivity_index"] * (ps["reservoir_pressure"] - 0.2e6)
    fluid_load = math.pi / 4 * ps["plunger_diameter"] ** 2 * (
        0.7e6 + ps["fluid_density"] * GRAVITY * 1500.0 - 0.2e6)
    stretch = sum(s.length / (s.youngs_modulus * s.area) for s in rod_pump.DEFAULT_ROD_STRING)
    capacity = pump_displacement(ps["plunger_diameter"], ps["stroke_length"]
                                 - fluid_load * stretch, 11.0) * (1 - 0.05)
    assert y["fillage"] == pytest.approx(inflow / capacity, rel=0.02)


def test_synthesized_measurement_agrees_with_slow_model():
    """The card pipeline (wave solver -> noisy card -> diagnostic) and the slow model's
    algebra describe the same well: fillage within 0.03, polished-rod loads within 10 %,
    power within 10 % at the nominal point and with the pump pounding (11 SPM)."""
    model = rod_pump.build_model()
    x, _, d, p = model.steady_input_vectors()
    rng = np.random.default_rng(3)
    for speed in (8.0, 11.0):
        u = np.array([speed])
        y = model.outputs.mapping(model.output(0.0, x, u, d, p))
        measured, _ = rod_pump.synthesize_measurement(x, u, d, p, rng, noise=1.0)
        assert set(model.outputs.names) == set(measured)
        assert measured["fillage"] == pytest.approx(y["fillage"], abs=0.03)
        for name in ("peak_load", "min_load", "motor_power"):
            assert measured[name] == pytest.approx(y[name], rel=0.10), name
        assert measured["card_confidence"] > 0.9


@pytest.mark.parametrize("fillage", [1.0, 0.6], ids=["full", "pounding"])
def test_measured_card_diagnoses_to_the_imposed_pump_card(fillage):
    """A surface card as a controller sends it (whole polished-rod load, static weight
    included; sample times from 0.3 s after the stroke's start) is diagnosed to the pump
    card the predictive solver imposed: the Everitt & Jennings round trip (SPE-18189-PA,
    issue 3's acceptance criterion, as test_diagnostic_recovers_imposed_pump_card) within
    2 % of the peak load and of the stroke at every sample, fillage within 0.01, fluid
    pound exactly below 70 %."""
    from engine.cards import SurfaceCard
    from plants.rod_pump_wave import buoyant_rod_weight

    cards = _cards(TAPERED, fillage)
    density = 950.0
    static = buoyant_rod_weight(TAPERED, density)
    n = cards.surface.position.size
    card = SurfaceCard(time=1.7e9, position=cards.surface.position.tolist(),
                       load=(static + cards.surface.load).tolist(),
                       sample_time=(0.3 + PERIOD / n * np.arange(n)).tolist())
    record = rod_pump.diagnose_card("well-01", card, {"fluid_density": density,
                                                      "damping_factor": NU}, TAPERED)
    assert record.period == pytest.approx(PERIOD, rel=1e-9)
    peak = cards.pump.load.max()
    assert np.max(np.abs(np.array(record.downhole_load) - cards.pump.load)) < 0.02 * peak
    stroke = np.ptp(cards.pump.position)
    assert np.max(np.abs(np.array(record.downhole_position) - cards.pump.position)) \
        < 0.02 * stroke
    assert record.fillage == pytest.approx(fillage, abs=0.01)
    assert record.fluid_pound == (fillage < 0.7)
    assert record.source == "measured" and record.asset == "well-01"


def test_synthesized_card_is_the_one_its_outputs_come_from():
    """The simulated plant's surface card (what its controller would send) diagnoses to
    the fillage and SNR confidence its scalar outputs report; loads within its extremes."""
    model = rod_pump.build_model()
    x, u, d, p = model.steady_input_vectors()
    measured, card = rod_pump.synthesize_measurement(x, u, d, p, np.random.default_rng(3))
    record = rod_pump.diagnose_card("w", card, model.parameters.mapping(p))
    assert len(card.position) == rod_pump.CARD_SAMPLES
    assert record.fillage == pytest.approx(measured["fillage"], abs=1e-9)
    assert record.confidence == pytest.approx(measured["card_confidence"], abs=1e-9)
    assert max(card.load) == pytest.approx(measured["peak_load"], rel=1e-12)
