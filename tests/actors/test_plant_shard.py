"""Two simulated plants in one PlantShard actor, each behind its own PLC (a Modbus TCP
endpoint of its own), lock-step: addressed by asset id, advanced separately, reached over
real Modbus, one PLC stopped without the other, and the shard restarted after kill -9."""

from __future__ import annotations

import asyncio

import msgspec
import pytest
import ray

import plants
from actors.plant import PlantShard
from actors.plant_link import ModbusLink
from engine.clock import ClockSpec
from engine.config import load_site
from engine.registers import site_map
from tests.actors.test_fault_tolerance import kill, wait_until_restarted
from tests.conftest import TWO_TANKS
from tests.ports import consecutive_free_ports

EPOCH = 1.7e9


@pytest.fixture(scope="module")
def shard(ray_session):
    site = plants.resolve_site(load_site(TWO_TANKS), TWO_TANKS)
    site = msgspec.structs.replace(site, modbus=msgspec.structs.replace(
        site.modbus, base_port=consecutive_free_ports(2)))
    plcs = {plc.asset: plc for plc in site_map(site, {a.id: plants.model_of(a)
                                                       for a in site.assets})}
    handle = PlantShard.options(namespace="test-plant-shard").remote(
        site.assets, ClockSpec(lockstep=True, epoch=EPOCH), plcs, site.modbus.scan_period_s)
    addresses = ray.get(handle.start_plcs.remote())
    yield handle, plcs, addresses
    ray.kill(handle, no_restart=True)


def links(plcs):
    return {asset: ModbusLink(plc, timeout_s=0.5, retry_initial_s=0.1, retry_max_s=0.2)
            for asset, plc in plcs.items()}


def over_modbus(plcs, scenario):
    """Run ``scenario(links)`` in an event loop of its own, closing the links after."""
    async def run():
        clients = links(plcs)
        try:
            return await scenario(clients)
        finally:
            for link in clients.values():
                await link.close()
    return asyncio.run(run())


def test_two_plants_in_one_shard_each_serve_a_plc_of_their_own(shard):
    handle, plcs, addresses = shard
    assert addresses == {a: plc.address for a, plc in plcs.items()}
    assert len(set(addresses.values())) == 2  # one endpoint per PLC
    ray.get(handle.advance_to.remote(EPOCH + 600.0, ["tank-01"]))  # only tank-01 moves
    times = {a: ray.get(handle.truth.remote(a))["time"] for a in plcs}
    assert times == {"tank-01": EPOCH + 600.0, "tank-02": EPOCH}

    async def read_and_write(clients):
        measured = {a: await link.measure() for a, link in clients.items()}
        await clients["tank-02"].apply({"m_oil": 2.5}, {"m_oil": 2.5})
        return measured

    measured = over_modbus(plcs, read_and_write)
    assert {a: m.time for a, m in measured.items()} == times  # each PLC scans its own plant
    inputs = {a: ray.get(handle.truth.remote(a))["inputs"]["m_oil"] for a in plcs}
    assert inputs["tank-02"] == pytest.approx(2.5, rel=2.0 ** -23)
    assert inputs["tank-01"] != pytest.approx(2.5)  # the write reached tank-02's plant only


def test_each_plant_of_the_shard_advances_alone_and_an_unknown_one_is_refused(shard):
    handle, _, _ = shard
    ray.get(handle.advance_to.remote(EPOCH + 900.0, ["tank-02"]))
    measurement = ray.get(handle.measure.remote("tank-02"))
    assert (measurement.asset, measurement.time) == ("tank-02", EPOCH + 900.0)
    assert ray.get(handle.truth.remote("tank-01"))["time"] < EPOCH + 900.0
    with pytest.raises(ray.exceptions.RayTaskError, match="asset 'tank-03' has no plant"):
        ray.get(handle.measure.remote("tank-03"))


def test_one_plc_stops_and_the_other_serves_on(shard):
    handle, plcs, _ = shard
    ray.get(handle.stop_plc.remote("tank-01"))

    async def read(clients):
        return {a: await link.measure() for a, link in clients.items()}

    ray.get(handle.advance_to.remote(EPOCH + 1200.0))
    measured = over_modbus(plcs, read)
    assert measured["tank-01"] is None and measured["tank-02"].time == EPOCH + 1200.0
    ray.get(handle.start_plc.remote("tank-01"))
    assert over_modbus(plcs, read)["tank-01"].time == EPOCH + 1200.0


def test_a_killed_shard_restarts_and_its_plcs_serve_again(shard):
    """Last of the module: the plants start again from their initial state at the next
    lock-step advance, and both PLCs answer on the same ports without being asked."""
    handle, plcs, _ = shard
    wait_until_restarted(handle, kill(handle))
    ray.get(handle.advance_to.remote(EPOCH + 3600.0))

    async def read(clients):
        for _ in range(50):  # the restarted shard starts its PLCs in the background
            measured = {a: await link.measure() for a, link in clients.items()}
            if all(measured.values()):
                return measured
            await asyncio.sleep(0.1)
        return measured

    measured = over_modbus(plcs, read)
    assert {a: m.time for a, m in measured.items()} == dict.fromkeys(plcs, EPOCH + 3600.0)
    assert ray.get(handle.truth.remote("tank-02"))["inputs"]["m_oil"] != pytest.approx(2.5)
