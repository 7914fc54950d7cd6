"""The OPC UA address space without a server: units, node ids, change detection."""

from __future__ import annotations

import math

from asyncua import ua

import plants
from actors.opcua_space import UNECE_NAMESPACE, AssetNodes, eu_information, unit_id
from engine.config import parse_site
from engine.messages import Mode
from engine.status import (
    AssetStatus,
    ControllerStatus,
    DirectLinkStatus,
    EstimatedQuantity,
    EstimatorStatus,
    TimedQuantity,
)

SITE = """
[site]
name = "t"
[[assets]]
id = "tank-01"
kind = "asphalt_tank"
max_measurement_age_s = 600.0
"""


def tank() -> AssetNodes:
    site = plants.resolve_site(parse_site(SITE), "t")
    return AssetNodes(site.assets[0], plants.model_of(site.assets[0]), ns=2)


def status(measured_at: float, age: float, m_oil: float = 0.6, revision: int = 1) -> AssetStatus:
    return AssetStatus(
        id="tank-01", kind="asphalt_tank", time=measured_at, revision=revision,
        measurement_age_s=age, mode=Mode.AUTONOMOUS, healthy=True, errors=[],
        link=DirectLinkStatus(),
        measurement={"T_bulk": TimedQuantity(value=430.0, unit="K", time=measured_at)},
        estimate={"T_bulk": EstimatedQuantity(value=430.1, unit="K", std=0.1)},
        setpoints={"m_oil": TimedQuantity(value=m_oil, unit="kg/s", time=measured_at)},
        reference={}, controller=ControllerStatus(backend="do-mpc", status=None,
                                                  solve_time_s=None, reason=None),
        nis=None, estimator=EstimatorStatus(
            kind="ekf", parameters={}, innovation={}, nis=None, dof=1, nis_threshold=None,
            significance=0.01, anomaly=False, anomalies=0, persistent_anomaly=False,
            recent_anomalies="0 of the last 10"),
        period_s=120.0, ticks=1, overruns=0, outputs_held=False, restarted=False)


def test_unit_ids_follow_opc_10000_8():
    """UnitId is the UNECE common code's ASCII bytes: KEL -> 0x4B454C; two-character codes
    fill the low bytes."""
    assert unit_id("KEL") == 0x4B454C
    assert unit_id("2A") == 0x3241
    kelvin = eu_information("K")
    assert (kelvin.NamespaceUri, kelvin.UnitId, kelvin.DisplayName.Text) == (
        UNECE_NAMESPACE, 0x4B454C, "K")
    assert eu_information("kg/m^3").UnitId == unit_id("KMQ")


def test_a_unit_without_a_unece_code_keeps_its_symbol():
    dollars = eu_information("USD/h")
    assert (dollars.UnitId, dollars.DisplayName.Text) == (-1, "USD/h")


def test_only_changed_values_are_written_and_stale_measurements_are_uncertain():
    nodes = tank()
    first = dict(nodes.updates(status(1000.0, 0.0)))
    m_oil = nodes.node_id("Setpoints", "m_oil")
    t_bulk = nodes.node_id("Measurements", "T_bulk")
    assert first[m_oil].Value.Value == 0.6
    assert first[t_bulk].SourceTimestamp.timestamp() == 1000.0
    assert first[nodes.node_id("Measurements", "T_return")].StatusCode.value == (
        ua.StatusCodes.BadWaitingForInitialData)
    assert math.isnan(first[nodes.node_id("Measurements", "T_return")].Value.Value)

    assert nodes.updates(status(1000.0, 120.0)) == []
    stale = dict(nodes.updates(status(1000.0, 601.0)))
    assert list(stale) == [t_bulk]
    assert stale[t_bulk].StatusCode.value == ua.StatusCodes.UncertainLastUsableValue
    assert list(dict(nodes.updates(status(1000.0, 601.0, m_oil=0.7, revision=3)))) == [m_oil]
    assert nodes.updates(status(1000.0, 601.0, m_oil=0.6, revision=2)) == []  # overtaken
    assert nodes.written("Setpoints", "m_oil", 0.5, 1000.0, revision=2) is None
    assert nodes.written("Setpoints", "m_oil", 0.5, 1000.0, revision=4)[1].Value.Value == 0.5


def test_only_inputs_with_safety_limits_are_writable_setpoints():
    nodes = tank()
    assert [(s.asset, s.signal) for s in nodes.setpoints.values()] == [("tank-01", "m_oil")]
    items = {item.RequestedNewNodeId.Identifier: item for item in nodes.add_nodes_items(
        ua.NodeId("Assets", 2))}
    writable = ua.AccessLevel.CurrentWrite.mask
    assert items["tank-01.Setpoints.m_oil"].NodeAttributes.AccessLevel & writable
    assert not items["tank-01.Measurements.T_bulk"].NodeAttributes.AccessLevel & writable
    assert items["tank-01.Setpoints.m_oil"].TypeDefinition == ua.NodeId(ua.ObjectIds.AnalogItemType)


def test_every_pilot_asset_builds_its_address_space_in_a_real_server():
    """Each seed kind's signals (units, infinite bounds, names) make valid nodes."""
    import asyncio
    from pathlib import Path

    from asyncua import Server

    from engine.config import load_site

    pilot = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"
    site = plants.resolve_site(load_site(pilot), pilot)

    async def build():
        server = Server()
        await server.init()
        ns = await server.register_namespace("urn:twinloop:pilot")
        folder = await server.nodes.objects.add_folder(ua.NodeId("Assets", ns),
                                                       ua.QualifiedName("Assets", ns))
        codes, items = [], 0
        for asset in site.assets:
            nodes = AssetNodes(asset, plants.model_of(asset), ns)
            batch = nodes.add_nodes_items(folder.nodeid)
            items += len(batch)
            codes += [r.StatusCode for r in await server.iserver.isession.add_nodes(batch)]
        return codes, items

    codes, items = asyncio.run(build())
    assert len(codes) == items > 100
    assert all(code.is_good() for code in codes)
