"""Build a site's actors from its configuration: one safety actor, and per asset a
simulated plant and an asset actor, all named in the ``twinloop`` namespace.

Called from the driver (CLI, tests), never from inside an actor's loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray

from actors import NAMESPACE
from actors.asset import AssetActor
from actors.plant import SimulatedPlantActor
from actors.safety import SafetyActor
from engine.clock import ClockSpec
from engine.config import AssetConfig, SiteConfig
from plants import model_of


@dataclass
class Fleet:
    """Handles to the actors of one running site."""

    site: SiteConfig
    clock: ClockSpec
    safety: Any
    assets: dict[str, Any] = field(default_factory=dict)
    plants: dict[str, Any] = field(default_factory=dict)

    @property
    def kinds(self) -> dict[str, str]:
        return {a.id: a.kind for a in self.site.assets}

    def start(self) -> None:
        """Start every asset's real-time loop."""
        ray.get([a.start.remote() for a in self.assets.values()])

    def run_for(self, duration: float) -> None:
        """Lock-step: run every asset ``duration`` twin-seconds, assets in parallel."""
        ray.get([a.run_for.remote(duration) for a in self.assets.values()])

    def shutdown(self) -> None:
        for handle in [*self.assets.values(), *self.plants.values(), self.safety]:
            ray.kill(handle, no_restart=True)


def initial_outputs(asset: AssetConfig) -> dict[str, float]:
    """The value each writable signal (inputs, operator-set disturbances) starts at."""
    model = model_of(asset)
    values = {**model.inputs.mapping(model.inputs.vector(asset.inputs)),
              **model.disturbances.mapping(model.disturbances.vector(asset.disturbances))}
    return {name: values[name] for name in asset.limits}


def build_fleet(site: SiteConfig, clock: ClockSpec, namespace: str = NAMESPACE) -> Fleet:
    """Create and wait for every actor of a resolved site (see plants.resolve_site)."""
    initial = {asset.id: initial_outputs(asset) for asset in site.assets}
    safety = SafetyActor.options(name=f"safety:{site.site.name}", namespace=namespace).remote(
        site, initial, clock.epoch)
    fleet = Fleet(site, clock, safety)
    for asset in site.assets:
        plant = SimulatedPlantActor.options(
            name=f"plant:{asset.id}", namespace=namespace).remote(asset, clock)
        fleet.plants[asset.id] = plant
        fleet.assets[asset.id] = AssetActor.options(
            name=f"asset:{asset.id}", namespace=namespace).remote(asset, clock, plant, safety)
    ray.get([a.summary.remote() for a in fleet.assets.values()])
    return fleet
