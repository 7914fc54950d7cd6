"""Build a site's actors from its configuration: one safety actor, and per asset a
simulated plant and an asset actor, all named in the ``twinloop`` namespace.

With ``modbus=True`` each simulated plant serves its PLC registers over Modbus TCP
(``base_port + i`` for asset i; engine.registers) and each asset reads measurements and
writes setpoints through it; otherwise assets call their plant actors directly.
Given an MQTT broker, an MqttGateway feeds the assets whose ``measurement_source`` is
"mqtt" and publishes every asset's estimates and applied setpoints.

Called from the driver (CLI, tests), never from inside an actor's loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray

from actors import NAMESPACE
from actors.asset import AssetActor
from actors.mqtt import MqttGateway
from actors.plant import SimulatedPlantActor
from actors.safety import SafetyActor
from engine.clock import ClockSpec
from engine.config import SiteConfig
from engine.mqtt_codec import parse_broker
from engine.registers import PlcMap, site_map
from plants import model_of


@dataclass
class Fleet:
    """Handles to the actors of one running site."""

    site: SiteConfig
    clock: ClockSpec
    safety: Any
    assets: dict[str, Any] = field(default_factory=dict)
    plants: dict[str, Any] = field(default_factory=dict)
    plcs: dict[str, PlcMap] = field(default_factory=dict)
    mqtt: Any = None

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
        gateways = [] if self.mqtt is None else [self.mqtt]
        for handle in [*gateways, *self.assets.values(), *self.plants.values(), self.safety]:
            ray.kill(handle, no_restart=True)


def build_fleet(site: SiteConfig, clock: ClockSpec, namespace: str = NAMESPACE, *,
                modbus: bool = False, mqtt: str | None = None) -> Fleet:
    """Create and wait for every actor of a resolved site (see plants.resolve_site).
    Assets whose ``measurement_source`` is "mqtt" get no simulated plant, and need the
    broker ``mqtt`` (``mqtt://host:port``)."""
    name = site.site.name
    from_mqtt = [asset.id for asset in site.assets if asset.measurement_source == "mqtt"]
    if from_mqtt and mqtt is None:
        raise ValueError(f"assets {from_mqtt} take their measurements from MQTT: "
                         "give a broker (twinloop demo --mqtt mqtt://host:port)")
    if mqtt is not None:
        parse_broker(mqtt)
    safety = SafetyActor.options(name=f"safety:{name}", namespace=namespace).remote(
        name, site.site.audit_db)
    fleet = Fleet(site, clock, safety)
    models = {asset.id: model_of(asset) for asset in site.assets}
    plcs = {plc.asset: plc for plc in site_map(site, models)} if modbus else {}
    for asset in site.assets:
        model = models[asset.id]
        initial_inputs = model.inputs.mapping(model.inputs.vector(asset.inputs))
        safety.register.remote(asset.id, asset.limits, asset.mode, asset.max_measurement_age_s,
                               initial_inputs, clock.epoch)
        plant, plc = None, None
        if asset.measurement_source == "plant":
            plc = plcs.get(asset.id)
            plant = SimulatedPlantActor.options(
                name=f"plant:{asset.id}", namespace=namespace).remote(
                    asset, clock, plc, site.modbus.scan_period_s)
            fleet.plants[asset.id] = plant
            if plc is not None:
                fleet.plcs[asset.id] = plc
        fleet.assets[asset.id] = AssetActor.options(
            name=f"asset:{asset.id}", namespace=namespace).remote(
                asset, clock, plant, safety, plc, site.modbus)
    ray.get([fleet.plants[a].start_plc.remote() for a in fleet.plcs])
    if mqtt is not None:
        fleet.mqtt = MqttGateway.options(name=f"mqtt:{name}", namespace=namespace).remote(
            name, mqtt, {a: fleet.assets[a] for a in from_mqtt},
            {a: models[a].outputs for a in from_mqtt})
        ray.get(fleet.mqtt.start.remote())
        ray.get([a.attach_publisher.remote(fleet.mqtt) for a in fleet.assets.values()])
    ray.get([a.summary.remote() for a in fleet.assets.values()])
    return fleet
