"""The PLC simulator on its own (no Ray): a pymodbus client on loopback against one
simulated tank's PLC."""

from __future__ import annotations

import asyncio
import logging

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.constants import ExcCodes

import plants
from actors.plc import PlcSimulator
from engine.config import load_site
from engine.registers import plc_map
from engine.simulation import SimulatedPlant
from tests.conftest import TWO_TANKS, free_port


def tank_plc() -> PlcSimulator:
    """tank-01 of the two-tank site behind a PLC on a free loopback port, unit id 1."""
    asset = plants.resolve_site(load_site(TWO_TANKS), TWO_TANKS).assets[0]
    model = plants.model_of(asset)
    plant = SimulatedPlant(asset.id, model, asset.simulation, x0=asset.initial, u0=asset.inputs,
                           d=asset.disturbances, t0=1.7e9, synthesize=plants.synthesizer_of(asset))
    registers = plc_map(asset.id, model, host="127.0.0.1", port=free_port(), unit_id=1,
                        word_order="ABCD")
    return PlcSimulator(plant, registers, catch_up=lambda: None)


def test_a_request_for_a_unit_the_plc_does_not_serve_gets_exception_0x0b_and_no_traceback(
        caplog):
    """A client polling the wrong unit id gets Modbus exception 0x0B (gateway target device
    failed to respond), as from a gateway with no such unit on its line, not exception 4
    with a KeyError traceback in the plant's log; a write to that unit changes nothing, and
    the PLC's own unit keeps answering."""
    plc = tank_plc()

    async def poll():
        await plc.start(scan_period_s=None)
        try:
            async with AsyncModbusTcpClient("127.0.0.1", port=plc.plc.port, timeout=5) as client:
                wrong_read = await client.read_input_registers(0, count=2, device_id=7)
                wrong_write = await client.write_registers(0, [0, 0], device_id=7)
                holding = await client.read_holding_registers(
                    0, count=plc.plc.holding_count, device_id=1)
                inputs = await client.read_input_registers(
                    0, count=plc.plc.input_count, device_id=1)
        finally:
            await plc.stop()
        return wrong_read, wrong_write, holding, inputs

    before = list(plc._holding)
    with caplog.at_level(logging.DEBUG):
        wrong_read, wrong_write, holding, inputs = asyncio.run(poll())
    assert wrong_read.isError() and wrong_read.exception_code == ExcCodes.GATEWAY_NO_RESPONSE
    assert wrong_write.isError() and wrong_write.exception_code == ExcCodes.GATEWAY_NO_RESPONSE
    assert not holding.isError() and holding.registers == before
    assert not inputs.isError() and len(inputs.registers) == plc.plc.input_count
    assert "Traceback" not in caplog.text and "KeyError" not in caplog.text
