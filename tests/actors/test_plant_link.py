"""A PLC simulator and the twin's Modbus link in one event loop, without Ray: what the
link reads is what the plant measured, a setpoint write reaches the plant, a refused
write says why, and a lost PLC is retried with growing delays until it is back."""

from __future__ import annotations

import asyncio
import itertools

import pytest

import plants
from actors.plant_link import ModbusLink
from actors.plc import PlcSimulator
from engine.config import parse_site
from engine.registers import plc_map
from engine.simulation import SimulatedPlant
from tests.conftest import free_port

SITE = '[site]\nname = "s"\n[[assets]]\nid = "tank-01"\nkind = "asphalt_tank"\n'


def plc_and_link(word_order: str = "BADC"):
    asset = plants.resolve_site(parse_site(SITE)).assets[0]
    model = plants.model_of(asset)
    plant = SimulatedPlant(asset.id, model, asset.simulation, x0=asset.initial, t0=1.7e9)
    registers = plc_map(asset.id, model, host="127.0.0.1", port=free_port(), unit_id=3,
                        word_order=word_order)
    plc = PlcSimulator(plant, registers, catch_up=lambda: None)
    link = ModbusLink(registers, timeout_s=0.5, retry_initial_s=0.1, retry_max_s=0.4)
    return plant, plc, link


def test_reads_writes_and_refusals_through_real_modbus():
    async def scenario():
        plant, plc, link = plc_and_link()
        await plc.start(scan_period_s=None)
        try:
            plant.advance(600.0)
            plc.scan()
            measurement = await link.measure()
            assert measurement.time == plant.t
            truth = plant.model.outputs.mapping(
                plant.model.output(plant.t, plant.x, plant.u, plant.d, plant.p))
            for name, value in measurement.values.items():
                assert value == pytest.approx(truth[name], abs=1.0)  # noise std 0.2 K
            assert await link.measure() is None  # no new scan, nothing new
            await link.apply({"m_oil": 2.5}, {"m_oil": 2.5})
            assert plant.u[0] == pytest.approx(2.5, rel=2.0 ** -23)
            with pytest.raises(ConnectionError, match="PLC refused setpoints"):
                await link.apply({"m_oil": -4.0}, {"m_oil": -4.0})
            assert plant.u[0] == pytest.approx(2.5, rel=2.0 ** -23)
            assert plc.refused_writes == 1
        finally:
            await link.close()
            await plc.stop()

    asyncio.run(scenario())


def test_a_lost_plc_is_retried_with_growing_delays_until_it_returns():
    async def scenario():
        plant, plc, link = plc_and_link()
        await plc.start(scan_period_s=None)
        try:
            assert await link.measure() is not None
            await plc.stop()
            plant.advance(120.0)
            plc.scan()
            delays = []
            for _ in range(40):
                assert await link.measure() is None
                if link.backoff.failures > len(delays):
                    delays.append(link.retry_at)
                await asyncio.sleep(0.05)
            gaps = [later - earlier for earlier, later in itertools.pairwise(delays)]
            assert len(delays) >= 3 and gaps[0] < gaps[-1]
            assert "retrying in 0.4 s" in link.error and "stale" in link.error
            await plc.start(scan_period_s=None)
            await asyncio.sleep(0.45)
            measurement = await link.measure()
            assert measurement is not None and measurement.time == plant.t
            assert link.error is None and link.backoff.failures == 0
        finally:
            await link.close()
            await plc.stop()

    asyncio.run(scenario())
