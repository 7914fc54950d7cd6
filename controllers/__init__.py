"""Estimators and controllers built from a PlantModel, and the registries that build
them by name from the site configuration (``EstimatorSettings.kind`` here,
``ControllerSettings.backend`` in controllers.backends)."""

from __future__ import annotations

from controllers.backends import CONTROLLER_BACKENDS, build_controller
from engine.config import EstimatorSettings
from engine.loop import Estimator
from engine.model import PlantModel

__all__ = ["CONTROLLER_BACKENDS", "ESTIMATOR_KINDS", "build_controller", "build_estimator"]

ESTIMATOR_KINDS = ("kf", "ekf", "ukf")


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
