"""Forecasts: what the controller sees of the future over its horizon (issue 14 item 1).

A forecast gives, at the controller's step times t_k = t + k dt (k = 0 .. N-1, dt the
model's step, N the horizon), trajectories of

    disturbances  {name: [d(t_0), ..., d(t_{N-1})]}   disturbance units
    reference     {name: [r(t_0), ..., r(t_{N-1})]}   output units; or input units for
                                                     an input's target (NaN: none)
    prices        {name: [pi(t_0), ..., pi(t_{N-1})]} economic price profile (>= 0)

which ControlLoop hands to the controller (controllers.mpc_fast, controllers.mpc_dompc).
A value a forecast does not cover at t_k is NaN here; the loop holds the current value
there (its disturbance, its reference), as it does for every signal without a forecast,
except for an input's target: none applies at that step (the controller tracks it only
where it has a value; ``fast`` backend only: the loop hands do-mpc no input targets, and
a site file's are refused for it).

Every series is piecewise constant: value k holds over [start + k step, start + (k+1)
step). A series is either held (before its start its first value, after its end its
last), periodic (a weekly tariff repeats), or bounded (an approved plan covers its hours
and nothing else). A forecast is built from the site file (``site_forecast``):

    tariff (TariffSettings)    the ``electricity_price`` disturbance (currency/kWh), if
                               the model has one, and the prices of
                               ``forecast.tariff_prices``; a weekly schedule repeats
                               by hour of the week (UTC, twin time = UNIX time), an
                               hourly series starts at the hour the loop starts
    nomination                 the ``delivery_flow`` reference (m^3/s): a daily volume
                               V (m^3) as V / 86400 s over each UTC day from the day the
                               loop starts, an hourly flow hour by hour
    forecast (ForecastSettings) any disturbance, reference or price, inline or a file

and from an approved forward plan (``plan_forecast``): its hourly flow as the
``delivery_flow`` reference, its tariff as the ``electricity_price``, and each skid's
injection and each pump's speed as the targets of the inputs ``dra_injection_<i>`` (L/h)
and ``pump_speed_<i>`` (1) over the plan's hours, laid over the site's forecast
(``Forecast.over``); after its last hour no input target applies.

Bad input raises ValueError naming the signal and the bound: an unknown signal, a
non-finite value, a value outside the signal's bounds, a negative price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import msgspec
import numpy as np

from engine.config import AssetConfig, ForecastSettings, TariffSettings, read_hourly_series
from engine.model import PlantModel
from engine.signals import Signal, SignalSet

HOUR_S = 3600.0
DAY_S = 86400.0
WEEK_S = 7 * DAY_S
MONDAY_OF_EPOCH_WEEK_S = -3 * DAY_S
"""UNIX time 0 is a Thursday 00:00 UTC: that week's Monday 00:00 is three days before."""
PRICE_DISTURBANCE = "electricity_price"
"""The disturbance a tariff forecasts (currency/kWh), where the model has it."""
NOMINATED_OUTPUT = "delivery_flow"
"""The output a nomination forecasts the reference of (m^3/s)."""
PLAN_INPUT_TARGETS = ("dra_injection", "pump_speed")
"""A plan hour's per-skid/station lists that become the targets of the inputs
``<field>_<i>`` (i = 1 .. n)."""
PLAN_BOUND_TOLERANCE = 1e-6
"""Fraction of an input's span by which a plan's value may overstep the input's bound
(the planner's interior-point solver stops within its tolerance, e.g. -7e-9 L/h of
injection): such a value is taken at the bound; a larger overstep is refused."""

Group = Literal["disturbances", "reference", "prices"]


class Trajectories(msgspec.Struct, frozen=True):
    """Forecast values at the requested times, per group and signal (NaN: not covered)."""

    disturbances: dict[str, list[float]] = {}
    reference: dict[str, list[float]] = {}
    prices: dict[str, list[float]] = {}


class Series(msgspec.Struct, frozen=True):
    """One signal's piecewise-constant series: ``values[k]`` over [start + k step_s,
    start + (k + 1) step_s), twin seconds. ``extent``: ``held`` (first value before
    start, last after the end), ``periodic`` (repeats every len(values) steps) or
    ``bounded`` (NaN outside)."""

    group: Group
    name: str
    values: list[float]
    start: float
    step_s: float
    extent: Literal["held", "periodic", "bounded"] = "held"

    def at(self, times: np.ndarray) -> np.ndarray:
        """The series at twin ``times`` (s)."""
        values = np.asarray(self.values, float)
        k = np.floor((np.asarray(times, float) - self.start) / self.step_s).astype(int)
        if self.extent == "periodic":
            return values[k % values.size]
        at = values[np.clip(k, 0, values.size - 1)]
        if self.extent == "bounded":
            at = np.where((k >= 0) & (k < values.size), at, math.nan)
        return at


class Forecast:
    """A set of series, one per (group, signal); ``label`` says where it comes from
    (``site``, ``plan v3``) for the status, ``until`` the twin time (s) it ends (a
    plan's last hour; inf: never)."""

    def __init__(self, series: Sequence[Series], label: str = "site",
                 until: float = math.inf) -> None:
        self.series = {(s.group, s.name): s for s in series}
        self.label = label
        self.until = until
        self._under: Forecast | None = None

    def over(self, base: Forecast | None) -> Forecast:
        """This forecast where it covers, ``base`` elsewhere (an approved plan over the
        site's tariff and nomination)."""
        layered = Forecast(list(self.series.values()), self.label, self.until)
        layered._under = base
        return layered

    def driving(self, t: float) -> str | None:
        """The label of the layer that drives the controller at twin time ``t`` (the
        top one until it ends, then the one below; None when none is left)."""
        if t < self.until:
            return self.label
        return None if self._under is None else self._under.driving(t)

    def trajectories(self, times: np.ndarray) -> Trajectories:
        """Every series at ``times`` (twin s), NaN where no layer covers."""
        groups: dict[str, dict[str, list[float]]] = {
            "disturbances": {}, "reference": {}, "prices": {}}
        below = None if self._under is None else self._under.trajectories(times)
        for (group, name), series in self.series.items():
            values = series.at(times)
            if below is not None and name in getattr(below, group):
                values = np.where(np.isnan(values), getattr(below, group)[name], values)
            groups[group][name] = values.tolist()
        if below is not None:
            for under in groups:
                for name, covered in getattr(below, under).items():
                    groups[under].setdefault(name, covered)
        return Trajectories(**groups)


def site_forecast(asset: AssetConfig, model: PlantModel, t0: float) -> Forecast | None:
    """The forecast the asset's site file gives (see the module docstring) for a loop
    starting at twin time ``t0`` (s); None if it gives none."""
    series: list[Series] = []
    settings = asset.forecast or ForecastSettings()
    if asset.tariff is not None:
        if PRICE_DISTURBANCE in model.disturbances:
            series.append(_tariff_series("disturbances", PRICE_DISTURBANCE, asset.tariff, t0))
        for name in settings.tariff_prices:
            series.append(_tariff_series("prices", name, asset.tariff, t0))
    elif settings.tariff_prices:
        raise ValueError(f"forecast.tariff_prices {settings.tariff_prices}: asset "
                         f"{asset.id!r} has no tariff")
    nomination = asset.nomination
    if nomination is not None and NOMINATED_OUTPUT in model.outputs:
        if nomination.daily_volume:
            series.append(Series("reference", NOMINATED_OUTPUT,
                                 [v / DAY_S for v in nomination.daily_volume],
                                 math.floor(t0 / DAY_S) * DAY_S, DAY_S))
        else:
            series.append(Series("reference", NOMINATED_OUTPUT, list(nomination.hourly_flow),
                                 math.floor(t0 / HOUR_S) * HOUR_S, HOUR_S))
    start = (math.floor(t0 / settings.step_s) * settings.step_s if settings.start is None
             else settings.start)
    for group in ("disturbances", "reference", "prices"):
        for name, values in getattr(settings, group).items():
            if isinstance(values, str):
                values = read_hourly_series(values, name)
            series.append(Series(group, name, list(values), start, settings.step_s))
    if not series:
        return None
    controller = asset.resolved_controller()
    for one in series:
        check_series(model, controller.economic, one)
    priced = sorted(one.name for one in series if one.group == "prices")
    if priced and controller.backend != "fast":
        raise ValueError(f"forecast prices of {priced}: the {controller.backend} backend has "
                         "no economic cost; use the fast backend")
    targets = sorted(one.name for one in series
                     if one.group == "reference" and one.name in model.inputs)
    if targets and controller.backend != "fast":
        raise ValueError(f"forecast reference of inputs {targets}: the {controller.backend} "
                         "backend tracks outputs only; use the fast backend")
    return Forecast(series, "site")


def plan_forecast(model: PlantModel, entry: Mapping[str, Any]) -> Forecast:
    """An approved plan (engine.plan_store entry) as a forecast over its hours: each
    hour's ``flow`` as the ``delivery_flow`` reference (m^3/s), its
    ``electricity_price`` as the disturbance (currency/kWh) and its ``dra_injection`` and
    ``pump_speed`` of skid/station i as the targets of the inputs ``dra_injection_<i>``
    (L/h) and ``pump_speed_<i>`` (1), labelled ``plan v<n>``. ValueError for a plan whose
    skids or stations are not the model's."""
    plan = entry["plan"]
    hours = plan["hours"]
    if not hours:
        raise ValueError(f"plan version {entry['version']}: no hours to follow")
    start = float(plan["start"])
    series = [Series("reference", NOMINATED_OUTPUT, [float(h["flow"]) for h in hours],
                     start, HOUR_S, "bounded")]
    if PRICE_DISTURBANCE in model.disturbances:
        series.append(Series("disturbances", PRICE_DISTURBANCE,
                             [float(h["electricity_price"]) for h in hours], start, HOUR_S,
                             "bounded"))
    for one in series:
        check_series(model, {}, one)
    targets = []
    for field in PLAN_INPUT_TARGETS:
        names = [n for n in model.inputs.names if n.startswith(f"{field}_")]
        for hour in hours:
            if len(hour[field]) != len(names):
                raise ValueError(f"plan version {entry['version']}: hour {hour.get('hour')} "
                                 f"has {len(hour[field])} {field} values, the model "
                                 f"{len(names)} ({', '.join(names)})")
        for i in range(1, len(names) + 1):
            signal = model.inputs[f"{field}_{i}"]
            targets.append(Series("reference", signal.name, [
                _snapped(signal, float(h[field][i - 1])) for h in hours], start, HOUR_S,
                "bounded"))
    for one in targets:
        check_series(model, {}, one)
    return Forecast(series + targets, f"plan v{entry['version']}", start + HOUR_S * len(hours))


def check_series(model: PlantModel, economic: Mapping[str, float], series: Series) -> None:
    """ValueError naming the signal and the bound for an unknown signal, a non-finite
    value or one outside the signal's bounds (prices: below 0)."""
    where = f"forecast {series.group}.{series.name}"
    signals: SignalSet | None = {"disturbances": model.disturbances,
                                 "reference": model.outputs}.get(series.group)
    if series.group == "reference" and series.name in model.inputs:
        signals = model.inputs  # an input's target
    if signals is None:
        if series.name not in economic:
            raise ValueError(f"{where}: not an economic signal of the controller; economic "
                             f"signals: {', '.join(economic) or 'none'}")
        lower, upper, unit = 0.0, math.inf, ""
    elif series.name not in signals:
        raise ValueError(f"{where}: unknown signal; known: {', '.join(signals.names)}")
    else:
        signal = signals[series.name]
        lower, upper, unit = signal.lower, signal.upper, f" {signal.unit}"
    if not series.values:
        raise ValueError(f"{where}: no values")
    for k, value in enumerate(series.values):
        if not (math.isfinite(value) and lower <= value <= upper):
            raise ValueError(f"{where}[{k}] = {value}{unit} is outside [{lower:g}, "
                             f"{upper:g}]{unit}")


def _snapped(signal: Signal, value: float) -> float:
    """``value`` at the signal's nearest bound if it oversteps it by at most
    PLAN_BOUND_TOLERANCE of the span, else ``value`` (check_series judges it)."""
    slack = PLAN_BOUND_TOLERANCE * (signal.upper - signal.lower)
    if signal.lower - slack <= value <= signal.upper + slack:
        return min(max(value, signal.lower), signal.upper)
    return value


def _tariff_series(group: Group, name: str, tariff: TariffSettings, t0: float) -> Series:
    """The tariff's price per kWh: a weekly schedule repeating by hour of the week, or
    an hourly series from the hour of ``t0``, its last price held."""
    if tariff.hourly:
        return Series(group, name, list(tariff.hourly), math.floor(t0 / HOUR_S) * HOUR_S,
                      HOUR_S)
    return Series(group, name, tariff.prices(168), MONDAY_OF_EPOCH_WEEK_S, HOUR_S, "periodic")
