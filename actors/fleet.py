"""Build a site's actors from its configuration, all named in the ``twinloop`` namespace:

    safety:<site>   the safety actor (actors.safety), the only path to an output
    shard:<n>       asset shards (actors.shard): ``[fleet] assets_per_shard`` assets each
    plants:<n>      plant shards (actors.plant): the simulated plants of shard n's assets
                    and their PLC simulators, in one process beside it
    status:<site>   the status board (actors.status_board): every asset's latest status,
                    pushed by the shards, read by HTTP and OPC UA
    opcua:<site>    on request, the OPC UA gateway; mqtt:<site> given a broker
    historian:<site> on request (``history=True``), the historian (actors.historian),
                    on the driver's node: the store of ``[historian]``, fed by the shards

Assets are packed in site-file order. Shard n and its plant shard share bundle n of the
fleet's placement group (``spread_bundles``), which Ray's GCS places with strategy SPREAD:
bundles on distinct nodes while a node has none (then as evenly as it can), so on a
cluster the shards spread over the nodes, each plant shard beside its asset shard. If a
node is lost, the GCS places its bundles again on the other nodes and Ray restarts the
shards there. (Ray's SPREAD scheduling strategy on the actors themselves does not spread
them reliably: an actor asking for no resources is handed to a random node's raylet, and
each raylet takes its round robin from its own counter, so several land on one node;
ray-project/ray#27577.) The safety actor (and the OPC UA gateway) run on the driver's
node, the cluster's head: the audit database is a file there (``[site] audit_db``), and
the safety actor is restarted only where that file is. The directory (``Fleet.directory``)
maps each asset id to its shard; ``Fleet.assets[id]`` and ``Fleet.plants[id]`` are
per-asset handles (actors.directory.AssetHandle) with the method names of one asset, so
HTTP, OPC UA, MQTT and tests address assets by id wherever they are hosted.

With ``modbus=True`` each simulated plant serves its PLC registers over Modbus TCP
(``base_port + i`` for asset i; engine.registers) and each asset reads measurements and
writes setpoints through it; otherwise assets call their plant shards directly.
Given an MQTT broker, an MqttGateway feeds the assets whose ``measurement_source`` is
"mqtt" and publishes every asset's estimates and applied setpoints.

A site built on a durable store that already holds decisions (a restart of the whole
site) resumes: its clock after the newest twin time on record (ClockSpec.resumed), so
that audit times never go backwards; its simulated plants at the last values the gate
applied; each asset with its mode, reference, tuning, limits and approval queue
(actors.safety). ``Fleet.restore_report`` says what no longer fitted the site file and
was skipped.

Called from the driver (CLI, tests), never from inside an actor's loop.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import msgspec
import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import (
    NodeAffinitySchedulingStrategy,
    PlacementGroupSchedulingStrategy,
)

from actors import NAMESPACE
from actors.directory import AssetHandle
from actors.historian import start_historian
from actors.mqtt import MqttGateway
from actors.opcua import OpcUaActor
from actors.plant import PlantShard
from actors.safety import SafetyActor
from actors.shard import AssetShard
from actors.status_board import StatusBoard
from engine.clock import ClockSpec
from engine.config import AssetConfig, OpcUaSettings, SiteConfig
from engine.model import PlantModel
from engine.mqtt_codec import parse_broker
from engine.plan_store import plans_folder
from engine.registers import PlcMap, site_map
from engine.tick_phases import tick_phases
from plants import card_points_of, model_of

# mypy does not apply class decorators (python/mypy#3135), so it sees the ray.remote actor
# classes as the plain classes they decorate: each ``.options`` here says ignore[attr-defined].


@dataclass
class Fleet:
    """Handles to the actors of one running site.

    ``shards`` and ``plant_shards`` by actor name; ``directory`` maps asset id to the
    name of its shard; ``assets`` and ``plants`` are per-asset handles."""

    site: SiteConfig
    clock: ClockSpec
    safety: Any
    board: Any = None
    assets: dict[str, AssetHandle] = field(default_factory=dict)
    plants: dict[str, AssetHandle] = field(default_factory=dict)
    shards: dict[str, Any] = field(default_factory=dict)
    plant_shards: dict[str, Any] = field(default_factory=dict)
    directory: dict[str, str] = field(default_factory=dict)
    namespace: str = NAMESPACE
    opcua: Any = None
    plcs: dict[str, PlcMap] = field(default_factory=dict)
    mqtt: Any = None
    restore_report: list[str] = field(default_factory=list)
    """What the durable store held that no longer fits the site, and was skipped."""
    historian: Any = None
    placement: PlacementGroup | None = None
    """The shards' placement group (``spread_bundles``)."""

    @property
    def kinds(self) -> dict[str, str]:
        return {a.id: a.kind for a in self.site.assets}

    def start(self) -> None:
        """Start every asset's real-time loop."""
        ray.get([shard.start.remote() for shard in self.shards.values()])

    def run_for(self, duration: float) -> None:
        """Lock-step: run every asset ``duration`` twin-seconds. The shards advance
        together, the shortest period of the site at a time (in parallel within it), so
        that no shard runs ahead of the measurements another's interlocks watch."""
        step = min(asset.resolved_period_s() for asset in self.site.assets)
        done = 0.0
        while done < duration - 1e-9:
            chunk = min(step, duration - done)
            ray.get([shard.run_for.remote(chunk) for shard in self.shards.values()])
            done += chunk

    def serve_opcua(self, settings: OpcUaSettings | None = None) -> str:
        """Start the OPC UA server (``settings``, default the site file's ``[opcua]``
        table); it subscribes to the status board. Returns the endpoint URL."""
        site = self.site if settings is None else msgspec.structs.replace(self.site, opcua=settings)
        # on this node: it binds the configured (local) host
        self.opcua = OpcUaActor.options(  # type: ignore[attr-defined]  # ray.remote class
            name=f"opcua:{self.site.site.name}", namespace=self.namespace,
            scheduling_strategy=this_node()).remote(site, self.assets, self.safety)
        url = ray.get(self.opcua.start.remote())
        ray.get(self.board.subscribe.remote(self.opcua))
        return url

    def shutdown(self) -> None:
        if self.opcua is not None:
            try:
                ray.get(self.opcua.stop.remote(), timeout=10)
            except Exception:  # already gone: killed below all the same
                pass
        if self.historian is not None:
            try:  # store what is queued and release the store (a DuckDB file's lock)
                ray.get(self.historian.close.remote(), timeout=30)
            except Exception:  # already gone: killed below all the same
                pass
        gateways = [g for g in (self.opcua, self.mqtt, self.historian) if g is not None]
        for handle in [*gateways, *self.shards.values(), *self.plant_shards.values(),
                       self.board, self.safety]:
            ray.kill(handle, no_restart=True)
        if self.placement is not None:
            remove_placement_group(self.placement)


def this_node() -> NodeAffinitySchedulingStrategy:
    """Placement on the driver's node, never elsewhere (not even if that node is lost)."""
    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


SHARD_BUNDLE_CPU = 0.001
"""CPU reserved by each bundle of the shards' placement group: a token (Ray places no
empty bundle); the shards themselves ask for none (``num_cpus=0``). A node offers
1,000 bundles per CPU; a node with no CPU hosts no shards."""


def spread_bundles(count: int) -> PlacementGroup:
    """A placement group of ``count`` bundles with strategy SPREAD, once Ray has placed
    it: bundle n hosts shard n and its plant shard. The GCS places the bundles on distinct
    nodes while one has none, from its own view of the cluster, and places those of a lost
    node again on the others (the shards in them are restarted there)."""
    group = placement_group([{"CPU": SHARD_BUNDLE_CPU}] * count, strategy="SPREAD")
    ray.get(group.ready())
    return group


def assets_per_shard(site: SiteConfig, cpus: float | None = None) -> int:
    """``[fleet] assets_per_shard``, else the fleet spread over the CPUs: ceil(n / CPUs)
    (``cpus`` default: the Ray cluster's)."""
    if site.fleet.assets_per_shard is not None:
        return site.fleet.assets_per_shard
    if cpus is None:
        cpus = ray.cluster_resources().get("CPU", os.cpu_count() or 1)
    return max(1, math.ceil(len(site.assets) / max(1, int(cpus))))


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
                modbus: bool = False, mqtt: str | None = None, history: bool = False) -> Fleet:
    """Create and wait for every actor of a resolved site (see plants.resolve_site).
    Assets whose ``measurement_source`` is "mqtt" get no simulated plant, and need the
    broker ``mqtt`` (``mqtt://host:port``). ``history``: record every tick in the
    historian of the site's ``[historian]`` (a DuckDB path is taken relative to the
    driver's working directory)."""
    name = site.site.name
    from_mqtt = check_mqtt(site, mqtt)
    initial = {asset.id: initial_outputs(asset) for asset in site.assets}
    # on this node: its audit database is a local file here
    safety = SafetyActor.options(  # type: ignore[attr-defined]  # ray.remote class
        name=f"safety:{name}", namespace=namespace, scheduling_strategy=this_node()).remote(
            site, initial, clock.epoch)
    clock = clock.resumed(ray.get(safety.newest_time.remote()))
    given = ray.get(safety.restore_points.remote([a.id for a in site.assets], False))
    board = StatusBoard.options(  # type: ignore[attr-defined]  # ray.remote class
        name=f"status:{name}", namespace=namespace, scheduling_strategy=this_node()).remote()
    fleet = Fleet(site, clock, safety, board, namespace=namespace)
    if history:
        settings = msgspec.structs.replace(site.historian,
                                           path=os.path.abspath(site.historian.path))
        fleet.historian = start_historian(settings, name=f"historian:{name}",
                                          namespace=namespace, scheduling_strategy=this_node())
        ray.get(fleet.historian.stats.remote())  # the store opens, or the fleet fails here
    models = {asset.id: model_of(asset) for asset in site.assets}
    card_points = {asset.id: card_points_of(asset) for asset in site.assets}
    fleet.plcs = {plc.asset: plc for plc in site_map(site, models, card_points)
                  } if modbus else {}
    plans = os.path.abspath(plans_folder(site.site.audit_db))
    phases = {} if clock.lockstep else tick_phases(site)
    size = assets_per_shard(site)
    groups = [site.assets[first:first + size] for first in range(0, len(site.assets), size)]
    # a site without assets gets one idle bundle: Ray makes no empty placement group
    fleet.placement = placement = spread_bundles(max(1, len(groups)))
    for n, group in enumerate(groups):
        beside = PlacementGroupSchedulingStrategy(placement, placement_group_bundle_index=n)
        simulated = [as_given(asset, models[asset.id], given[asset.id]["last_applied"])
                     for asset in group if asset.measurement_source == "plant"]
        plcs = {a.id: fleet.plcs[a.id] for a in group if a.id in fleet.plcs}
        if simulated:
            plant_shard = PlantShard.options(  # type: ignore[attr-defined]  # ray.remote class
                name=f"plants:{n}", namespace=namespace, scheduling_strategy=beside).remote(
                    simulated, clock, plcs, site.modbus.scan_period_s)
            fleet.plant_shards[f"plants:{n}"] = plant_shard
            fleet.plants.update({a.id: AssetHandle(plant_shard, a.id) for a in simulated})
        shard = AssetShard.options(  # type: ignore[attr-defined]  # ray.remote class
            name=f"shard:{n}", namespace=namespace, scheduling_strategy=beside).remote(
                f"shard:{n}", group, clock, safety,
                {a.id: fleet.plants[a.id] for a in simulated}, plcs, site.modbus, board,
                fleet.historian, plans, {a.id: phases.get(a.id, 0.0) for a in group})
        fleet.shards[f"shard:{n}"] = shard
        for asset in group:
            fleet.directory[asset.id] = f"shard:{n}"
            fleet.assets[asset.id] = AssetHandle(shard, asset.id)
    if fleet.plcs:
        ray.get([plant_shard.start_plcs.remote() for plant_shard in fleet.plant_shards.values()])
    if mqtt is not None:
        fleet.mqtt = MqttGateway.options(  # type: ignore[attr-defined]  # ray.remote class
            name=f"mqtt:{name}", namespace=namespace).remote(
            name, mqtt, {a: fleet.assets[a] for a in from_mqtt},
            {a: models[a].outputs for a in from_mqtt})
        ray.get(fleet.mqtt.start.remote())
        ray.get([a.attach_publisher.remote(fleet.mqtt) for a in fleet.assets.values()])
    ray.get([a.summary.remote() for a in fleet.assets.values()])
    fleet.restore_report = [*ray.get(safety.restore_report.remote()), *(
        line for report in ray.get([s.restore_report.remote() for s in fleet.shards.values()])
        for line in report)]
    return fleet


def as_given(asset: AssetConfig, model: PlantModel,
             last_applied: dict[str, list[float]]) -> AssetConfig:
    """The asset with its simulated plant's inputs and writable disturbances at the last
    values the gate applied (signal -> [value, time]; on a new site, the site file's):
    a site started again on its durable store starts its plants where they were left,
    so that the gate's rate limits hold from the values the plants really have."""
    values = {name: value for name, (value, _) in last_applied.items()}
    return msgspec.structs.replace(
        asset,
        inputs={**asset.inputs, **{n: v for n, v in values.items() if n in model.inputs}},
        disturbances={**asset.disturbances,
                      **{n: v for n, v in values.items() if n in model.disturbances}})
