"""Plant models, one module per asset kind, and the registry that builds them by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.config import PlantDefaults
from engine.model import PlantModel
from plants import asphalt_tank

BUILDERS: dict[str, Callable[..., PlantModel]] = {
    asphalt_tank.KIND: asphalt_tank.build_model,
}
DEFAULTS: dict[str, PlantDefaults] = {
    asphalt_tank.KIND: asphalt_tank.DEFAULTS,
}


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
    model = builder(dt=dt, **dict(structure or {}))
    return model.with_parameters(parameters or {})
