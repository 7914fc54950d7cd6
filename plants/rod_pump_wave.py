"""Sucker-rod string wave equation: predictive and diagnostic solvers (PHYSICS.md section 2).

The rod string is a damped elastic bar (Gibbs):

    u_tt = a^2 u_xx - c u_t,    a = sqrt(E / rho),    c = pi a nu / (2 L)

with ``u`` the upward displacement of a rod cross-section from its static position
(rods hanging in the fluid), ``x`` the depth below the polished rod, ``nu`` the
dimensionless damping factor (0.05–0.5) and ``L`` the string length. The tension in
excess of the static (buoyant rod weight) load is ``T = -E A u_x``. A tapered string
is a list of :class:`RodSection` (top first), each with its own area, E and density;
displacement and force are continuous across a taper joint. For a tapered string ``a``
in ``c`` is the travel-time mean ``L / sum(L_s / a_s)``.

Two solvers, each as a numba kernel (plants.rod_pump_wave_numba, imported on first use)
and a plain-NumPy reference of the same algorithm
(``implementation="numba"`` or ``"numpy"``; they agree to rounding, ~1e-9 relative):

* :func:`predict_cards` (forward): the polished rod follows a prescribed periodic
  position; the plunger load follows the pump valves (:class:`PumpBoundary`): on the
  upstroke the fluid load ``F_o`` transfers to the plunger over the plunger travel
  ``transfer_length`` (fluid compressibility and tubing stretch) and stays; on the
  downstroke it stays while the plunger falls through the gas above the liquid in the
  barrel, and is released over ``transfer_length`` once the plunger meets the liquid,
  placed so that the card reads ``fillage`` back (fluid pound when ``fillage`` < 1;
  plunger reversals are detected with a hysteresis of 2 % of the stroke). The string is a
  lumped-mass chain (half a segment's mass at each node, stiffness ``E A / dx``),
  stepped with explicit central differences (stable for ``a dt / dx`` < 1) over
  several strokes until periodic; the last stroke's surface and pump cards are returned.
* :func:`diagnose_downhole_card` (Everitt & Jennings, SPE-18189-PA): surface card ->
  downhole card by finite differences marching down the string, time periodic over
  one stroke. Node 2 from Hooke's law, ``u_1 = u_0 - T_0 dx / (E A)``, then

      u_{i+1}^n = 2 u_i^n - u_{i-1}^n + (dx / (a dt))^2 [u_i^{n+1} - 2 u_i^n + u_i^{n-1}
                                               + (c dt / 2)(u_i^{n+1} - u_i^{n-1})]

  section by section for tapered strings. Stable when ``dx / (a dt)`` < 1; the card is
  first interpolated onto twice as many instants (``oversample``) so that each section
  gets a grid with ``dx / (a dt)`` near 1, where the scheme is least dispersive.
  Refinement over the paper: the tension entering each section (and the load leaving
  it) is corrected for the inertia and damping of the half cell at the node,
  ``T = F - (rho A dx / 2)(u_tt + c u_t)``, the same lumped node mass the forward
  solver uses, which makes the round trip second-order accurate.

Loads here are dynamic loads: polished-rod load minus the buoyant rod weight
(:func:`buoyant_rod_weight`) at the surface, plunger load at the pump. Positions are
upward displacements, m; loads N; SI throughout.
Simplifications: vertical well (no rod-tubing friction beyond viscous damping), tubing
elasticity only through ``transfer_length``, no plunger mass, one damping coefficient
for the whole string. The round trip needs the pump event resolved by the card: with
400 samples per stroke and a 0.2 m transfer length it recovers the pump load within
about 1 % of the fluid load; at light damping and high speed (nu 0.05, N/N_0 > 0.2)
the plunger can reverse within a stroke and the forward card need not settle to a
periodic one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

PSI = 6894.757293168
"""Pa per psi."""
STEEL_YOUNGS_MODULUS = 30.5e6 * PSI
"""Pa; 30.5e6 psi (PHYSICS.md section 2)."""
STEEL_DENSITY = 490.0 * 0.45359237 / 0.3048**3
"""kg/m^3; 490 lb/ft^3, giving a = sqrt(E/rho) ≈ 16,980 ft/s ≈ 5,176 m/s."""
GRAVITY = 9.80665
"""m/s^2."""
IMPLEMENTATIONS = ("numba", "numpy")


@dataclass(frozen=True)
class RodSection:
    """One taper of the rod string.

    Attributes:
        length: section length, m.
        diameter: rod diameter, m (7/8 in = 0.022225 m).
        youngs_modulus: E, Pa.
        density: rho, kg/m^3.
    """

    length: float
    diameter: float
    youngs_modulus: float = STEEL_YOUNGS_MODULUS
    density: float = STEEL_DENSITY

    def __post_init__(self) -> None:
        for name in ("length", "diameter", "youngs_modulus", "density"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"rod section {name} must be a positive number, got {value}")

    @property
    def area(self) -> float:
        """Cross-section area, m^2."""
        return math.pi * self.diameter**2 / 4

    @property
    def wave_speed(self) -> float:
        """a = sqrt(E / rho), m/s."""
        return wave_speed(self.youngs_modulus, self.density)

    @property
    def mass(self) -> float:
        """Mass in air, kg."""
        return self.density * self.area * self.length


RodString = tuple[RodSection, ...]


def rod_string(sections: Sequence[RodSection | Mapping[str, float]]) -> RodString:
    """A rod string (top section first) from sections or mappings with the
    :class:`RodSection` field names (as written in a site file's ``structure``)."""
    rods = tuple(s if isinstance(s, RodSection) else RodSection(**s) for s in sections)
    if not rods:
        raise ValueError("rod string must have at least one section")
    return rods


def wave_speed(youngs_modulus: float, density: float) -> float:
    """Speed of sound in the rod, a = sqrt(E / rho), m/s."""
    return math.sqrt(youngs_modulus / density)


def damping_coefficient(rods: RodString, damping_factor: float) -> float:
    """Gibbs' damping c = pi a nu / (2 L), 1/s, with a the travel-time mean wave speed."""
    if not damping_factor >= 0:
        raise ValueError(f"damping factor nu must be >= 0, got {damping_factor}")
    length = sum(s.length for s in rods)
    mean_speed = length / sum(s.length / s.wave_speed for s in rods)
    return math.pi * mean_speed * damping_factor / (2 * length)


def buoyant_rod_weight(rods: RodString, fluid_density: float) -> float:
    """W_rf = g sum(rho_s A_s L_s (1 - rho_fluid / rho_s)), N: the static polished-rod load."""
    return GRAVITY * sum(s.mass * (1 - fluid_density / s.density) for s in rods)


def harmonic_surface_position(stroke_length: float, samples: int) -> np.ndarray:
    """Polished-rod position over one stroke, simple harmonic from the bottom:
    z_k = S/2 (1 - cos(2 pi k / n)), m, k = 0..n-1 (upstroke first)."""
    if not stroke_length > 0:
        raise ValueError(f"stroke length must be positive, got {stroke_length} m")
    if samples < 8:
        raise ValueError(f"a stroke needs at least 8 samples, got {samples}")
    phase = 2 * np.pi * np.arange(samples) / samples
    return stroke_length / 2 * (1 - np.cos(phase))


@dataclass(frozen=True)
class PumpBoundary:
    """Downhole pump boundary condition of the predictive solver.

    Attributes:
        fluid_load: F_o = (p_discharge - p_intake) A_plunger, N.
        fillage: liquid fraction of the net plunger displacement (the stroke less half
            the transfer length, the part carrying the fluid load), 0..1; the plunger
            meets the liquid on the downstroke so that the load is half released
            ``fillage`` x net stroke above the bottom (PHYSICS.md's card definition).
        transfer_length: plunger travel over which the fluid load is picked up or
            released, m (fluid compressibility and tubing stretch).
    """

    fluid_load: float
    fillage: float = 1.0
    transfer_length: float = 0.1

    def __post_init__(self) -> None:
        if not self.fluid_load > 0:
            raise ValueError(f"pump fluid load must be positive, got {self.fluid_load} N")
        if not 0 <= self.fillage <= 1:
            raise ValueError(f"pump fillage must be within 0..1, got {self.fillage}")
        if not self.transfer_length > 0:
            raise ValueError(f"load transfer length must be positive, got {self.transfer_length} m")


@dataclass(frozen=True)
class Card:
    """A dynamometer card over one stroke, uniformly sampled in time.

    Attributes:
        position: upward displacement, m.
        load: load in excess of the static load, N.
        period: stroke period, s.
    """

    position: np.ndarray
    load: np.ndarray
    period: float


@dataclass(frozen=True)
class PredictedCards:
    """Surface card (dynamic polished-rod load) and pump card of the predictive solver."""

    surface: Card
    pump: Card


def predict_cards(
    rods: RodString,
    surface_position: np.ndarray,
    period: float,
    pump: PumpBoundary,
    damping_factor: float,
    *,
    segments: int = 60,
    strokes: int | None = None,
    implementation: str = "numba",
) -> PredictedCards:
    """Surface and pump cards for a polished rod moving through ``surface_position``.

    Args:
        rods: the rod string, top first.
        surface_position: polished-rod position over one stroke, m, uniformly sampled
            in time and periodic; the cards are returned at the same instants.
        period: stroke period 60 / SPM, s.
        pump: pump boundary condition.
        damping_factor: Gibbs' nu.
        segments: lumped-mass segments in the whole string (at least 2 per section).
        strokes: strokes simulated from rest, the last one returned; by default
            enough for the start-up transient to decay below 1e-3,
            exp(-c period strokes / 2) < 1e-3, and at least 4.
        implementation: "numba" or "numpy".
    """
    position = _check_samples("surface position", surface_position)
    _check_implementation(implementation)
    if not period > 0:
        raise ValueError(f"stroke period must be positive, got {period} s")
    c = damping_coefficient(rods, damping_factor)
    if strokes is None:
        strokes = max(4, math.ceil(2 * math.log(1e3) / max(c * period, 1e-9)))
    if not 2 <= strokes <= 200:
        raise ValueError(f"strokes must be within 2..200, got {strokes}; raise the damping factor")
    total = sum(s.length for s in rods)
    counts = [max(2, round(segments * s.length / total)) for s in rods]
    seg_stiffness = np.concatenate(
        [np.full(n, s.youngs_modulus * s.area * n / s.length)
         for s, n in zip(rods, counts, strict=True)])
    seg_mass = np.concatenate([np.full(n, s.mass / n) for s, n in zip(rods, counts, strict=True)])
    node_mass = np.zeros(seg_mass.size + 1)
    node_mass[:-1] += seg_mass / 2
    node_mass[1:] += seg_mass / 2
    # time step: Courant number a dt / dx <= 0.9, a whole number of steps per sample
    dt_max = 0.9 * min(s.length / n / s.wave_speed for s, n in zip(rods, counts, strict=True))
    substeps = math.ceil(period / (position.size * dt_max))
    dt = period / (position.size * substeps)
    fine_position = _periodic_resample(position, position.size * substeps)
    travel = float(np.ptp(position))
    kernel = _predict_numpy if implementation == "numpy" else _numba_kernels().predict
    top_load, pump_position, pump_load = kernel(
        fine_position, strokes, dt, seg_stiffness, node_mass, c, pump.fluid_load,
        pump.fluid_load / pump.transfer_length, pump.fillage, 0.02 * travel)
    return PredictedCards(
        surface=Card(position.copy(), top_load[::substeps].copy(), period),
        pump=Card(pump_position[::substeps].copy(), pump_load[::substeps].copy(), period),
    )


def diagnose_downhole_card(
    rods: RodString,
    surface_position: np.ndarray,
    surface_load: np.ndarray,
    period: float,
    damping_factor: float,
    *,
    segments: Sequence[int] | None = None,
    oversample: int = 2,
    implementation: str = "numba",
) -> Card:
    """Pump card from a surface card (Everitt & Jennings finite differences).

    Args:
        rods: the rod string, top first.
        surface_position: polished-rod position over one stroke, m, uniform in time.
        surface_load: polished-rod load minus the buoyant rod weight, N, same instants.
        period: stroke period, s.
        damping_factor: Gibbs' nu.
        segments: finite-difference segments per section; by default the fewest that
            keep dx / (a dt) < 1. A grid with dx / (a dt) >= 1 raises ValueError naming
            the section and the bound.
        oversample: the card is interpolated (trigonometric, periodic) onto
            ``oversample`` times as many instants, dt = period / (samples x oversample),
            and the pump card returned at the original instants. A finer dt allows more
            segments with dx / (a dt) nearer 1, where the marching scheme is least
            dispersive (exact for an undamped string at 1).
        implementation: "numba" or "numpy".
    """
    position = _check_samples("surface position", surface_position)
    load = _check_samples("surface load", surface_load)
    _check_implementation(implementation)
    if load.size != position.size:
        raise ValueError(f"surface load has {load.size} samples, position {position.size}")
    if not period > 0:
        raise ValueError(f"stroke period must be positive, got {period} s")
    if not 1 <= oversample <= 16:
        raise ValueError(f"oversample must be within 1..16, got {oversample}")
    samples = position.size
    if oversample > 1:
        position = _periodic_resample(position, samples * oversample)
        load = _periodic_resample(load, samples * oversample)
    dt = period / position.size
    if segments is None:  # the fewest with dx/(a dt) < 1
        counts = [math.floor(s.length / (s.wave_speed * dt)) + 1 for s in rods]
    else:
        counts = [int(n) for n in segments]
        if len(counts) != len(rods):
            raise ValueError(f"segments gives {len(counts)} counts for {len(rods)} rod sections")
    for index, (section, n) in enumerate(zip(rods, counts, strict=True), start=1):
        if n < 1:
            raise ValueError(f"rod section {index}: segments must be >= 1, got {n}")
        travel = section.wave_speed * dt
        ratio = section.length / n / travel
        if not ratio < 1:
            raise ValueError(
                f"rod section {index}: dx/(a dt) = {ratio:.3f} must be < 1 for a stable "
                f"diagnostic; use at least {math.floor(section.length / travel) + 1} "
                f"segments or a smaller oversample")
    section_segments = np.array(counts, dtype=np.int64)
    section_dx = np.array([s.length / n for s, n in zip(rods, counts, strict=True)])
    section_stiffness = np.array([s.youngs_modulus * s.area for s in rods])
    section_line_mass = np.array([s.density * s.area for s in rods])
    section_speed = np.array([s.wave_speed for s in rods])
    c = damping_coefficient(rods, damping_factor)
    kernel = _diagnose_numpy if implementation == "numpy" else _numba_kernels().diagnose
    pump_position, pump_load = kernel(position, load, dt, c, section_segments, section_dx,
                                      section_stiffness, section_line_mass, section_speed)
    return Card(pump_position[::oversample].copy(), pump_load[::oversample].copy(), period)


# -- helpers ---------------------------------------------------------------------------------

def _check_samples(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if array.size < 8:
        raise ValueError(f"{name} needs at least 8 samples per stroke, got {array.size}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has non-finite samples")
    return array


def _check_implementation(implementation: str) -> None:
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")


def _numba_kernels():
    """plants.rod_pump_wave_numba, imported on first use: numba (about 50 MB resident) is
    then loaded only in the processes that simulate or diagnose a rod pump, not in every
    one that imports the plant models (the HTTP replica, the OPC UA gateway, the CLI)."""
    from plants import rod_pump_wave_numba

    return rod_pump_wave_numba


def _periodic_resample(samples: np.ndarray, count: int) -> np.ndarray:
    """Trigonometric interpolation of one period of samples onto ``count`` points."""
    n = samples.size
    spectrum = np.fft.rfft(samples)
    if n % 2 == 0:
        spectrum[-1] *= 0.5  # split the Nyquist term between +/- frequencies
    padded = np.zeros(count // 2 + 1, dtype=complex)
    padded[: spectrum.size] = spectrum
    return np.fft.irfft(padded, count) * (count / n)


# -- predictive kernels ------------------------------------------------------------------------
# z: surface position per fine step (one period), k: segment stiffness, m: node mass,
# F_o: fluid load, k_p: load-transfer stiffness F_o / transfer length, f: fillage,
# eps: plunger reversal threshold. Returns surface load, pump position, pump load
# over the last stroke.

def _contact(z_bot, z_top, f, transfer):
    """Plunger position where it meets the liquid: the load is then half released
    transfer / 2 lower, at f x net stroke above the bottom, the net stroke running from
    the half-picked-up point z_bot + transfer / 2 to the top (the card definition)."""
    net_start = z_bot + transfer / 2
    return net_start + f * (z_top - net_start)


def _pump_load(load, u, u_prev, contact, F_o, k_p):
    """Valve action: pick up the fluid load moving up, release it below the liquid."""
    if u > u_prev:
        return min(F_o, load + k_p * (u - u_prev))
    if u < contact:
        return max(0.0, load - k_p * (min(u_prev, contact) - u))
    return load


def _predict_numpy(z, strokes, dt, k, m, c, F_o, k_p, f, eps):
    n_per = z.size
    N = m.size - 1
    u = np.full(N + 1, z[0])  # at rest, unstrained, before the first stroke
    u_old = u.copy()
    top = np.zeros(n_per)
    pump_u = np.zeros(n_per)
    pump_F = np.zeros(n_per)
    load, up, z_bot, z_top, z_low = 0.0, True, z[0], z[0], z[0]
    g = c * dt / 2
    first_recorded = (strokes - 1) * n_per
    for n in range(strokes * n_per):
        # plunger reversals (with hysteresis eps) and valve action at the pump
        if up:
            if u[N] > z_top:
                z_top = u[N]
            elif u[N] < z_top - eps:
                up, z_low = False, u[N]
        else:
            if u[N] < z_low:
                z_low = u[N]
            elif u[N] > z_low + eps:
                up, z_bot, z_top = True, z_low, u[N]
        load = _pump_load(load, u[N], u_old[N], _contact(z_bot, z_top, f, F_o / k_p), F_o, k_p)
        # central-difference step of the lumped-mass chain
        z_prev, z_next = z[(n - 1) % n_per], z[(n + 1) % n_per]
        tension = k * (u[:-1] - u[1:])
        force = tension.copy()
        force[:-1] -= tension[1:]
        force[-1] -= load
        u_new = np.empty(N + 1)
        u_new[1:] = (2 * u[1:] - (1 - g) * u_old[1:] + dt * dt * force / m[1:]) / (1 + g)
        u_new[0] = z_next
        if n >= first_recorded:
            j = n - first_recorded
            acceleration = (z_next - 2 * z[n % n_per] + z_prev) / (dt * dt)
            velocity = (z_next - z_prev) / (2 * dt)
            top[j] = tension[0] + m[0] * (acceleration + c * velocity)
            pump_u[j] = u[N]
            pump_F[j] = load
        u_old, u = u, u_new
    return top, pump_u, pump_F


# -- diagnostic kernels ------------------------------------------------------------------------
# u0, F0: surface position and dynamic load; per section s: n_s segments of length dx,
# stiffness EA, line mass rho A, wave speed a. Time is periodic over the samples.


def _diagnose_numpy(u0, F0, dt, c, n_s, dx, EA, rhoA, a):
    def inertia(u):
        ahead, behind = np.roll(u, -1), np.roll(u, 1)
        return (ahead - 2 * u + behind) / dt**2 + c * (ahead - behind) / (2 * dt)

    above, force = u0.copy(), F0.copy()
    for s in range(n_s.size):
        half = rhoA[s] * dx[s] / 2
        r2 = (dx[s] / (a[s] * dt)) ** 2
        g = c * dt / 2
        # node 2 from Hooke's law on the tension below the top node's half cell
        node = above - (force - half * inertia(above)) * dx[s] / EA[s]
        # march down the section
        for _ in range(1, n_s[s]):
            ahead, behind = np.roll(node, -1), np.roll(node, 1)
            below = 2 * node - above + r2 * (ahead - 2 * node + behind + g * (ahead - behind))
            above, node = node, below
        # load leaving the section: tension of the last segment minus its half cell
        force = EA[s] * (above - node) / dx[s] - half * inertia(node)
        above = node
    return above, force
