"""A PLC simulator and the twin's Modbus link in one event loop, without Ray: what the
link reads is what the plant measured, a setpoint write reaches the plant, a refused
write says why, and a lost PLC is retried with growing delays until it is back."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import msgspec
import pytest

import plants
from actors.plant_link import ModbusLink
from actors.plc import PlcSimulator
from engine.config import parse_site
from engine.registers import decode, plc_map
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


WELL = '[site]\nname = "s"\n[[assets]]\nid = "well-01"\nkind = "rod_pump"\n'
FLOAT32 = 2.0 ** -23
"""Relative precision of a float32."""
STROKES = 120.0
"""Twin seconds between two scans here: many strokes, so each scan records a new card."""


def well_plc_and_link(synthesize=None):
    """A rod pump behind its PLC (CDAB word order, card buffer) and the twin's link."""
    asset = plants.resolve_site(parse_site(WELL)).assets[0]
    model = plants.model_of(asset)
    plant = SimulatedPlant(asset.id, model, asset.simulation, x0=asset.initial,
                           u0=asset.inputs, d=asset.disturbances, t0=1.7e9,
                           synthesize=synthesize or plants.synthesizer_of(asset))
    registers = plc_map(asset.id, model, host="127.0.0.1", port=free_port(), unit_id=2,
                        word_order="CDAB", card_points=plants.card_points_of(asset))
    plc = PlcSimulator(plant, registers, catch_up=lambda: None)
    link = ModbusLink(registers, timeout_s=0.5, retry_initial_s=0.1, retry_max_s=0.4)
    return plant, plc, link


@contextlib.asynccontextmanager
async def serving(plc, link):
    """The PLC served (its first scan made, no periodic scans: the test scans), then the
    link and the PLC closed."""
    await plc.start(scan_period_s=None)
    try:
        yield
    finally:
        await link.close()
        await plc.stop()


def next_stroke(plant, plc) -> None:
    """The plant pumps more strokes and the PLC scans the last into its card buffer."""
    plant.advance(STROKES)
    plc.scan()


async def the_next_card_is_read(plant, plc, link, cards_read: int) -> None:
    """After the next stroke the link hands over its card, the ``cards_read``-th it read."""
    next_stroke(plant, plc)
    assert (await link.measure()).card.time == plant.t
    assert link.status().cards_read == cards_read


async def read_card_buffer(plc) -> dict:
    """The card buffer as an independent client reads it: header, then the points in reads
    of 125 registers, decoded by the documented layout (engine.registers)."""
    from pymodbus.client import AsyncModbusTcpClient

    start, order = plc.plc.card.address, plc.plc.word_order
    client = AsyncModbusTcpClient("127.0.0.1", port=plc.plc.port)
    await client.connect()
    try:
        header = (await client.read_input_registers(start, count=8, device_id=2)).registers
        n = header[1]
        points = []
        for offset in range(0, 4 * n, 125):
            reply = await client.read_input_registers(start + 8 + offset,
                                                      count=min(125, 4 * n - offset), device_id=2)
            points += reply.registers
    finally:
        client.close()
    values = [decode(points[i:i + 2], "float32", order) for i in range(0, 4 * n, 2)]
    return {"count": header[0], "time": decode(header[2:6], "float64", order),
            "period": decode(header[6:8], "float32", order), "position": values[0::2],
            "load": values[1::2]}


def test_a_wells_plc_serves_each_new_card_and_the_link_reads_it_once():
    """The card buffer holds the card the plant synthesized (read by a plain client, CDAB),
    the link hands the same card over with its measurement once, and the next stroke's
    card with the next scan."""
    async def scenario():
        plant, plc, link = well_plc_and_link()
        async with serving(plc, link):
            next_stroke(plant, plc)
            synthesized = plc.card
            buffer = await read_card_buffer(plc)
            assert buffer["count"] == 2 and buffer["time"] == synthesized.time == plant.t
            assert buffer["period"] == pytest.approx(synthesized.period, rel=FLOAT32)
            assert buffer["position"] == pytest.approx(synthesized.position, rel=FLOAT32)
            assert buffer["load"] == pytest.approx(synthesized.load, rel=FLOAT32)
            measurement = await link.measure()
            card = measurement.card
            assert measurement.time == card.time == synthesized.time
            assert (card.position, card.load) == (buffer["position"], buffer["load"])
            assert card.sample_time == pytest.approx(synthesized.sample_time, rel=FLOAT32)
            assert await link.measure() is None  # no new scan, nothing new
            await the_next_card_is_read(plant, plc, link, cards_read=2)

    asyncio.run(scenario())


def test_a_card_replaced_during_the_read_is_discarded_and_the_new_one_read_next():
    """The PLC records another stroke between two reads of the points: the link discards
    the torn card (the measurement still arrives) and reads the new card whole next scan."""
    async def scenario():
        plant, plc, link = well_plc_and_link()
        read = link.client.read_input_registers

        async def read_then_scan(address, **kwargs):
            """A real read, then a PLC scan that records a new stroke once, mid-card."""
            reply = await read(address, **kwargs)
            if address == plc.plc.card.points_address and plc.card_count == 1:
                next_stroke(plant, plc)
            return reply

        link.client.read_input_registers = read_then_scan
        async with serving(plc, link):
            first = await link.measure()
            assert first is not None and first.card is None
            assert link.status().cards_torn == 1 and link.status().cards_read == 0
            second = await link.measure()
            assert second.card is not None and second.card.time == plc.card.time == plant.t
            assert second.card.load == pytest.approx(plc.card.load, rel=FLOAT32)
            assert link.status().cards_read == 1

    asyncio.run(scenario())


def test_a_bad_card_is_refused_and_counted_and_nothing_else_is_lost(caplog):
    """A load cell reading 100 times high on one stroke: that card breaks the load bound
    and is refused (logged, counted); its measurement and the next stroke's card arrive."""
    asset = plants.resolve_site(parse_site(WELL)).assets[0]
    synthesize = plants.synthesizer_of(asset)
    strokes = itertools.count()

    def miscalibrated_once(x, u, d, p, rng, noise):
        values, card = synthesize(x, u, d, p, rng, noise)
        if next(strokes) == 1:
            card = msgspec.structs.replace(card, load=[100.0 * f for f in card.load])
        return values, card

    async def scenario():
        plant, plc, link = well_plc_and_link(miscalibrated_once)
        async with serving(plc, link):  # stroke 0
            assert (await link.measure()).card is not None
            next_stroke(plant, plc)  # stroke 1, miscalibrated
            measurement = await link.measure()
            assert measurement.time == plant.t and measurement.card is None
            assert set(measurement.values) == set(plant.model.outputs.names)
            assert link.status().cards_refused == 1 and link.error is None
            assert "card 2 refused: card load[" in caplog.text
            assert "must be finite and within +-500000" in caplog.text
            assert await link.measure() is None  # the bad card is not read again
            await the_next_card_is_read(plant, plc, link, cards_read=2)

    asyncio.run(scenario())
