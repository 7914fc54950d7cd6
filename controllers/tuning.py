"""Runtime controller tuning: merge an operator's change into an asset's controller
settings and setpoint limits, and refuse it, naming the field and the bound, before
anything is rebuilt.

A change is a partial mapping, as ``PUT /assets/{id}/controller`` receives it::

    {"backend": "do-mpc", "horizon": 20,
     "tracking": {"T_bulk": 50.0}, "move_suppression": {"m_oil": 0.2},
     "limits": {"m_oil": {"lower": 0.2, "upper": 8.0, "max_rate": 0.01}}}

Every key is optional. ``tracking``, ``move_suppression`` and ``limits`` merge by
signal name (and ``limits`` by field) over the current values; any other
:class:`engine.config.ControllerSettings` field (a backend's own options) replaces
its value. In ``limits`` a ``null`` lower or upper means the input's engineering bound
and a ``null`` max_rate means no rate limit.

Rules (a ValueError names the first one broken):
    backend          one of ``controllers.CONTROLLER_BACKENDS``
    horizon          1 <= horizon <= MAX_HORIZON controller steps
    tracking         per output name, finite and >= 0 (dimensionless)
    move_suppression per input name, finite and >= 0 (dimensionless)
    limits           per input name: engineering lower <= lower <= upper <= engineering
                     upper (the PlantModel's signal bounds, input units);
                     max_rate > 0 (input units per second)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec

from engine.config import ControllerSettings, SetpointLimit
from engine.model import PlantModel
from engine.signals import SignalSet

MAX_HORIZON = 500
"""Longest horizon accepted at run time, controller steps: beyond it a solve no longer
fits a control period on any seed plant."""

_BY_NAME = {"tracking": "outputs", "move_suppression": "inputs"}
_LIMIT_FIELDS = ("lower", "upper", "max_rate")


def retune(
    model: PlantModel, settings: ControllerSettings, limits: Mapping[str, SetpointLimit],
    change: Mapping[str, Any], backends: tuple[str, ...],
) -> tuple[ControllerSettings, dict[str, SetpointLimit]]:
    """The settings and limits after ``change``; ValueError naming the field and the
    bound if the result breaks a rule of the module docstring. Inputs are left unchanged."""
    if not isinstance(change, Mapping):
        raise ValueError(f"controller tuning must be an object, got {type(change).__name__}")
    limit_change = change.get("limits", {})
    merged = msgspec.structs.asdict(settings)
    for field, value in change.items():
        if field == "limits":
            continue
        if field in _BY_NAME and isinstance(value, Mapping):
            merged[field] = {**merged[field], **value}
        else:
            merged[field] = value
    try:
        new_settings = msgspec.convert(merged, ControllerSettings)
    except msgspec.ValidationError as error:
        raise ValueError(_validation_message(str(error))) from None
    check_settings(model, new_settings, backends)
    return new_settings, merge_limits(model.inputs, limits, limit_change)


def check_settings(model: PlantModel, settings: ControllerSettings,
                   backends: tuple[str, ...]) -> None:
    """Raise ValueError naming the field and the bound if ``settings`` breaks a rule."""
    if settings.backend not in backends:
        raise ValueError(f"backend: unknown backend {settings.backend!r}; known backends: "
                         f"{', '.join(backends)}")
    if not 1 <= settings.horizon <= MAX_HORIZON:
        raise ValueError(f"horizon: {settings.horizon} is outside [1, {MAX_HORIZON}] "
                         "controller steps")
    for field, group in _BY_NAME.items():
        signals: SignalSet = getattr(model, group)
        for name, weight in getattr(settings, field).items():
            if name not in signals:
                raise ValueError(f"{field}.{name}: unknown {group[:-1]}; known: "
                                 f"{', '.join(signals.names)}")
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"{field}.{name}: weight {weight:g} must be finite and >= 0")


def merge_limits(
    inputs: SignalSet, limits: Mapping[str, SetpointLimit], change: Any,
) -> dict[str, SetpointLimit]:
    """``limits`` with ``change`` ({input: {lower?, upper?, max_rate?}}) merged in, every
    limit checked against its input's engineering bounds."""
    if not isinstance(change, Mapping):
        raise ValueError("limits: must be an object {input name: {lower, upper, max_rate}}")
    merged = {name: limits.get(name, SetpointLimit(lower=s.lower, upper=s.upper))
              for name, s in zip(inputs.names, inputs)}
    for name, fields in change.items():
        if name not in inputs:
            raise ValueError(f"limits.{name}: unknown input; known: {', '.join(inputs.names)}")
        if not isinstance(fields, Mapping):
            raise ValueError(f"limits.{name}: must be an object with lower, upper, max_rate")
        unknown = sorted(set(fields) - set(_LIMIT_FIELDS))
        if unknown:
            raise ValueError(f"limits.{name}: unknown field(s) {unknown}; known: "
                             f"{', '.join(_LIMIT_FIELDS)}")
        signal = inputs[name]
        current = msgspec.structs.asdict(merged[name])
        unset = {"lower": signal.lower, "upper": signal.upper, "max_rate": math.inf}
        for field, value in fields.items():
            current[field] = unset[field] if value is None else _number(f"limits.{name}.{field}",
                                                                        value)
        merged[name] = check_limit(inputs, name, SetpointLimit(**current))
    return merged


def check_limit(inputs: SignalSet, name: str, limit: SetpointLimit) -> SetpointLimit:
    """``limit`` if it lies inside input ``name``'s engineering bounds, else ValueError."""
    signal, unit = inputs[name], inputs[name].unit
    if limit.lower < signal.lower:
        raise ValueError(f"limits.{name}.lower: {limit.lower:g} {unit} is below the engineering "
                         f"lower bound {signal.lower:g} {unit}")
    if limit.upper > signal.upper:
        raise ValueError(f"limits.{name}.upper: {limit.upper:g} {unit} is above the engineering "
                         f"upper bound {signal.upper:g} {unit}")
    if not limit.lower <= limit.upper:
        raise ValueError(f"limits.{name}: lower {limit.lower:g} {unit} is above upper "
                         f"{limit.upper:g} {unit}")
    if not limit.max_rate > 0:
        raise ValueError(f"limits.{name}.max_rate: {limit.max_rate:g} {unit}/s must be > 0")
    return limit


def describe(
    model: PlantModel, settings: ControllerSettings, limits: Mapping[str, SetpointLimit],
    backends: tuple[str, ...],
) -> dict[str, Any]:
    """The tuning as JSON-ready data: every settings field (weights filled in for every
    signal with the defaults of ``engine.config.ControllerSettings``), the limits with
    their engineering bounds and units (``null`` for an infinite bound), and the
    backends that may be chosen."""
    tuning = msgspec.structs.asdict(settings)
    tuning["limits"] = {
        name: {"lower": _finite(limit.lower), "upper": _finite(limit.upper),
               "max_rate": _finite(limit.max_rate), "unit": model.inputs[name].unit,
               "engineering_lower": _finite(model.inputs[name].lower),
               "engineering_upper": _finite(model.inputs[name].upper)}
        for name, limit in limits.items()}
    tuning["backends"] = list(backends)
    return tuning


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Human-readable list of what differs between two ``describe`` results."""
    return [f"{key} {before.get(key)!r} -> {after[key]!r}"
            for key in after if key != "backends" and before.get(key) != after[key]]


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field}: {value!r} is not a number")
    if not math.isfinite(value):
        raise ValueError(f"{field}: {value} is not a finite number")
    return float(value)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _validation_message(message: str) -> str:
    """msgspec says 'Expected `int`, got `str` - at `$.horizon`': put the field first."""
    problem, _, where = message.partition(" - at `$.")
    return f"{where.rstrip('`')}: {problem}" if where else message
