"""Plant models, one module per asset kind, and the registry that builds them by name."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import msgspec

from engine.alarm_sources import (
    AlarmSettingsError,
    alarm_signals,
    check_alarm_settings,
    merge_alarm_settings,
    standard_alarms,
)
from engine.cards import CardRecord, SurfaceCard
from engine.config import (
    STALE_AFTER_PERIODS,
    AssetConfig,
    ConfigError,
    PlantDefaults,
    SetpointLimit,
    SiteConfig,
    TripInterlock,
    safe_value_problem,
)
from engine.forecast import site_forecast
from engine.model import PlantModel
from engine.signals import SignalSet
from engine.simulation import Synthesize
from plants import (
    asphalt_tank,
    asphalt_terminal,
    centrifugal_pump,
    dra_pipeline,
    pump_health,
    rod_pump,
    smelter_cell,
)
from plants.pump_health import PumpHealthTracker
from plants.views import AssetView

_MODULES = (asphalt_tank, asphalt_terminal, centrifugal_pump, dra_pipeline, rod_pump, smelter_cell)
BUILDERS: dict[str, Callable[..., PlantModel]] = {m.KIND: m.build_model for m in _MODULES}
DEFAULTS: dict[str, PlantDefaults] = {m.KIND: m.DEFAULTS for m in _MODULES}
"""Each kind's defaults for its default structure (the seed terminal's ten tanks)."""


def defaults_of(kind: str, structure: Mapping[str, Any] | None = None) -> PlantDefaults:
    """The defaults of ``kind`` for its structural options: a kind whose defaults name
    structure-dependent signals (the terminal's per-tank references, limits, weights)
    has ``defaults(**structure)`` in its module; the others have fixed DEFAULTS.
    Unknown kinds raise ValueError; bad structure ValueError or TypeError."""
    module = next((m for m in _MODULES if m.KIND == kind), None)
    if module is None:
        raise ValueError(f"unknown asset kind {kind!r}; known kinds: {sorted(BUILDERS)}")
    of_structure = getattr(module, "defaults", None)
    if of_structure is None or not structure:
        return module.DEFAULTS
    return of_structure(**structure)


def build_model(
    kind: str,
    *,
    dt: float,
    structure: Mapping[str, Any] | None = None,
    parameters: Mapping[str, float] | None = None,
) -> PlantModel:
    """Build the model of ``kind`` with step ``dt`` s, structural options (builder
    keyword arguments) and parameter values. Unknown kinds raise ValueError."""
    try:
        builder = BUILDERS[kind]
    except KeyError:
        raise ValueError(f"unknown asset kind {kind!r}; known kinds: {sorted(BUILDERS)}") from None
    try:
        model = builder(dt=dt, **dict(structure or {}))
    except TypeError as error:
        raise ValueError(f"asset kind {kind!r}: bad structure option: {error}") from None
    return model.with_parameters(parameters or {})


def model_of(asset: AssetConfig) -> PlantModel:
    """The twin's model of a resolved asset (see :func:`resolve_site`).

    Models are frozen data; one is built per kind, period and structure in a process,
    and one per set of parameter values on it (``with_parameters``, sharing its CasADi
    functions and ``structure``), shared by every asset (and simulated plant) that has
    them: in a shard, a further asset of a known kind and structure costs its state and
    its parameter values, not a new model."""
    structure = msgspec.json.encode(asset.structure, order="sorted")
    return _shared_model(asset.kind, asset.resolved_period_s(), structure,
                         msgspec.json.encode(asset.parameters, order="sorted"))


@functools.lru_cache(maxsize=256)
def _structural_model(kind: str, dt: float, structure: bytes) -> PlantModel:
    return build_model(kind, dt=dt, structure=msgspec.json.decode(structure))


@functools.lru_cache(maxsize=4096)
def _shared_model(kind: str, dt: float, structure: bytes, parameters: bytes) -> PlantModel:
    return _structural_model(kind, dt, structure).with_parameters(msgspec.json.decode(parameters))


def view_of(asset: AssetConfig, model: PlantModel, x, u, d, p, reference: Mapping[str, float],
            measured: Mapping[str, float], card: CardRecord | None = None) -> AssetView:
    """What the asset's operator screen shows (plants.views) at states ``x``, inputs ``u``,
    disturbances ``d`` and parameters ``p`` (vectors in the model's order, SI: the twin's
    estimate), with the model's outputs there, the controller's ``reference`` and the
    latest ``measured`` outputs (what only a measurement tells: a card's confidence), and
    the last measured ``card`` pair (rod pumps; see card_diagnosis_of)."""
    module = next(m for m in _MODULES if m.KIND == asset.kind)
    named = [group.mapping(values) for group, values in (
        (model.states, x), (model.inputs, u), (model.disturbances, d), (model.parameters, p))]
    y = model.outputs.mapping(model.output(0.0, x, u, d, p))
    if card is None:
        return module.view(model, asset, *named, y, reference, measured)
    return module.view(model, asset, *named, y, reference, measured, card=card)


def card_diagnosis_of(asset: AssetConfig) -> Callable[[SurfaceCard, Mapping[str, float]],
                                                      CardRecord] | None:
    """``(surface card, parameters by name) -> card pair`` for an asset whose kind takes
    dynamometer cards (``diagnose_card(asset_id, card, p, rods)`` in its module, the rod
    string from the asset's ``structure``), else None."""
    module = next(m for m in _MODULES if m.KIND == asset.kind)
    diagnose = getattr(module, "diagnose_card", None)
    if diagnose is None:
        return None
    return functools.partial(diagnose, asset.id, rods=asset.structure.get("rod_sections"))


def kpi_units_of(asset: AssetConfig) -> dict[str, str]:
    """The KPIs an asset of ``asset.kind`` records each tick, with their SI units: its
    module's ``kpi_units`` and, for a kind that tracks its health (health_tracker_of),
    plants.pump_health.KPI_UNITS."""
    module = next(m for m in _MODULES if m.KIND == asset.kind)
    tracked = pump_health.KPI_UNITS if asset.kind == centrifugal_pump.KIND else {}
    return {**module.kpi_units(asset), **tracked}


def kpis_of(asset: AssetConfig, model: PlantModel, x, u, d, p,
            card: CardRecord | None = None) -> dict[str, float]:
    """The kind's KPIs (``kpis`` of its module) at states ``x``, inputs ``u``,
    disturbances ``d`` and parameters ``p`` (vectors in the model's order, SI: the twin's
    estimate) and, for a rod pump, from the last measured ``card`` pair when there is one
    (as view_of), by name in kpi_units_of's units; computed with the same functions as
    the kind's view, so the history and the screen agree."""
    module = next(m for m in _MODULES if m.KIND == asset.kind)
    named = [group.mapping(values) for group, values in (
        (model.states, x), (model.inputs, u), (model.disturbances, d), (model.parameters, p))]
    y = model.outputs.mapping(model.output(0.0, x, u, d, p))
    if card is None:
        return module.kpis(model, asset, *named, y)
    return module.kpis(model, asset, *named, y, card=card)


def health_tracker_of(asset: AssetConfig, model: PlantModel) -> PumpHealthTracker | None:
    """The health tracker of an asset whose kind assesses its health and remaining life
    from its degradation trends (a centrifugal pump: plants.pump_health); None for others."""
    return PumpHealthTracker(model) if asset.kind == centrifugal_pump.KIND else None


def card_points_of(asset: AssetConfig) -> int:
    """Samples per stroke of the surface card the kind's simulated controller records
    (``CARD_SAMPLES`` in its module: its PLC's card buffer holds that many points), 0 for
    a kind without cards."""
    module = next(m for m in _MODULES if m.KIND == asset.kind)
    return int(getattr(module, "CARD_SAMPLES", 0))


def synthesizer_of(asset: AssetConfig) -> Synthesize | None:
    """The plant kind's own measurement synthesis for a simulated plant, if it has one
    (``synthesize_measurement(x, u, d, p, rng, noise, **structure) -> (values, card)`` in
    its module)."""
    module = next(m for m in _MODULES if m.KIND == asset.kind)
    synthesize = getattr(module, "synthesize_measurement", None)
    if synthesize is None:
        return None
    return functools.partial(synthesize, **asset.structure)


def resolve_site(site: SiteConfig, path: str | Path = "<site>") -> SiteConfig:
    """Fill every asset's unset settings from its kind's defaults and check every signal
    name and value against its model, the interlocks' too. Raises ConfigError naming the
    file and the key."""
    resolved = msgspec.structs.replace(
        site, assets=[_resolve_asset(a, f"assets[{i}]", path) for i, a in enumerate(site.assets)]
    )
    _check_interlocks(resolved, path)
    return resolved


OUTPUT, WRITABLE = "an output", "a writable signal"


def _check_interlocks(site: SiteConfig, path: str | Path) -> None:
    """Interlocks watch measured outputs and act on writable signals (those with limits)."""
    assets = {a.id: a for a in site.assets}
    for i, lock in enumerate(site.interlocks):
        if isinstance(lock, TripInterlock):
            roles = [("when", lock.when, OUTPUT), ("hold", lock.hold, WRITABLE),
                     ("close", lock.close, WRITABLE)]
        else:
            roles = [("signals", lock.signals, WRITABLE)]
        for field, names, role in roles:
            for j, name in enumerate(names):
                asset = assets[name.partition(".")[0]]
                signal = name.partition(".")[2]
                known = model_of(asset).outputs.names if role == OUTPUT else list(asset.limits)
                if signal not in known:
                    raise ConfigError(path, f"interlocks[{i}].{field}[{j}]",
                                      f"{name!r} is not {role} of {asset.id}; "
                                      f"known: {', '.join(known)}")


def _resolve_asset(asset: AssetConfig, key: str, path: str | Path) -> AssetConfig:
    if asset.kind not in DEFAULTS:
        raise ConfigError(path, f"{key}.kind",
                          f"unknown asset kind {asset.kind!r}; known kinds: {sorted(BUILDERS)}")
    try:
        defaults = defaults_of(asset.kind, asset.structure)
    except (TypeError, ValueError) as error:
        raise ConfigError(path, f"{key}.structure", str(error)) from None
    period = asset.period_s or defaults.period_s
    try:
        model = build_model(asset.kind, dt=period, structure=asset.structure,
                            parameters=asset.parameters)
    except ValueError as error:
        raise ConfigError(path, f"{key}.parameters", str(error)) from None
    limits = {**defaults.limits, **asset.limits}
    resolved = msgspec.structs.replace(
        asset,
        period_s=period,
        max_measurement_age_s=(STALE_AFTER_PERIODS * period if asset.max_measurement_age_s is None
                               else asset.max_measurement_age_s),
        reference={**defaults.reference, **asset.reference},
        limits={**{s.name: _limit_within(s.name, limits.get(s.name), model.inputs, path, key)
                   for s in model.inputs},
                **{name: _limit_within(name, limit, model.disturbances, path, key)
                   for name, limit in asset.limits.items() if name in model.disturbances}},
        controller=asset.controller or defaults.controller,
        estimator=asset.estimator or defaults.estimator,
        alarms=merge_alarm_settings([*standard_alarms(period), *defaults.alarms], asset.alarms),
    )
    _check_alarms(resolved, model, path, key)
    for field, values, signals in (
        ("initial", resolved.initial, model.states),
        ("inputs", resolved.inputs, model.inputs),
        ("disturbances", resolved.disturbances, model.disturbances),
        ("reference", resolved.reference, model.outputs),
        ("simulation.disturbances", resolved.simulation.disturbances, model.disturbances),
        ("simulation.initial", resolved.simulation.initial, model.states),
    ):
        _check_values(values, signals, path, f"{key}.{field}")
    _check_names(asset.simulation.mismatch, model.parameters, path, f"{key}.simulation.mismatch")
    _check_names(asset.simulation.drift, model.states, path, f"{key}.simulation.drift")
    try:
        site_forecast(resolved, model, 0.0)
    except (OSError, ValueError) as error:
        raise ConfigError(path, f"{key}.forecast", str(error)) from None
    for name in asset.limits:  # inputs, and disturbances an operator sets (loading line-ups)
        if name not in model.inputs and name not in model.disturbances:
            raise ConfigError(path, f"{key}.limits.{name}", "unknown writable signal; known: "
                              f"{', '.join([*model.inputs.names, *model.disturbances.names])}")
    return resolved


def _check_alarms(asset: AssetConfig, model: PlantModel, path: str | Path, key: str) -> None:
    """Alarms watch the asset's outputs, estimates of its states and estimated parameters,
    its KPIs and the conditions of engine.alarm_sources."""
    parameters = asset.estimator.estimate_parameters if asset.estimator else {}
    estimated = [*model.states.names, *parameters]
    try:
        check_alarm_settings(asset.alarms, alarm_signals(model.outputs.names, estimated,
                                                         kpi_units_of(asset)))
    except AlarmSettingsError as error:
        raise ConfigError(path, f"{key}.alarms[{error.name!r}].{error.field}",
                          error.problem) from None


def _limit_within(name: str, limit: SetpointLimit | None, inputs: SignalSet,
                  path: str | Path, key: str) -> SetpointLimit:
    """A safety limit must lie inside the input's engineering bounds; none means those bounds."""
    signal = inputs[name]
    if limit is None:
        return SetpointLimit(lower=signal.lower, upper=signal.upper)
    if limit.lower < signal.lower or limit.upper > signal.upper:
        raise ConfigError(
            path, f"{key}.limits.{name}",
            f"[{limit.lower:g}, {limit.upper:g}] {signal.unit} is outside the engineering "
            f"bounds [{signal.lower:g}, {signal.upper:g}] {signal.unit}")
    resolved = SetpointLimit(lower=max(limit.lower, signal.lower),
                             upper=min(limit.upper, signal.upper), max_rate=limit.max_rate,
                             safe=limit.safe)
    if resolved.safe is not None and not resolved.lower <= resolved.safe <= resolved.upper:
        raise ConfigError(path, f"{key}.limits.{name}.safe", safe_value_problem(name, resolved))
    return resolved


def _check_names(values: Mapping[str, Any], signals: SignalSet, path: str | Path, key: str) -> None:
    for name in values:
        if name not in signals:
            raise ConfigError(path, f"{key}.{name}",
                              f"unknown signal; known: {', '.join(signals.names)}")


def _check_values(values: Mapping[str, float], signals: SignalSet, path: str | Path,
                  key: str) -> None:
    _check_names(values, signals, path, key)
    for name, value in values.items():
        try:
            signals[name].check(value)
        except ValueError as error:
            raise ConfigError(path, f"{key}.{name}", str(error)) from None
