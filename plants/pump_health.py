"""Health index and remaining useful life of a pipeline centrifugal pump (PHYSICS.md section 5).

Four degradation signals, each held against its HealthLimits limit (the limits of
plants.centrifugal_pump.health_report and of the kind's default alarms):

    signal             unit   degrades   limit y_f
    head_factor        1      falling    1 - head_loss        (0.95)
    efficiency_factor  1      falling    1 - efficiency_loss  (0.95)
    oil_rise           K      rising     oil_rise             (30 K, API 612/619)
    vibration          m/s    rising     vibration            (3.0 mm/s RMS, API 610)

head_factor and efficiency_factor are the estimator's estimates (with its stds);
oil_rise is T_bearing - T_ambient and vibration the measured RMS velocity (with the
sensor's std). Each signal's sub-index is the fraction of its allowance, from the new
pump's value y_new to the limit, still unused at the newest sample time:

    h_i = clip((y_f - y) / (y_f - y_new), 0, 1),     std(h_i) = sigma_y / |y_f - y_new|

where y is the trend's fitted level at the newest sample, with its std sigma_y
(engine.remaining_life: the window's robust line, so one noisy sample does not move it).

y_new is 1 for the factors and, for oil rise and vibration, the new pump's value at its
design point (new_pump_values). The health index is the worst sub-index,

    H = min_i h_i

because each limit is an alarm limit on its own: a pump whose bearing oil is at 30 K needs
attention however good its head, so H is 0 exactly when some signal reaches its alarm
limit and 1 for a new pump. A weighted geometric mean would reach 0 there too, but short of
it three good signals would mask a fourth close to its limit, and its weights would be
chosen by no standard.

The remaining useful life is each signal's trend extrapolated to its limit
(engine.remaining_life: Lu & Meeker's linear degradation path, a robust weighted fit over
a sliding window, 10th-90th percentile band). The pump's life is that of the signal that
reaches its limit first (the shortest median); that signal is the limiting signal. With no
significant trend anywhere the life is unknown and the limiting signal is the one with the
lowest sub-index.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

from engine.model import PlantModel
from engine.remaining_life import MIN_SAMPLES, History, Trend, remaining_life
from engine.status import HealthStatus, SignalHealth
from plants.centrifugal_pump import HealthLimits

DEFAULT_WINDOW_S = 7 * 86400.0
"""Default fit window: a week of history, long against the filter's hour-scale wander and
short against wear that builds over weeks to months."""
TRACKED_SAMPLES = 256
"""Most samples a PumpHealthTracker keeps per signal: a fit over them takes milliseconds."""
SIGNALS = ("head_factor", "efficiency_factor", "oil_rise", "vibration")
KPI_UNITS = {"health_index": "1", "remaining_life": "s", "remaining_life_low": "s",
             "remaining_life_high": "s"}
"""The health KPIs a tracked pump records (health_kpis), with their SI units."""


class PumpHistory(msgspec.Struct, frozen=True, kw_only=True):
    """A pump's degradation signals as recorded (engine.remaining_life.History each).

    Attributes:
        head_factor: estimated k_H [1] with the estimator's std.
        efficiency_factor: estimated k_eta [1] with the estimator's std.
        oil_rise: bearing oil temperature above ambient, T_bearing - T_ambient [K].
        vibration: bearing housing RMS velocity [m/s].
    """

    head_factor: History
    efficiency_factor: History
    oil_rise: History
    vibration: History


class NewPumpValues(msgspec.Struct, frozen=True, kw_only=True):
    """The new pump's oil rise [K] and vibration [m/s], where each sub-index is 1."""

    oil_rise: float
    vibration: float


class SubIndex(msgspec.Struct, frozen=True, kw_only=True):
    """One signal's health: its newest value against its limit, and its trend.

    Attributes:
        signal, unit: the signal and its SI unit.
        value, std: the fitted level at the newest sample and its std, in the unit.
        new_value: the new pump's value y_new; limit: y_f, in the unit.
        index: h_i in [0, 1]; index_std: its std.
        trend: the fitted trend and remaining life (engine.remaining_life.Trend).
    """

    signal: str
    unit: str
    value: float
    std: float
    new_value: float
    limit: float
    index: float
    index_std: float
    trend: Trend


class PumpHealth(msgspec.Struct, frozen=True, kw_only=True):
    """A pump's health index and remaining useful life.

    Attributes:
        health_index: H = min_i h_i in [0, 1], 1 new, 0 at an alarm limit.
        limiting_signal: the signal whose limit comes first (or the worst sub-index).
        rul_median_s, rul_low_s, rul_high_s: the limiting signal's remaining life, median
            and 10th/90th percentiles, s from the newest sample; None when unknown or
            unbounded.
        slope, slope_std: the limiting signal's trend, its unit per second.
        reason: the finding in words.
        sub_indices: every signal's SubIndex, in the module's table order.
    """

    health_index: float
    limiting_signal: str
    rul_median_s: float | None
    rul_low_s: float | None
    rul_high_s: float | None
    slope: float
    slope_std: float
    reason: str
    sub_indices: tuple[SubIndex, ...]


def new_pump_values(model: PlantModel) -> NewPumpValues:
    """Oil rise and vibration of the new pump at ``model``'s design point: its nominal
    signals are the steady state there with k_H = k_eta = 1 and no vibration drift
    (plants.centrifugal_pump.build_model)."""
    states, outputs = model.states.mapping(model.states.nominal), \
        model.outputs.mapping(model.outputs.nominal)
    ambient = model.disturbances["T_ambient"].nominal
    return NewPumpValues(oil_rise=states["T_bearing"] - ambient,
                         vibration=outputs["vibration"])


def pump_health(history: PumpHistory, new_pump: NewPumpValues,
                limits: HealthLimits | None = None, *,
                window_s: float = DEFAULT_WINDOW_S) -> PumpHealth:
    """Health index and remaining life from ``history`` (module docstring) against
    ``limits`` (default HealthLimits(), the kind's alarm limits). Bad histories
    raise ValueError naming the signal and the field (engine.remaining_life.check_history);
    a new-pump value at or beyond its limit raises ValueError naming both."""
    limits = HealthLimits() if limits is None else limits
    table = (
        ("head_factor", "1", False, 1.0, 1.0 - limits.head_loss),
        ("efficiency_factor", "1", False, 1.0, 1.0 - limits.efficiency_loss),
        ("oil_rise", "K", True, new_pump.oil_rise, limits.oil_rise),
        ("vibration", "m/s", True, new_pump.vibration, limits.vibration),
    )
    subs = []
    for signal, unit, rising, new_value, limit in table:
        allowance = (limit - new_value) * (1.0 if rising else -1.0)
        if not (math.isfinite(allowance) and allowance > 0):
            raise ValueError(f"{signal}: the new pump's value {new_value:g} {unit} is not on "
                             f"the healthy side of the limit {limit:g} {unit}")
        samples: History = getattr(history, signal)
        trend = remaining_life(signal, samples, limit, rising=rising, window_s=window_s)
        unused = (limit - trend.level) * (1.0 if rising else -1.0) / allowance
        subs.append(SubIndex(signal=signal, unit=unit, value=trend.level, std=trend.level_std,
                             new_value=float(new_value), limit=float(limit),
                             index=min(max(unused, 0.0), 1.0),
                             index_std=trend.level_std / allowance,
                             trend=trend))
    worst = min(subs, key=lambda s: s.index)
    timed = [(s.trend.rul_median_s, i) for i, s in enumerate(subs)
             if s.trend.rul_median_s is not None]
    limiting = subs[min(timed)[1]] if timed else worst
    trend = limiting.trend
    if timed:
        reason = f"health {worst.index:.2f} (worst: {worst.signal}); first limit: {trend.reason}"
    else:
        reason = (f"health {worst.index:.2f} (worst: {worst.signal}); no degradation trend "
                  f"in any signal")
    return PumpHealth(health_index=worst.index, limiting_signal=limiting.signal,
                      rul_median_s=trend.rul_median_s, rul_low_s=trend.rul_low_s,
                      rul_high_s=trend.rul_high_s, slope=trend.slope,
                      slope_std=trend.slope_std, reason=reason, sub_indices=tuple(subs))


class PumpHealthTracker:
    """A running pump's degradation signals over the last ``window_s`` seconds, thinned to
    at most ``capacity`` evenly spaced samples, and its health from them.

    Each tick adds the EKF's head and efficiency factors with their stds, the measured oil
    rise T_bearing - T_ambient and vibration with their sensors' stds. A sample is kept
    when it comes ``spacing`` s or more after the last one kept (0 at first: every tick);
    when the buffer is full every other sample is dropped and the spacing doubles, so the
    samples stay evenly spaced (the fit's AR(1) correction assumes it) and cover the window
    from its first ticks on. Samples older than the window are dropped. The health is
    fitted again only when a sample is kept (``latest``): every tick while the buffer
    fills, then once per spacing. The samples live in the process: a restarted shard
    begins a new trend.
    """

    def __init__(self, model: PlantModel, limits: HealthLimits | None = None, *,
                 window_s: float = DEFAULT_WINDOW_S, capacity: int = TRACKED_SAMPLES) -> None:
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"pump health window_s must be finite and positive, got {window_s}")
        if capacity < 2 * MIN_SAMPLES:
            raise ValueError(f"pump health capacity must be at least {2 * MIN_SAMPLES} "
                             f"samples, got {capacity}")
        self.new_pump = new_pump_values(model)
        self.limits = HealthLimits() if limits is None else limits
        self.window_s, self.capacity = window_s, capacity
        self.spacing = 0.0
        self.sensor_std = {"oil_rise": model.outputs["T_bearing"].std,
                           "vibration": model.outputs["vibration"].std}
        self.samples: list[tuple[float, dict[str, tuple[float, float]]]] = []
        self.latest: PumpHealth | None = None
        """pump_health over the samples kept; None with fewer than MIN_SAMPLES."""

    def add(self, t: float, estimate: Mapping[str, float], std: Mapping[str, float],
            measured: Mapping[str, float], ambient: float) -> PumpHealth | None:
        """The tick at twin time ``t`` (s): ``estimate`` and ``std`` the EKF's states,
        ``measured`` the outputs (T_bearing K, vibration m/s), ``ambient`` T_ambient (K).
        A tick without a positive factor std or a measured T_bearing and vibration, or
        sooner than the spacing after the last sample, adds nothing. Returns ``latest``."""
        if self.samples and t < self.samples[-1][0] + max(self.spacing, 1e-9):
            return self.latest
        if not all(name in measured for name in ("T_bearing", "vibration")) or \
                not all(std.get(name, 0.0) > 0 for name in SIGNALS[:2]):
            return self.latest
        self.samples.append((t, {
            "head_factor": (estimate["head_factor"], std["head_factor"]),
            "efficiency_factor": (estimate["efficiency_factor"], std["efficiency_factor"]),
            "oil_rise": (measured["T_bearing"] - ambient, self.sensor_std["oil_rise"]),
            "vibration": (measured["vibration"], self.sensor_std["vibration"])}))
        while self.samples[0][0] < t - self.window_s:
            self.samples.pop(0)
        if len(self.samples) > self.capacity:
            self.samples = self.samples[::-1][::2][::-1]  # keep the newest, every other
            self.spacing = max(2 * self.spacing, self.samples[-1][0] - self.samples[-2][0])
        if len(self.samples) >= MIN_SAMPLES:
            times = [t for t, _ in self.samples]
            history = PumpHistory(**{name: History(
                times, [s[name][0] for _, s in self.samples],
                [s[name][1] for _, s in self.samples]) for name in SIGNALS})
            self.latest = pump_health(history, self.new_pump, self.limits,
                                      window_s=self.window_s)
        return self.latest


def health_kpis(health: PumpHealth) -> dict[str, float]:
    """The health KPIs recorded each tick (KPI_UNITS): the health index and the remaining
    life's median and 10th/90th percentiles, s (each left out when unknown)."""
    values = {"health_index": health.health_index, "remaining_life": health.rul_median_s,
              "remaining_life_low": health.rul_low_s, "remaining_life_high": health.rul_high_s}
    return {name: float(value) for name, value in values.items() if value is not None}


def health_status(health: PumpHealth) -> HealthStatus:
    """The status's health section (engine.status.HealthStatus) of ``health``."""
    return HealthStatus(
        health_index=health.health_index, limiting_signal=health.limiting_signal,
        remaining_life_s=health.rul_median_s, remaining_life_low_s=health.rul_low_s,
        remaining_life_high_s=health.rul_high_s, reason=health.reason,
        signals=[SignalHealth(signal=s.signal, unit=s.unit, value=s.value, limit=s.limit,
                              index=s.index) for s in health.sub_indices])
