"""Build a site's actors from its configuration: one safety actor, and per asset a
simulated plant and an asset actor, all named in the ``twinloop`` namespace; on request
the OPC UA gateway (``opcua:<site>``) in front of them.

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

import msgspec
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors import NAMESPACE
from actors.asset import AssetActor
from actors.mqtt import MqttGateway
from actors.opcua import OpcUaActor
from actors.plant import SimulatedPlantActor
from actors.safety import SafetyActor
from engine.clock import ClockSpec
from engine.config import AssetConfig, OpcUaSettings, SiteConfig
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
    namespace: str = NAMESPACE
    opcua: Any = None
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

    def serve_opcua(self, settings: OpcUaSettings | None = None) -> str:
        """Start the OPC UA server (``settings``, default the site file's ``[opcua]``
        table); every asset pushes its status to it. Returns the endpoint URL."""
        site = self.site if settings is None else msgspec.structs.replace(self.site, opcua=settings)
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.opcua = OpcUaActor.options(  # on this node: it binds the configured (local) host
            name=f"opcua:{self.site.site.name}", namespace=self.namespace,
            scheduling_strategy=here).remote(site, self.assets)
        url = ray.get(self.opcua.start.remote())
        ray.get([a.add_listener.remote(self.opcua) for a in self.assets.values()])
        return url

    def shutdown(self) -> None:
        if self.opcua is not None:
            try:
                ray.get(self.opcua.stop.remote(), timeout=10)
            except Exception:  # already gone: killed below all the same
                pass
        gateways = [g for g in (self.opcua, self.mqtt) if g is not None]
        for handle in [*gateways, *self.assets.values(), *self.plants.values(), self.safety]:
            ray.kill(handle, no_restart=True)


def initial_outputs(asset: AssetConfig) -> dict[str, float]:
    """The value each writable signal (inputs, operator-set disturbances) starts at."""
    model = model_of(asset)
    values = {**model.inputs.mapping(model.inputs.vector(asset.inputs)),
              **model.disturbances.mapping(model.disturbances.vector(asset.disturbances))}
    return {name: values[name] for name in asset.limits}


def check_mqtt(site: SiteConfig, mqtt: str | None) -> list[str]:
    """The assets that take their measurements from MQTT; ValueError if they need a
    broker and ``mqtt`` gives none, or ``mqtt`` is not ``mqtt://host:port``."""
    from_mqtt = [asset.id for asset in site.assets if asset.measurement_source == "mqtt"]
    if from_mqtt and mqtt is None:
        raise ValueError(f"assets {from_mqtt} take their measurements from MQTT: "
                         "give a broker (twinloop demo --mqtt mqtt://host:port)")
    if mqtt is not None:
        parse_broker(mqtt)
    return from_mqtt


def build_fleet(site: SiteConfig, clock: ClockSpec, namespace: str = NAMESPACE, *,
                modbus: bool = False, mqtt: str | None = None) -> Fleet:
    """Create and wait for every actor of a resolved site (see plants.resolve_site).
    Assets whose ``measurement_source`` is "mqtt" get no simulated plant, and need the
    broker ``mqtt`` (``mqtt://host:port``)."""
    name = site.site.name
    from_mqtt = check_mqtt(site, mqtt)
    initial = {asset.id: initial_outputs(asset) for asset in site.assets}
    safety = SafetyActor.options(name=f"safety:{name}", namespace=namespace).remote(
        site, initial, clock.epoch)
    fleet = Fleet(site, clock, safety, namespace=namespace)
    models = {asset.id: model_of(asset) for asset in site.assets}
    plcs = {plc.asset: plc for plc in site_map(site, models)} if modbus else {}
    for asset in site.assets:
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
