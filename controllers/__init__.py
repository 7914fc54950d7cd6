"""Estimators and controllers built from a PlantModel, and the registries that build
them by name from the site configuration (``EstimatorSettings.kind``,
``ControllerSettings.backend``)."""

from __future__ import annotations

from collections.abc import Mapping

from engine.config import ControllerSettings, EstimatorSettings, SetpointLimit
from engine.loop import Controller, Estimator
from engine.model import PlantModel

ESTIMATOR_KINDS = ("kf", "ekf", "ukf")
CONTROLLER_BACKENDS = ("do-mpc", "fillage-rule")


def build_estimator(model: PlantModel, settings: EstimatorSettings) -> Estimator:
    """The estimator of ``settings.kind`` for ``model``. Unknown kinds raise ValueError."""
    if settings.kind == "kf":
        from controllers.kf import LinearKalmanFilter

        return LinearKalmanFilter(model, settings)
    if settings.kind == "ekf":
        from controllers.ekf import ExtendedKalmanFilter

        return ExtendedKalmanFilter(model, settings)
    if settings.kind == "ukf":
        from controllers.ukf import UnscentedKalmanFilter

        return UnscentedKalmanFilter(model, settings)
    raise ValueError(f"unknown estimator kind {settings.kind!r}; known kinds: "
                     f"{', '.join(ESTIMATOR_KINDS)}")


def build_controller(
    model: PlantModel, settings: ControllerSettings, limits: Mapping[str, SetpointLimit]
) -> Controller:
    """The controller of ``settings.backend`` for ``model`` with the setpoint ``limits``
    of its inputs (limits of disturbances an operator writes, such as a terminal's
    loading draws, are the safety actor's, not the controller's). Unknown backends
    raise ValueError."""
    limits = {name: limit for name, limit in limits.items() if name not in model.disturbances}
    if settings.backend == "do-mpc":
        from controllers.mpc_dompc import DoMpcController

        return DoMpcController(model, settings, limits)
    if settings.backend == "fast":
        from controllers.mpc_fast import FastMpcController

        return FastMpcController(model, settings, limits)
    if settings.backend == "fillage-rule":
        from controllers.fillage import FillageController

        return FillageController(model, settings, limits)
    raise ValueError(f"unknown controller backend {settings.backend!r}; known backends: "
                     f"{', '.join(CONTROLLER_BACKENDS)}")
