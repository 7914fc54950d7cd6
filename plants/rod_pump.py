"""Sucker-rod pump: slow well model for estimation and control, and card diagnostics
(PHYSICS.md section 2).

Two time scales, kept apart:

* The **slow model** (:func:`build_model`, the PlantModel the twin estimates and
  controls, step 1–5 min, several strokes) is algebraic in the stroke: smooth CasADi
  expressions for fillage, polished-rod loads and power, plus the well's inflow
  dynamics. It is what the EKF linearises and the controller predicts with.
* The **card layer** (:func:`synthesize_measurement`, :func:`analyze_pump_card`,
  Goodman and signal-confidence functions) works stroke by stroke on dynamometer
  cards with the wave-equation solvers of :mod:`plants.rod_pump_wave`. A simulated
  plant calls :func:`synthesize_measurement` instead of ``h``: it runs the predictive
  wave solver with the plant's true fillage and fluid load to make a noisy surface
  card, diagnoses it back to a pump card (Everitt & Jennings), and reports what a rod
  pump controller would: fillage from the diagnosed pump card, peak and minimum loads
  and power from the surface card, and a card confidence from the signal-to-noise
  ratio. So the twin sees the card pipeline's errors, not its own formulas.

Slow model equations (SI; N the SPM, w = 2 pi N / 60):

    F_o   = A_p (p_tubing + rho g L - p_casing - rho g h)         fluid load on the plunger
    S_p   = S - F_o sum(L_s / (E A_s))                             plunger stroke (rod stretch,
                                                                   anchored tubing)
    PD    = (pi/4) D_p^2 S_p N / 60                                pump displacement, m^3/s
                                                                   (= 0.1166 D^2 S_p N bbl/d, in)
    q_in  = k_PI J (p_res - p_casing - rho g h)                   inflow (productivity index)
    fill  = smin(1, smax(0, (q_in + A_ann h / tau) / (PD (1 - leak))))
    A_ann dh/dt = q_in - PD (1 - leak) fill                        annulus fluid balance
    dD/dt = (N / 60) loading^m / 1e7                               Miner's rule, 1e7 cycles at
                                                                   the Goodman limit
    D_dyn = W_r alpha + c M_r S w / 2 + beta F_o                  dynamic load amplitude
    peak  = W_rf + F_o + D_dyn,  min = W_rf - D_dyn
    power = (F_o S_p fill N / 60 + c M_r (S w)^2 / 8) / eta        pump card work + Gibbs
                                                                   damping loss, W

The dynamic load adds to Mills' acceleration load (alpha = S w^2 / (2 g), i.e.
S N^2 / 70,471 with S in inches) the peak Gibbs damping force and the rod vibration the
fluid-load pick-up excites (beta F_o); beta = 0.2 is calibrated against the predictive
wave solver for the default well (0.12–0.25 from 4 to 12 SPM). W_r is the rod weight in
air, W_rf buoyant, M_r the rod mass, c Gibbs' damping coefficient.
``h`` is the fluid column above the pump intake (pump at the perforations, so the
flowing bottomhole pressure is p_casing + rho g h); ``A_ann h / tau`` is the fluid the
annulus above the intake can give the pump within a stroke, which makes fillage
approach ``min(1, q_in / PD)`` as the level reaches the pump. smin/smax are smooth
(hyperbolic) min/max. Random-walk states (estimated): productivity multiplier
``k_PI``, pump leak fraction ``leak``.

Signals:
    states:       submergence h [m], productivity_multiplier [1], pump_leak [1],
                  fatigue_damage [1]
    inputs:       SPM [1/min] (VFD speed setpoint, strokes per minute)
    disturbances: tubing_pressure [Pa], casing_pressure [Pa] (wellhead)
    outputs:      fillage [1], peak_load [N], min_load [N], motor_power [W],
                  fluid_level [m] (depth below surface, echometer), rod_loading [1]
                  (Goodman range used, max over taper sections)
    parameters:   productivity_index J [m^3/(s Pa)], reservoir_pressure [Pa],
                  plunger_diameter D_p [m], stroke_length S [m], fluid_density rho
                  [kg/m^3], annulus_area A_ann [m^2], intake_time_constant tau [s],
                  damping_factor nu [1], load_pickup_factor beta [1], unit_efficiency
                  eta [1], tensile_strength T [Pa], service_factor SF [1],
                  fatigue_exponent m [1]; the rod string (structure) fixes L, W_r, M_r.

Goodman (API RP 11BR): allowable S_a = (T/4 + 0.5625 S_min) SF, loading =
(S_max - S_min) / (S_a - S_min); T = 90 ksi (grade C), 85 ksi (K), 115 ksi (D).
Simplifications: vertical well, pump at the perforations, no gas (fillage < 1 only
from pump-off), algebraic loads (harmonic polished-rod motion, one vibration term) in
the slow model, no plunger overtravel, the fatigue exponent m = 8 is a default (unverified).
Oilfield units appear only in docstrings and checks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import casadi as ca
import msgspec
import numpy as np

from engine.cards import CardRecord, SurfaceCard, check_card
from engine.config import (
    AlarmSettings,
    AssetConfig,
    ControllerSettings,
    EstimatorSettings,
    PlantDefaults,
    SetpointLimit,
)
from engine.model import PlantModel
from engine.signals import Signal, SignalSet
from plants.rod_pump_wave import (
    GRAVITY,
    PSI,
    PredictedCards,
    PumpBoundary,
    RodSection,
    RodString,
    buoyant_rod_weight,
    damping_coefficient,
    diagnose_downhole_card,
    harmonic_surface_position,
    predict_cards,
    rod_string,
)
from plants.views import Curve, GoodmanTaper, RodPumpView

KIND = "rod_pump"
INCH = 0.0254
KSI = 1000 * PSI
TENSILE_STRENGTH = {"C": 90 * KSI, "K": 85 * KSI, "D": 115 * KSI}
"""Minimum tensile strength T of API rod grades, Pa."""
POUND_FILLAGE = 0.7
"""Fillage below which fluid pound usually warrants action."""
ENDURANCE_CYCLES = 1e7
"""Cycles a rod survives at the Goodman allowable range (the diagram's basis)."""
DEFAULT_ROD_STRING: RodString = (RodSection(600.0, 0.875 * INCH), RodSection(900.0, 0.75 * INCH))
"""API taper of 7/8 in over 3/4 in steel rods, pump at 1,500 m (4,921 ft)."""
CARD_SAMPLES = 400
"""Dynamometer samples per stroke of the synthesized cards."""
LOAD_TRANSFER_LENGTH = 0.2
"""Plunger travel over which the fluid load is picked up or released, m (tubing stretch)."""
LOAD_NOISE = 200.0
"""Load-cell noise at ``noise`` = 1, N (45 lbf)."""
POSITION_NOISE = 0.002
"""Position-sensor noise at ``noise`` = 1, m."""

DEFAULTS = PlantDefaults(
    period_s=120.0,
    reference={"fillage": 0.90},
    limits={"SPM": SetpointLimit(lower=2.0, upper=12.0, max_rate=1.0 / 120.0)},
    controller=ControllerSettings(backend="fillage-rule", horizon=10,
                                  tracking={"fillage": 1.0}, move_suppression={"SPM": 0.1}),
    estimator=EstimatorSettings(measurement_std={"peak_load": 2500.0, "min_load": 2500.0},
                                process_std={"submergence": 0.05},
                                initial_std={"productivity_multiplier": 0.3, "pump_leak": 0.02},
                                unfiltered_outputs=["rod_loading", "card_confidence"]),
    alarms=[
        AlarmSettings(signal="fillage", kind="LO", limit=POUND_FILLAGE, deadband=0.05,
                      on_delay_s=230.0, priority="MEDIUM", name="fluid_pound",
                      message="fillage below 70 %: fluid pound; slow the pump"),
        AlarmSettings(signal="rod_loading", kind="HI", limit=1.0, deadband=0.03,
                      priority="HIGH", name="goodman_overload",
                      message="rod load outside the modified Goodman diagram (API RP 11BR): "
                              "fatigue risk"),
    ],
)
"""Hold 90 % fillage; the VFD moves at most 1 SPM per 2 minutes within 2–12 SPM. The
filter's polished-rod load noise is the slow model's structural error, not the load
cell's (250 N): its algebraic loads differ from the card's by up to 10 % of ~25 kN
(test_rod_pump), and with 250 N the NIS test would flag that model error every stroke.
The Goodman rod loading is computed from the measured loads, so it is not filtered (its
error is theirs again). The well's productivity is known to +-30 % at best, so the
multiplier starts with a 0.3 std, and the submergence moves 0.05 m per sqrt(s) beyond the
slow model's inflow: with the 1 % defaults the filter took an hour to find the pilot's
weaker and stronger wells (productivity 0.75 and 1.2) and flagged most corrections
until it did (tests/plants/test_pilot_anomalies.py).
Alarms: fluid pound below POUND_FILLAGE (70 %, PHYSICS.md section 2) on the third
consecutive stroke card (on-delay 230 s), deadband 0.05 (about 2 std of the 0.03 fillage
noise); Goodman overload when the rod load point leaves the diagram (loading 1)."""

_STATES = [
    Signal("submergence", "m", 0.0, 0.0, 1500.0, "fluid column above the pump intake", std=0.01),
    Signal("productivity_multiplier", "1", 1.0, 0.05, 5.0,
           "multiplier on the productivity index", std=3e-4),
    Signal("pump_leak", "1", 0.05, 0.0, 0.9, "fraction of displacement slipping back", std=1e-4),
    Signal("fatigue_damage", "1", 0.0, 0.0, 10.0, "Miner's sum of rod fatigue damage"),
]
_INPUTS = [Signal("SPM", "1/min", 8.0, 1.0, 15.0, "pumping speed, strokes per minute")]
_DISTURBANCES = [
    Signal("tubing_pressure", "Pa", 0.7e6, 0.0, 1.0e7, "wellhead tubing pressure"),
    Signal("casing_pressure", "Pa", 0.2e6, 0.0, 1.0e7, "wellhead casing pressure"),
]
_PARAMETERS = [
    Signal("productivity_index", "m^3/(s Pa)", 3.7e-11, 1e-13, 1e-8,
           "J, inflow per drawdown (0.14 bbl/d/psi)"),
    Signal("reservoir_pressure", "Pa", 10.0e6, 1.0e5, 1.0e8, "static reservoir pressure"),
    Signal("plunger_diameter", "m", 1.75 * INCH, 0.5 * INCH, 6.0 * INCH, "pump plunger diameter"),
    Signal("stroke_length", "m", 100 * INCH, 0.3, 8.0, "polished-rod stroke"),
    Signal("fluid_density", "kg/m^3", 950.0, 600.0, 1300.0, "produced fluid density"),
    Signal("annulus_area", "m^2", 8.2e-3, 1e-4, 0.1,
           "casing-tubing annulus area (5.5 in casing, 2-7/8 in tubing)"),
    Signal("intake_time_constant", "s", 300.0, 10.0, 1e4,
           "tau: time for the pump to draw the annulus down to its intake"),
    Signal("damping_factor", "1", 0.1, 0.01, 1.0, "Gibbs' nu"),
    Signal("load_pickup_factor", "1", 0.2, 0.0, 1.0,
           "beta: rod vibration from the fluid-load pick-up, per unit fluid load"),
    Signal("unit_efficiency", "1", 0.65, 0.1, 1.0, "motor input to polished-rod power"),
    Signal("tensile_strength", "Pa", TENSILE_STRENGTH["D"], 1e8, 2e9, "rod tensile strength T"),
    Signal("service_factor", "1", 0.9, 0.1, 1.5, "Goodman service factor SF"),
    Signal("fatigue_exponent", "1", 8.0, 1.0, 20.0, "m in life ~ loading^-m (unverified)"),
]
_OUTPUTS = [
    Signal("fillage", "1", 0.9, 0.0, 1.0, "pump fillage from the pump card", std=0.03),
    Signal("peak_load", "N", 6.0e4, 0.0, 5.0e5, "peak polished-rod load", std=250.0),
    Signal("min_load", "N", 3.0e4, -1.0e5, 5.0e5, "minimum polished-rod load", std=250.0),
    Signal("motor_power", "W", 1.0e4, 0.0, 5.0e5, "motor input power", std=150.0),
    Signal("fluid_level", "m", 1500.0, 0.0, 1.0e4, "fluid level depth below surface", std=3.0),
    Signal("rod_loading", "1", 0.6, 0.0, 5.0, "Goodman range used, max over tapers", std=0.01),
    Signal("card_confidence", "1", 1.0, 0.0, 1.0,
           "confidence in the surface card from its channels' SNR (measured only: the "
           "model predicts a clean card; not filtered)", std=0.05),
]


# -- formulas -----------------------------------------------------------------------------

def pump_displacement(plunger_diameter, plunger_stroke, spm):
    """PD = (pi/4) D^2 S_p N / 60, m^3/s (D, S_p in m, N in 1/min).

    The oilfield form PD = 0.1166 D^2 S_p N bbl/d (D, S_p in inches) is the same:
    pi/4 in^3/min x 1440 min/d / 9702 in^3/bbl = 0.1166."""
    return math.pi / 4 * plunger_diameter**2 * plunger_stroke * spm / 60


def goodman_allowable_stress(tensile_strength, min_stress, service_factor=1.0):
    """Modified Goodman allowable maximum stress S_a = (T/4 + 0.5625 S_min) SF, Pa (API RP 11BR)."""
    return (tensile_strength / 4 + 0.5625 * min_stress) * service_factor


def goodman_loading(max_stress, min_stress, tensile_strength, service_factor=1.0):
    """Fraction of the allowable range used, (S_max - S_min) / (S_a - S_min).

    Above 1 the rod load point lies outside the modified Goodman diagram: fatigue risk."""
    allowable = goodman_allowable_stress(tensile_strength, min_stress, service_factor)
    return (max_stress - min_stress) / (allowable - min_stress)


def rod_loading(peak_load, min_load, rods: RodString, fluid_density, tensile_strength,
                service_factor=1.0, maximum: Callable = max):
    """Largest Goodman loading over the taper sections for polished-rod loads in N.

    The load at the top of each section is the polished-rod load less the buoyant weight
    of the sections above it; stress = load / area. ``maximum`` combines two values
    (``max`` for numbers, ``casadi.fmax`` for symbols)."""
    worst = None
    above = 0.0
    for section in rods:
        loading = goodman_loading((peak_load - above) / section.area,
                                  (min_load - above) / section.area,
                                  tensile_strength, service_factor)
        worst = loading if worst is None else maximum(worst, loading)
        above = above + GRAVITY * section.area * section.length * (section.density - fluid_density)
    return worst


def _smooth_min(a, b, width):
    return (a + b - ca.sqrt((a - b) ** 2 + width**2)) / 2


def _well(x: Mapping, u: Mapping, d: Mapping, p: Mapping, rods: RodString) -> dict:
    """The slow model's formulas on named values (floats or CasADi symbols)."""
    g = GRAVITY
    depth = sum(s.length for s in rods)
    rod_volume = sum(s.area * s.length for s in rods)
    rod_mass = sum(s.mass for s in rods)
    compliance = sum(s.length / (s.youngs_modulus * s.area) for s in rods)
    rho, h, spm = p["fluid_density"], x["submergence"], u["SPM"]
    plunger_area = math.pi / 4 * p["plunger_diameter"] ** 2
    fluid_load = plunger_area * (d["tubing_pressure"] + rho * g * (depth - h)
                                 - d["casing_pressure"])
    plunger_stroke = p["stroke_length"] - fluid_load * compliance
    displacement = pump_displacement(p["plunger_diameter"], plunger_stroke, spm)
    capacity = ca.fmax(displacement * (1 - x["pump_leak"]), 1e-9)
    inflow = x["productivity_multiplier"] * p["productivity_index"] * (
        p["reservoir_pressure"] - d["casing_pressure"] - rho * g * h)
    supply = (inflow + p["annulus_area"] * h / p["intake_time_constant"]) / capacity
    fillage = _smooth_min(1.0, (supply + ca.sqrt(supply**2 + 4e-4)) / 2, 0.02)
    omega = 2 * math.pi * spm / 60
    weight = g * rod_mass
    buoyant_weight = weight - rho * g * rod_volume
    acceleration_factor = p["stroke_length"] * omega**2 / (2 * g)
    # c = damping_coefficient(rods, nu), linear in nu
    damping = damping_coefficient(rods, 1.0) * p["damping_factor"]
    dynamic_load = (weight * acceleration_factor
                    + damping * rod_mass * p["stroke_length"] * omega / 2
                    + p["load_pickup_factor"] * fluid_load)
    peak = buoyant_weight + fluid_load + dynamic_load
    low = buoyant_weight - dynamic_load
    power = (fluid_load * plunger_stroke * fillage * spm / 60
             + damping * rod_mass * (p["stroke_length"] * omega) ** 2 / 8) / p["unit_efficiency"]
    loading = rod_loading(peak, low, rods, rho, p["tensile_strength"], p["service_factor"],
                          ca.fmax)
    return {
        "fluid_load": fluid_load, "plunger_stroke": plunger_stroke, "inflow": inflow,
        "production": capacity * fillage, "fillage": fillage, "peak_load": peak,
        "min_load": low, "motor_power": power, "fluid_level": depth - h,
        "rod_loading": loading, "buoyant_weight": buoyant_weight, "card_confidence": 1.0,
        "damage_rate": spm / 60 * ca.power(ca.fmax(loading, 1e-3), p["fatigue_exponent"])
        / ENDURANCE_CYCLES,
    }


def _steady_submergence(rods: RodString) -> float:
    """Submergence where inflow equals pump output at the nominal signals (bisection;
    the net inflow falls monotonically with the level)."""
    x, u, d, p = (SignalSet(s).mapping(SignalSet(s).nominal)
                  for s in (_STATES, _INPUTS, _DISTURBANCES, _PARAMETERS))
    low, high = 0.0, sum(s.length for s in rods)
    for _ in range(60):
        middle = (low + high) / 2
        well = _well({**x, "submergence": middle}, u, d, p, rods)
        low, high = (middle, high) if well["inflow"] > well["production"] else (low, middle)
    return (low + high) / 2


@functools.lru_cache(maxsize=8)
def _nominal_signals(rods: RodString, grade: str) -> tuple[list[Signal], ...]:
    """Signal lists with the steady operating point as nominal values."""
    if grade not in TENSILE_STRENGTH:
        raise ValueError(f"rod grade must be one of {sorted(TENSILE_STRENGTH)}, got {grade!r}")
    parameters = [msgspec.structs.replace(s, nominal=TENSILE_STRENGTH[grade])
                  if s.name == "tensile_strength" else s for s in _PARAMETERS]
    depth = sum(s.length for s in rods)
    level = _steady_submergence(rods)
    states = [msgspec.structs.replace(s, nominal=level, upper=depth)
              if s.name == "submergence" else s for s in _STATES]
    x, u, d, p = (SignalSet(s).mapping(SignalSet(s).nominal)
                  for s in (states, _INPUTS, _DISTURBANCES, parameters))
    well = _well(x, u, d, p, rods)
    outputs = [msgspec.structs.replace(s, nominal=float(well[s.name])) for s in _OUTPUTS]
    return states, list(_INPUTS), list(_DISTURBANCES), parameters, outputs


def build_model(dt: float = 120.0, rod_sections: Sequence | None = None,
                grade: str = "D") -> PlantModel:
    """The slow rod-pump well model, step ``dt`` s.

    Args:
        dt: controller step, s (several strokes).
        rod_sections: rod sections top first (:class:`RodSection` or mappings
            with ``length`` and ``diameter`` in m); default :data:`DEFAULT_ROD_STRING`.
            The pump depth is the string length.
        grade: API rod grade "C", "K" or "D" (sets ``tensile_strength``).

    Nominal signal values are the steady state: inflow equals pump output.
    """
    rods = _rods(rod_sections)
    states, inputs, disturbances, parameters, outputs = _nominal_signals(rods, grade)

    def dynamics(x, u, d, p):
        well = _well(x, u, d, p, rods)
        return {
            "submergence": (well["inflow"] - well["production"]) / p["annulus_area"],
            "productivity_multiplier": 0.0 * x["productivity_multiplier"],
            "pump_leak": 0.0 * x["pump_leak"],
            "fatigue_damage": well["damage_rate"],
        }

    def output(x, u, d, p):
        well = _well(x, u, d, p, rods)
        return {s.name: well[s.name] for s in outputs}

    return PlantModel.build(
        KIND, states=states, inputs=inputs, disturbances=disturbances, parameters=parameters,
        outputs=outputs, dynamics=dynamics, output=output, dt=dt, substeps=4,
    )


def _rods(sections: Sequence | None) -> RodString:
    return DEFAULT_ROD_STRING if sections is None else rod_string(sections)


# -- card diagnostics -----------------------------------------------------------------------

@dataclass(frozen=True)
class PumpCardAnalysis:
    """What a pump (downhole) card says about the pump.

    Attributes:
        fillage: liquid fraction of the net plunger stroke, 0..1.
        fluid_pound: fillage below the threshold with an abrupt load release.
        fluid_load: distance between the upper and lower fluid load lines, N.
        net_stroke: plunger travel carrying the fluid load, m.
    """

    fillage: float
    fluid_pound: bool
    fluid_load: float
    net_stroke: float


def analyze_pump_card(position, load, pound_fillage: float = POUND_FILLAGE,
                      smoothing: int = 5) -> PumpCardAnalysis:
    """Fillage and fluid pound from a pump card (one stroke, uniform in time).

    Fluid load lines: the 5th and 95th percentiles of the load (smoothed by a periodic
    moving average of ``smoothing`` samples). Fillage = (downstroke position where the
    load falls through midway between the lines, from the bottom) / net plunger stroke,
    the net stroke running from the upstroke midway crossing to the top (PHYSICS.md
    section 2). Fluid pound: fillage < ``pound_fillage`` and the load falls from 75 % to
    25 % of the fluid load within 20 % of the net stroke (gas interference releases it
    gradually).
    """
    z = np.asarray(position, dtype=float).ravel()
    raw = np.asarray(load, dtype=float).ravel()
    if z.size != raw.size or z.size < 8:
        raise ValueError(f"pump card needs matching position and load of >= 8 samples, "
                         f"got {z.size} and {raw.size}")
    window = np.ones(smoothing) / smoothing
    padded = np.concatenate([raw[-(smoothing // 2):], raw, raw[: smoothing // 2]]) \
        if smoothing > 1 else raw
    F = np.convolve(padded, window, mode="valid")
    lower, upper = np.percentile(F, [5, 95])
    if not upper - lower > 0.05 * max(abs(upper), abs(lower), 1.0):
        raise ValueError(f"pump card carries no fluid load: load lines {lower:.0f} N and "
                         f"{upper:.0f} N are too close")
    top, bottom = int(np.argmax(z)), int(np.argmin(z))
    n = z.size
    upstroke = (bottom + np.arange((top - bottom) % n + 1)) % n
    downstroke = (top + np.arange((bottom - top) % n + 1)) % n

    def crossing(indices, level, rising, fallback):
        values = F[indices] - level
        hits = np.nonzero(values >= 0 if rising else values <= 0)[0]
        if hits.size == 0:
            return fallback
        j = hits[0]
        if j == 0:
            return z[indices[0]]
        weight = values[j - 1] / (values[j - 1] - values[j])
        return z[indices[j - 1]] + weight * (z[indices[j]] - z[indices[j - 1]])

    middle = (lower + upper) / 2
    z_top, z_bottom = z[top], z[bottom]
    z_up = crossing(upstroke, middle, True, z_top)
    net = z_top - z_up
    if not net > 0:
        raise ValueError("pump card: the plunger never picks up the fluid load")
    z_down = crossing(downstroke, middle, False, z_bottom)
    fillage = float(np.clip((z_down - z_bottom) / net, 0.0, 1.0))
    release = (crossing(downstroke, lower + 0.75 * (upper - lower), False, z_bottom)
               - crossing(downstroke, lower + 0.25 * (upper - lower), False, z_bottom))
    pound = fillage < pound_fillage and release < 0.2 * net
    return PumpCardAnalysis(fillage, bool(pound), float(upper - lower), float(net))


def signal_to_noise_db(samples, harmonics: int | None = None) -> float:
    """SNR of one periodic card channel, dB.

    Signal: the first ``harmonics`` harmonics of the stroke (default: a fifth of the
    samples, 80 of 400, which holds the rod vibrations and load steps of real cards);
    noise: the rest of the spectrum, assumed white, so its level above ``harmonics`` is
    extended to the whole band and removed from the signal part. Capped at 120 dB for
    noiseless data."""
    x = np.asarray(samples, dtype=float).ravel()
    harmonics = x.size // 5 if harmonics is None else harmonics
    if not 1 <= harmonics <= x.size // 2 - 8:
        raise ValueError(f"SNR harmonics must be within 1..{x.size // 2 - 8} for "
                         f"{x.size} samples per stroke, got {harmonics}")
    power = np.abs(np.fft.rfft(x - x.mean()))[1:] ** 2
    noise_per_bin = power[harmonics:].mean()
    signal = max(power[:harmonics].sum() - noise_per_bin * harmonics, 0.0)
    noise = noise_per_bin * power.size
    return float(min(120.0, 10 * np.log10(max(signal, 1e-300) / max(noise, 1e-300))))


def snr_confidence(snr_db: float, unusable_db: float = 10.0, clean_db: float = 30.0) -> float:
    """Confidence 0..1 in a channel: 0 at or below ``unusable_db``, 1 at or above
    ``clean_db``, linear in dB between."""
    return float(np.clip((snr_db - unusable_db) / (clean_db - unusable_db), 0.0, 1.0))


def card_confidence(position, load) -> float:
    """Confidence 0..1 in a surface card: the lower of its two channels' confidences."""
    return min(snr_confidence(signal_to_noise_db(position)),
               snr_confidence(signal_to_noise_db(load)))


# -- measurement synthesis for simulated plants ---------------------------------------------

def synthesize_measurement(x, u, d, p, rng: np.random.Generator, noise: float = 1.0, *,
                           rod_sections: Sequence | None = None,
                           grade: str = "D") -> tuple[dict[str, float], SurfaceCard]:
    """Measured outputs of a simulated rod pump, through the card pipeline, and the
    stroke's noisy surface card as its controller would send it.

    ``x, u, d, p`` are name -> value mappings or vectors in :func:`build_model`'s signal
    order (the plant's true values). Steps: true fillage and fluid load from the slow
    model's formulas; predictive wave solver -> surface card (harmonic polished-rod
    motion, :data:`CARD_SAMPLES` per stroke); noise of ``noise`` x :data:`LOAD_NOISE` N
    and ``noise`` x :data:`POSITION_NOISE` m on the channels; :func:`diagnose_card`
    (Everitt & Jennings) -> pump card -> fillage and ``card_confidence`` (0..1, from the
    noisy card's SNR). Loads are the extremes of the noisy surface card, power its area
    x N / 60 / efficiency, rod loading the Goodman loading of those loads, fluid level the
    true level plus echometer noise. The card's ``time`` is 0 (the stroke's start is the
    caller's: engine.simulation stamps it).
    """
    if not noise >= 0:
        raise ValueError(f"noise multiplier must be >= 0, got {noise}")
    rods = _rods(rod_sections)
    states, inputs, disturbances, parameters, outputs = _nominal_signals(rods, grade)
    x, u, d, p = (_named(values, signals) for values, signals in
                  ((x, states), (u, inputs), (d, disturbances), (p, parameters)))
    well, stroke = _well_stroke(x, u, d, p, rods)
    period, cards = stroke.period, _wave_cards(rods, stroke)
    position = cards.surface.position + noise * POSITION_NOISE * rng.standard_normal(CARD_SAMPLES)
    dynamic = cards.surface.load + noise * LOAD_NOISE * rng.standard_normal(CARD_SAMPLES)
    static = buoyant_rod_weight(rods, p["fluid_density"])
    card = SurfaceCard(time=0.0, position=position.tolist(), load=(static + dynamic).tolist(),
                       sample_time=(period / CARD_SAMPLES * np.arange(CARD_SAMPLES)).tolist())
    diagnosed = diagnose_card("", card, p, rods)
    peak, low = static + float(dynamic.max()), static + float(dynamic.min())
    work = float(np.sum(0.5 * (dynamic + np.roll(dynamic, 1)) * (position - np.roll(position, 1))))
    std = {s.name: s.std for s in outputs}
    return {
        "fillage": diagnosed.fillage,
        "peak_load": peak,
        "min_load": low,
        "motor_power": work / period / p["unit_efficiency"],
        "fluid_level": well["fluid_level"] + noise * std["fluid_level"] * rng.standard_normal(),
        "rod_loading": float(rod_loading(peak, low, rods, p["fluid_density"],
                                         p["tensile_strength"], p["service_factor"])),
        "card_confidence": diagnosed.confidence,
    }, card


def diagnose_card(asset: str, card: SurfaceCard, p: Mapping[str, float],
                  rods: Sequence | None = None) -> CardRecord:
    """The downhole (pump) card of a measured surface card, and what it says.

    The card (engine.cards, checked by ``check_card``) is put on ``n`` instants uniform
    over its period (periodic linear interpolation; exact for uniformly sampled cards),
    the buoyant rod weight W_rf (the static load) is taken off the load, and the Everitt &
    Jennings diagnostic (:func:`plants.rod_pump_wave.diagnose_downhole_card`, with the
    asset's ``damping_factor`` nu and ``fluid_density``, SI) gives the pump card;
    :func:`analyze_pump_card` its fillage and fluid pound; :func:`card_confidence` the
    surface card's SNR confidence. ``rods``: the rod string (default
    :data:`DEFAULT_ROD_STRING`). ValueError for a card that is not checked-valid or that
    carries no fluid load.
    """
    check_card(card)
    rods = _rods(rods)
    n, period = len(card.position), card.period
    t = np.asarray(card.sample_time) - card.sample_time[0]
    uniform = period / n * np.arange(n)
    position = np.interp(uniform, t, card.position, period=period)
    load = np.interp(uniform, t, card.load, period=period)
    dynamic = load - buoyant_rod_weight(rods, p["fluid_density"])
    pump = diagnose_downhole_card(rods, position, dynamic, period, p["damping_factor"])
    analysis = analyze_pump_card(pump.position, pump.load)
    return CardRecord(
        asset=asset, time=card.time, period=period, surface_position=position.tolist(),
        surface_load=load.tolist(), downhole_position=pump.position.tolist(),
        downhole_load=pump.load.tolist(), fillage=analysis.fillage,
        fluid_pound=analysis.fluid_pound, confidence=card_confidence(position, dynamic))


class _Stroke(NamedTuple):
    """What the wave equation's cards of one stroke depend on besides the rod string
    (:func:`_wave_cards`), SI.

    Attributes:
        period: stroke period 60 / N, s.
        stroke_length: polished-rod stroke S, m.
        damping_factor: nu, 1.
        fluid_load: fluid load on the plunger F_o, N.
        fillage: the slow model's fillage, clipped to 0..1.
    """

    period: float
    stroke_length: float
    damping_factor: float
    fluid_load: float
    fillage: float


def _wave_cards(rods: RodString, stroke: _Stroke) -> PredictedCards:
    """The wave equation's surface and pump cards of ``stroke`` for harmonic polished-rod
    motion (:data:`CARD_SAMPLES` per stroke), loads dynamic (static weight excluded)."""
    surface_position = harmonic_surface_position(stroke.stroke_length, CARD_SAMPLES)
    pump = PumpBoundary(stroke.fluid_load, stroke.fillage, LOAD_TRANSFER_LENGTH)
    return predict_cards(rods, surface_position, stroke.period, pump, stroke.damping_factor)


def _well_stroke(x: Mapping, u: Mapping, d: Mapping, p: Mapping, rods: RodString
                 ) -> tuple[dict[str, float], _Stroke]:
    """The well's slow quantities (:func:`_well`) and what its stroke's cards depend on."""
    well = {k: float(v) for k, v in _well(x, u, d, p, rods).items()}
    stroke = _Stroke(period=60.0 / float(u["SPM"]), stroke_length=float(p["stroke_length"]),
                     damping_factor=float(p["damping_factor"]), fluid_load=well["fluid_load"],
                     fillage=min(1.0, max(0.0, well["fillage"])))
    return well, stroke


def kpi_units(asset: AssetConfig) -> dict[str, str]:
    """The well's KPIs (:func:`kpis`) and their SI units."""
    return {"fillage": "1", "goodman_loading": "1"}


def kpis(model: PlantModel, asset: AssetConfig, x: Mapping, u: Mapping, d: Mapping,
         p: Mapping, y: Mapping, card: CardRecord | None = None) -> dict[str, float]:
    """The well's KPIs from the card its screen shows (:func:`view`): the last measured
    ``card`` pair, or without one the card the wave equation predicts at the twin's
    estimate. ``fillage`` is that pump card's fillage; ``goodman_loading`` the largest
    taper's share of the modified Goodman range at the surface card's peak and minimum
    loads (API RP 11BR; 1 = 100 %, the diagram's edge).

    A measured card costs microseconds (its diagnosis was done as it arrived). A
    prediction (wave solve and diagnosis, milliseconds) is memoised on exactly what it
    depends on (rod string, :class:`_Stroke`, fluid density, tensile strength, service
    factor), so it is not repeated while they stand still, as in a well whose twin gets no
    measurement; an estimate that moves is a new prediction. Exact, not within a
    tolerance: the memo changes no value. Only the two KPIs are kept (a few hundred
    bytes an entry, 4096 entries: a shard's card-less wells), not the cards."""
    rods = _rods(asset.structure.get("rod_sections"))
    tensile, factor = float(p["tensile_strength"]), float(p["service_factor"])
    density = float(p["fluid_density"])
    if card is None:
        _, stroke = _well_stroke(x, u, d, p, rods)
        fillage, loading = _predicted_kpis(rods, stroke, density, tensile, factor)
    else:
        fillage, loading = _card_kpis(card, rods, density, tensile, factor)
    return {"fillage": fillage, "goodman_loading": loading}


def _card_kpis(card: CardRecord, rods: RodString, density: float, tensile: float,
               factor: float) -> tuple[float, float]:
    """``card``'s fillage and its worst taper's Goodman loading (:func:`_goodman_tapers`)."""
    tapers = _goodman_tapers(card, rods, density, tensile, factor)
    return float(card.fillage), max(t.loading for t in tapers)


@functools.lru_cache(maxsize=4096)
def _predicted_kpis(rods: RodString, stroke: _Stroke, density: float, tensile: float,
                    factor: float) -> tuple[float, float]:
    """:func:`_card_kpis` of the predicted card (:func:`_predicted_card`), memoised."""
    return _card_kpis(_predicted_card("", rods, stroke, density), rods, density, tensile,
                      factor)


def _goodman_tapers(card: CardRecord, rods: RodString, density: float, tensile: float,
                    factor: float) -> list[GoodmanTaper]:
    """Each taper's point on the modified Goodman diagram (API RP 11BR; tensile strength
    ``tensile`` Pa, service factor ``factor``) at the surface card's peak and minimum
    loads: each taper's stress is the polished-rod load less the buoyant weight (in fluid
    of ``density`` kg/m^3) of the tapers above it, over its area (Pa)."""
    peak, low = max(card.surface_load), min(card.surface_load)
    tapers, above = [], 0.0
    for number, section in enumerate(rods, start=1):
        smax, smin = (peak - above) / section.area, (low - above) / section.area
        tapers.append(GoodmanTaper(
            section=number, diameter=section.diameter, length=section.length,
            min_stress=smin, max_stress=smax,
            allowable=float(goodman_allowable_stress(tensile, smin, factor)),
            loading=float(goodman_loading(smax, smin, tensile, factor))))
        above += GRAVITY * section.area * section.length * (section.density - density)
    return tapers


def view(model: PlantModel, asset: AssetConfig, x: Mapping, u: Mapping, d: Mapping,
         p: Mapping, y: Mapping, reference: Mapping[str, float],
         measured: Mapping[str, float], card: CardRecord | None = None) -> RodPumpView:
    """The operator screen of the well (plants.views.RodPumpView): the last measured
    ``card`` pair (surface card received, pump card diagnosed from it, labelled
    "measured"), or without one the surface card the wave equation predicts at the twin's
    estimate and the pump card diagnosed from that (labelled "predicted"); their fillage,
    and each taper's point on the modified Goodman diagram at the card's peak and minimum
    loads."""
    rods = _rods(asset.structure.get("rod_sections"))
    tensile, factor = float(p["tensile_strength"]), float(p["service_factor"])
    density = float(p["fluid_density"])
    if card is None:
        card = _predicted_card(asset.id, rods, _well_stroke(x, u, d, p, rods)[1], density)
    tapers = _goodman_tapers(card, rods, density, tensile, factor)
    envelope_min = np.linspace(0.0, tensile / 2, 11)

    def closed(values: list[float]) -> list[float]:  # each card as a closed loop
        return [*values, values[0]]

    measured_card = card.source == "measured"
    return RodPumpView(
        spm=float(u["SPM"]), fillage=card.fillage, fillage_target=reference.get("fillage"),
        fluid_pound=card.fluid_pound,
        surface=Curve(x=closed(card.surface_position), y=closed(card.surface_load),
                      x_unit="m", y_unit="N"),
        downhole=Curve(x=closed(card.downhole_position), y=closed(card.downhole_load),
                       x_unit="m", y_unit="N"),
        tensile_strength=tensile, service_factor=factor, goodman=tapers,
        goodman_envelope=Curve(
            x=envelope_min.tolist(),
            y=[float(goodman_allowable_stress(tensile, s, factor)) for s in envelope_min],
            x_unit="Pa", y_unit="Pa"),
        card_confidence=measured.get("card_confidence"),
        card_source=card.source, card_time=card.time if measured_card else None)


def _predicted_card(asset: str, rods: RodString, stroke: _Stroke, density: float
                    ) -> CardRecord:
    """The card pair the wave equation predicts for ``stroke`` (:func:`_wave_cards`):
    its noiseless surface card with the static (buoyant rod) weight in fluid of
    ``density`` kg/m^3, and the pump card diagnosed from it."""
    cards, period = _wave_cards(rods, stroke), stroke.period
    static = buoyant_rod_weight(rods, density)
    pump_card = diagnose_downhole_card(rods, cards.surface.position, cards.surface.load,
                                       period, stroke.damping_factor)
    analysis = analyze_pump_card(pump_card.position, pump_card.load)
    return CardRecord(
        asset=asset, time=0.0, period=period, surface_position=cards.surface.position.tolist(),
        surface_load=(static + cards.surface.load).tolist(),
        downhole_position=pump_card.position.tolist(), downhole_load=pump_card.load.tolist(),
        fillage=analysis.fillage, fluid_pound=analysis.fluid_pound, confidence=1.0,
        source="predicted")


def _named(values, signals: list[Signal]) -> dict[str, float]:
    """Name -> value from a (partial) mapping, missing names nominal, or a vector."""
    group = SignalSet(signals)
    if isinstance(values, Mapping):
        try:
            return group.mapping(group.vector(values))
        except KeyError as error:
            raise ValueError(error.args[0]) from None
    return group.mapping(values)
