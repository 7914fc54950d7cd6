"""The PLC simulator on its own (no Ray): a pymodbus client on loopback against one
simulated tank's PLC."""

from __future__ import annotations

import asyncio
import logging

import pytest
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


def test_a_mask_write_on_a_setpoint_register_is_refused_and_leaves_no_nan():
    """Function 22 (mask write) on the high word of m_oil's float32 would make it 0x7FC0..,
    a NaN, without the PLC's check; the PLC answers exception 1 (illegal function: use
    function 6, 16 or 23, which it checks), the register and the plant's input unchanged."""
    plc = tank_plc()
    before = plc.plant.u.copy()

    async def mask_write():
        await plc.start(scan_period_s=None)
        try:
            async with AsyncModbusTcpClient("127.0.0.1", port=plc.plc.port, timeout=5) as client:
                reply = await client.mask_write_register(address=0, and_mask=0x0000,
                                                         or_mask=0x7FC0, device_id=1)
                holding = await client.read_holding_registers(
                    0, count=plc.plc.holding_count, device_id=1)
        finally:
            await plc.stop()
        return reply, holding

    reply, holding = asyncio.run(mask_write())
    assert reply.isError() and reply.exception_code == ExcCodes.ILLEGAL_FUNCTION
    value = plc.plc.decode_setpoints(holding.registers)["m_oil"]
    assert value == pytest.approx(before[0], rel=2.0 ** -23)  # the float32 it held
    assert plc.plant.u[0] == before[0]
