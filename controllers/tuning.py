"""Runtime controller tuning: merge an operator's change into an asset's controller
settings and setpoint limits, and refuse it, naming the field and the bound, before
anything is rebuilt; and the tuning as an API answers it.

A change is a partial mapping, as ``PUT /assets/{id}/controller`` receives it::

    {"backend": "fast", "horizon": 20,
     "tracking": {"T_bulk": 50.0}, "move_suppression": {"m_oil": 0.2},
     "limits": {"m_oil": {"lower": 0.2, "upper": 8.0, "max_rate": 0.01}}}

Every key is optional. ``tracking``, ``move_suppression`` and ``limits`` merge by
signal name (and ``limits`` by field) over the current values; any other
:class:`engine.config.ControllerSettings` field (a backend's own options) replaces
its value. In ``limits`` a ``null`` lower or upper means the signal's engineering bound
and a ``null`` max_rate means no rate limit; in ``output_limits`` a ``null`` lower or
upper means none. What :func:`describe` answers may be sent back as a change: its
read-only parts (``backends``; a limit's ``unit``, ``engineering_lower`` and
``engineering_upper``) are accepted when they are the current values, refused otherwise.

Rules (a ValueError names the first one broken): the settings rules of
:func:`controllers.backends.check_settings` (backend, horizon, weights, a backend's own
options), and
    limits           per writable signal (an input, or a disturbance the site lets an
                     operator write): engineering lower <= lower <= upper <= engineering
                     upper (the PlantModel's signal bounds, its units);
                     max_rate > 0 (units per second)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec

from controllers.backends import CONTROLLER_BACKENDS, Backend, backends_for, check_settings
from engine.config import ControllerSettings, SetpointLimit
from engine.model import PlantModel
from engine.signals import Signal

_BY_NAME = ("tracking", "move_suppression")
_LIMIT_FIELDS = ("lower", "upper", "max_rate")
_READ_ONLY_LIMIT_FIELDS = ("unit", "engineering_lower", "engineering_upper")


def retune(
    model: PlantModel, settings: ControllerSettings, limits: Mapping[str, SetpointLimit],
    change: Mapping[str, Any], backends: Mapping[str, Backend] = CONTROLLER_BACKENDS,
) -> tuple[ControllerSettings, dict[str, SetpointLimit]]:
    """The settings and limits after ``change``; ValueError naming the field and the
    bound if the result breaks a rule of the module docstring; ``backends`` are those
    that may be chosen. Inputs are left unchanged."""
    if not isinstance(change, Mapping):
        raise ValueError(f"controller tuning must be an object, got {type(change).__name__}")
    current = describe(model, settings, limits, backends)
    if "backends" in change and change["backends"] != current["backends"]:
        raise ValueError(f"backends: read-only, is {current['backends']}; choose one with "
                         "'backend'")
    merged = msgspec.to_builtins(settings)
    for field, value in change.items():
        if field in ("limits", "backends"):
            continue
        if field in _BY_NAME and isinstance(value, Mapping):
            merged[field] = {**merged[field], **value}
        elif field == "output_limits" and isinstance(value, Mapping):
            merged[field] = {name: _unbounded(bounds) for name, bounds in value.items()}
        else:
            merged[field] = value
    try:
        new_settings = msgspec.convert(merged, ControllerSettings)
    except msgspec.ValidationError as error:
        raise ValueError(_validation_message(str(error))) from None
    new_limits = merge_limits(model, limits, change.get("limits", {}), current["limits"])
    check_settings(model, new_settings, new_limits, backends)
    return new_settings, new_limits


def merge_limits(
    model: PlantModel, limits: Mapping[str, SetpointLimit], change: Any,
    shown: Mapping[str, Mapping[str, Any]],
) -> dict[str, SetpointLimit]:
    """``limits`` with ``change`` ({signal: {lower?, upper?, max_rate?}}) merged in, every
    limit checked against its signal's engineering bounds. The writable signals are the
    model's inputs and the disturbances ``limits`` already has; ``shown`` is what
    :func:`describe` answers for them (a change may repeat its read-only fields)."""
    if not isinstance(change, Mapping):
        raise ValueError("limits: must be an object {signal name: {lower, upper, max_rate}}")
    merged = {name: limits.get(name, SetpointLimit(lower=s.lower, upper=s.upper))
              for name, s in zip(model.inputs.names, model.inputs, strict=True)}
    merged.update({name: limit for name, limit in limits.items() if name in model.disturbances})
    for name, fields in change.items():
        if name not in merged:
            raise ValueError(f"limits.{name}: unknown input or written disturbance; known: "
                             f"{', '.join(merged)}")
        if not isinstance(fields, Mapping):
            raise ValueError(f"limits.{name}: must be an object with lower, upper, max_rate")
        unknown = sorted(set(fields) - {*_LIMIT_FIELDS, *_READ_ONLY_LIMIT_FIELDS})
        if unknown:
            raise ValueError(f"limits.{name}: unknown field(s) {unknown}; known: "
                             f"{', '.join(_LIMIT_FIELDS)}")
        for field in _READ_ONLY_LIMIT_FIELDS:
            if field in fields and fields[field] != shown[name][field]:
                raise ValueError(f"limits.{name}.{field}: read-only, is {shown[name][field]!r}")
        signal = _writable(model, name)
        current = msgspec.structs.asdict(merged[name])
        unset = {"lower": signal.lower, "upper": signal.upper, "max_rate": math.inf}
        for field in _LIMIT_FIELDS:
            if field in fields:
                value = fields[field]
                current[field] = unset[field] if value is None else _number(
                    f"limits.{name}.{field}", value)
        merged[name] = check_limit(signal, SetpointLimit(**current))
    return merged


def check_limit(signal: Signal, limit: SetpointLimit) -> SetpointLimit:
    """``limit`` if it lies inside ``signal``'s engineering bounds, else ValueError."""
    name, unit = signal.name, signal.unit
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
    backends: Mapping[str, Backend] = CONTROLLER_BACKENDS,
) -> dict[str, Any]:
    """The tuning as JSON-ready data: every settings field, the soft output limits
    (``null`` for a missing bound), the limits of every writable signal with its
    engineering bounds and unit (``null`` for an infinite bound), and the backends of
    ``backends`` that fit the model's kind."""
    tuning = msgspec.to_builtins(settings)
    tuning["output_limits"] = {
        name: {**bounds, "lower": _finite(bounds["lower"]), "upper": _finite(bounds["upper"])}
        for name, bounds in tuning["output_limits"].items()}
    tuning["limits"] = {
        name: {"lower": _finite(limit.lower), "upper": _finite(limit.upper),
               "max_rate": _finite(limit.max_rate), "unit": signal.unit,
               "engineering_lower": _finite(signal.lower),
               "engineering_upper": _finite(signal.upper)}
        for name, limit in limits.items() for signal in [_writable(model, name)]}
    tuning["backends"] = backends_for(model.kind, backends)
    return tuning


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Human-readable list of what differs between two ``describe`` results."""
    return [f"{key} {before.get(key)!r} -> {after[key]!r}"
            for key in after if key != "backends" and before.get(key) != after[key]]


def _writable(model: PlantModel, name: str) -> Signal:
    """The input, or else the disturbance, ``name``."""
    return model.inputs[name] if name in model.inputs else model.disturbances[name]


def _unbounded(bounds: Any) -> Any:
    """An output limit as sent, a ``null`` lower or upper bound made infinite."""
    if not isinstance(bounds, Mapping):
        return bounds
    missing = {"lower": -math.inf, "upper": math.inf}
    return {field: missing[field] if value is None and field in missing else value
            for field, value in bounds.items()}


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
