"""The controller backends: one registry of what each backend is, which plant kinds it
fits and which settings it reads, and the one check of an asset's controller settings.

``build_controller``, runtime tuning (``controllers.tuning``, ``PUT
/assets/{id}/controller``), the backends an asset's tuning offers, ``twinloop tune``
and the demo's site check (:func:`check_controllers`) all read :data:`CONTROLLER_BACKENDS`.

Rules of :func:`check_settings` (a ValueError names the field and the bound):
    backend              a name of CONTROLLER_BACKENDS that fits the model's kind
    horizon              1 <= horizon <= MAX_HORIZON controller steps
    tracking             per output name, finite and >= 0 (dimensionless)
    move_suppression     per input name, finite and >= 0 (dimensionless)
    input_tracking       per input name, finite and >= 0 (dimensionless)
    economic             per input or output name, finite (dimensionless)
    output_limits        per output name: lower <= upper (output units, neither NaN),
                         0 < penalty < inf (dimensionless)
    qp_solver            one of QP_SOLVERS
    max_iterations       >= 1 SQP iterations
    tolerance            0 < tolerance < inf (spans of the signal)
    hessian              one of HESSIANS
    a backend option     (a field of BACKEND_OPTIONS) left at its default unless the
                         backend reads it: a setting the backend would ignore is refused
    limits               named by an input, or by a disturbance an operator writes (the
                         values are the site file's and the tuning's to check: they
                         bound the safety gate, not only the controller)

The site file is decoded by ``engine.config`` (types and structure only: engine/ does
not import controllers/); :func:`check_controllers` applies these rules to every asset of a
resolved site, naming the file and the key.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from controllers.mpc_sqp import HESSIANS, QP_OPTIONS
from engine.config import ConfigError, ControllerSettings, SetpointLimit, SiteConfig
from engine.loop import Controller
from engine.model import PlantModel
from plants import model_of

MAX_HORIZON = 500
"""Longest prediction horizon, controller steps: beyond it a solve no longer fits a
control period on any seed plant."""

QP_SOLVERS = tuple(QP_OPTIONS)
"""QP solvers of the "fast" backend."""

BACKEND_OPTIONS = ("economic", "input_tracking", "output_limits", "qp_solver",
                   "real_time_iteration", "max_iterations", "tolerance", "hessian", "codegen")
"""ControllerSettings fields that only some backends read; ``backend``, ``horizon``,
``tracking`` and ``move_suppression`` are read by every backend."""

_DEFAULTS = ControllerSettings()


def _do_mpc() -> type:
    from controllers.mpc_dompc import DoMpcController

    return DoMpcController


def _fast() -> type:
    from controllers.mpc_fast import FastMpcController

    return FastMpcController


def _fillage() -> type:
    from controllers.fillage import FillageController

    return FillageController


@dataclass(frozen=True)
class Backend:
    """One controller backend.

    Attributes:
        name: the value of ``ControllerSettings.backend`` that chooses it.
        load: returns its class, ``cls(model, settings, limits)`` (imported on use: the
            solvers behind some backends are slow to import).
        kinds: plant kinds it fits; None for every kind (a generic MPC of a PlantModel).
        options: the fields of BACKEND_OPTIONS it reads.
    """

    name: str
    load: Callable[[], type]
    kinds: frozenset[str] | None
    options: frozenset[str]

    def fits(self, kind: str) -> bool:
        return self.kinds is None or kind in self.kinds


CONTROLLER_BACKENDS: dict[str, Backend] = {backend.name: backend for backend in (
    Backend("do-mpc", _do_mpc, kinds=None, options=frozenset()),
    Backend("fast", _fast, kinds=None, options=frozenset(BACKEND_OPTIONS)),
    Backend("fillage-rule", _fillage, kinds=frozenset({"rod_pump"}), options=frozenset()),
)}


def backends_for(kind: str, backends: Mapping[str, Backend] = CONTROLLER_BACKENDS) -> list[str]:
    """Names of the backends that fit plant ``kind``, in registry order."""
    return [name for name, backend in backends.items() if backend.fits(kind)]


def build_controller(
    model: PlantModel, settings: ControllerSettings, limits: Mapping[str, SetpointLimit]
) -> Controller:
    """The controller of ``settings.backend`` for ``model`` with the setpoint ``limits``
    of its writable signals, after :func:`check_settings`. Limits of disturbances an
    operator writes (a terminal's loading draws) are the safety actor's, not the
    controller's, and are left out of the controller."""
    check_settings(model, settings, limits)
    inputs = {name: limit for name, limit in limits.items() if name in model.inputs}
    return CONTROLLER_BACKENDS[settings.backend].load()(model, settings, inputs)


def check_settings(model: PlantModel, settings: ControllerSettings,
                   limits: Mapping[str, SetpointLimit],
                   backends: Mapping[str, Backend] = CONTROLLER_BACKENDS) -> None:
    """Raise ValueError, naming the field and the bound, for the first rule of the module
    docstring that ``settings`` or ``limits`` break on ``model``; ``backends`` are those
    that may be chosen."""
    backend = backends.get(settings.backend)
    if backend is None:
        raise ValueError(f"backend: unknown backend {settings.backend!r}; known backends: "
                         f"{', '.join(backends)}")
    if not backend.fits(model.kind):
        raise ValueError(f"backend: {backend.name!r} does not fit plant kind {model.kind!r} "
                         f"(it fits {', '.join(sorted(backend.kinds or ()))}); backends for "
                         f"{model.kind}: {', '.join(backends_for(model.kind, backends))}")
    if not 1 <= settings.horizon <= MAX_HORIZON:
        raise ValueError(f"horizon: {settings.horizon} is outside [1, {MAX_HORIZON}] "
                         "controller steps")
    for field, signals, what in (("tracking", model.outputs.names, "output"),
                                 ("move_suppression", model.inputs.names, "input"),
                                 ("input_tracking", model.inputs.names, "input")):
        for name, weight in getattr(settings, field).items():
            _require_known(f"{field}.{name}", name, signals, what)
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"{field}.{name}: weight {weight:g} must be finite and >= 0")
    for name, weight in settings.economic.items():
        _require_known(f"economic.{name}", name, (*model.inputs.names, *model.outputs.names),
                       "input or output")
        if not math.isfinite(weight):
            raise ValueError(f"economic.{name}: weight {weight:g} must be finite")
    for name, limit in settings.output_limits.items():
        _require_known(f"output_limits.{name}", name, model.outputs.names, "output")
        if not limit.lower <= limit.upper:
            raise ValueError(f"output_limits.{name}: lower {limit.lower:g} is above upper "
                             f"{limit.upper:g} {model.outputs[name].unit}")
        if not (math.isfinite(limit.penalty) and limit.penalty > 0):
            raise ValueError(f"output_limits.{name}.penalty: {limit.penalty:g} must be finite "
                             "and > 0")
    if settings.qp_solver not in QP_SOLVERS:
        raise ValueError(f"qp_solver: {settings.qp_solver!r} is not one of "
                         f"{', '.join(QP_SOLVERS)}")
    if settings.max_iterations < 1:
        raise ValueError(f"max_iterations: {settings.max_iterations} is below 1")
    if not (math.isfinite(settings.tolerance) and settings.tolerance > 0):
        raise ValueError(f"tolerance: {settings.tolerance:g} must be finite and > 0")
    if settings.hessian not in HESSIANS:
        raise ValueError(f"hessian: {settings.hessian!r} is not one of {', '.join(HESSIANS)}")
    for field in BACKEND_OPTIONS:
        if field not in backend.options and getattr(settings, field) != getattr(_DEFAULTS, field):
            readers = [b.name for b in backends.values() if field in b.options]
            raise ValueError(f"{field}: backend {backend.name!r} does not read it, so it must "
                             f"be left at its default {_shown(getattr(_DEFAULTS, field))} "
                             f"(backends that read it: {', '.join(readers)})")
    writable = (*model.inputs.names, *model.disturbances.names)
    for name in limits:
        _require_known(f"limits.{name}", name, writable, "input or disturbance")


def check_controllers(site: SiteConfig, path: str | Path = "<site>") -> None:
    """:func:`check_settings` for every asset of a resolved site (``plants.resolve_site``);
    ConfigError naming the file and the key, e.g. ``assets[3].controller.horizon``."""
    for i, asset in enumerate(site.assets):
        try:
            check_settings(model_of(asset), asset.resolved_controller(), asset.limits)
        except ValueError as error:
            field, _, problem = str(error).partition(": ")
            key = f"assets[{i}].{field}" if field.startswith("limits") else \
                f"assets[{i}].controller.{field}"
            raise ConfigError(path, key, problem) from None


def _require_known(field: str, name: str, known: tuple[str, ...], what: str) -> None:
    if name not in known:
        raise ValueError(f"{field}: unknown {what}; known: {', '.join(known)}")


def _shown(value: object) -> str:
    return repr(msgspec.to_builtins(value))
