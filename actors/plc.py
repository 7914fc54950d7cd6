"""A PLC simulator: a Modbus TCP server (pymodbus) in front of one simulated plant.

Like a real PLC it scans: it samples the plant's instruments into its input registers
(sample time, then every measured output; see engine.registers), every ``scan_period_s``
wall seconds in real time, or whenever the plant is advanced in lock-step. A rod pump's
PLC also records the surface card of each new stroke (a card whose start is at least a
stroke period after the last one recorded) in its card buffer
(engine.registers.CardBuffer), counting the cards in card_count; a scan writes the whole
input table at once, so one request never sees half a card. A write to its holding
registers is decoded, checked against the inputs' engineering bounds and applied to the
plant at once; a value that is not a finite number inside its bounds is refused with
Modbus exception 3 (illegal data value), and the plant keeps its inputs. Function 22
(mask write register) on a holding register is refused with Modbus exception 1 (illegal
function: the function is not an allowable action for that register), as a PLC that
write-protects its setpoints does: it would set single bits of half a float32 (one mask
can make a NaN) past that check; functions 6, 16 and 23 write them, checked. So no value
outside its bounds, and no NaN, lands in a holding register. It answers only its own
unit id: a request for another one gets Modbus exception 0x0B (gateway target device
failed to respond), what a Modbus TCP gateway answers for a unit that is not on its line
(Modbus Application Protocol v1.1b3, section 7), and nothing is read or written.

It runs in the event loop of the plant actor that owns it (no process of its own).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simcore import SimCore
from pymodbus.simulator.simruntime import SimRuntime

from engine.cards import SurfaceCard
from engine.registers import PlcMap
from engine.simulation import SimulatedPlant

log = logging.getLogger(__name__)

_WRITES = (6, 16, 23)
"""Function codes that write holding registers, checked before they are applied."""
_MASK_WRITE = 22
"""Mask write register: refused on the holding registers (they all hold setpoints)."""


class PlcSimulator:
    """Modbus TCP server answering for one plant at ``plc.host:plc.port``, unit ``plc.unit_id``.

    Args:
        plant: the simulated plant (true state) the PLC fronts.
        plc: its register map.
        catch_up: brings the plant to the current time before it is sampled or written.
    """

    def __init__(self, plant: SimulatedPlant, plc: PlcMap, catch_up: Callable[[], None]) -> None:
        self.plant = plant
        self.plc = plc
        self.catch_up = catch_up
        self.server: ModbusTcpServer | None = None
        self._device: SimRuntime | None = None  # the server's register memory while serving
        self._inputs = [0] * plc.input_table_size
        self.card: SurfaceCard | None = None
        """The surface card in the card buffer now (the plant's), None before the first."""
        self.card_count = 0
        """Cards recorded, as card_count holds it (0: none yet; after 65535 comes 1)."""
        self._card_image: list[int] = [] if plc.card is None else [0] * plc.card.count
        model = plant.model
        self._holding = plc.encode_setpoints({**model.inputs.mapping(plant.u),
                                              **model.disturbances.mapping(plant.d)})
        self._scanner: asyncio.Task | None = None
        self.refused_writes = 0

    @property
    def running(self) -> bool:
        return self.server is not None

    async def start(self, scan_period_s: float | None) -> None:
        """Listen (and, given a period, scan in real time). Register contents survive
        a stop and start, as a PLC's memory survives a network outage."""
        if self.server is not None:
            return
        self.scan()
        registers = (
            [SimData(0, values=False, datatype=DataType.BITS)],
            [SimData(0, values=False, datatype=DataType.BITS)],
            [SimData(0, values=self._holding, datatype=DataType.REGISTERS)],
            [SimData(0, values=self._inputs, datatype=DataType.REGISTERS, readonly=True)],
        )
        device = SimDevice(self.plc.unit_id, simdata=registers, action=self._on_access)
        self.server = ModbusTcpServer(device, address=(self.plc.host, self.plc.port))
        self.server.context = _OwnUnitsOnly(device)
        await self.server.serve_forever(background=True)
        self._device = self.server.context.devices[self.plc.unit_id]
        if scan_period_s is not None:
            self._scanner = asyncio.create_task(self._scan_every(scan_period_s))

    async def stop(self) -> None:
        """Stop listening and close every client connection."""
        if self._scanner is not None:
            self._scanner.cancel()
            self._scanner = None
        if self.server is not None:
            self._holding = list(self._registers("h"))
            self._inputs = list(self._registers("i"))
            await self.server.shutdown()
            self.server = None

    def scan(self) -> None:
        """Sample the plant's instruments into the input registers."""
        self.catch_up()
        measurement = self.plant.measure()
        card = measurement.card
        if self.plc.card is not None and card is not None and (
                self.card is None or card.time >= self.card.time + self.card.period):
            self.card_count = self.card_count % 0xFFFF + 1
            self._card_image = self.plc.encode_card(self.card_count, card)
            self.card = card
        image = self.plc.encode_inputs(measurement.time, measurement.values) + self._card_image
        if self.server is None:
            self._inputs = image
        else:
            self._registers("i")[:] = image

    async def _scan_every(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            try:
                self.scan()
            except Exception:  # a failed scan leaves the last sample; the next one tries again
                log.exception("PLC %s: scan failed", self.plc.asset)

    def _registers(self, table: str) -> list[int]:
        """The server's live register list of ``table`` ("h" holding, "i" input)."""
        if self._device is None:
            raise RuntimeError(f"PLC {self.plc.asset}: not serving (start it first)")
        return self._device.block[table][2]

    async def _on_access(self, function_code: int, start_address: int, address: int, count: int,
                         registers: list[int], values: list[int] | list[bool] | None
                         ) -> ExcCodes | None:
        """pymodbus calls this before serving a request; apply holding-register writes
        and refuse mask writes (pymodbus reads the register first, then writes it, both
        with function code 22: the read is refused)."""
        if function_code == _MASK_WRITE:
            self.refused_writes += 1
            log.warning("PLC %s: mask write (function 22) of holding register %d refused",
                        self.plc.asset, address)
            return ExcCodes.ILLEGAL_FUNCTION
        if function_code not in _WRITES or not values:
            return None
        image = list(registers)
        offset = address - start_address
        image[offset:offset + len(values)] = values
        try:
            setpoints = _checked(self.plant.model, self.plc.decode_setpoints(image))
        except ValueError as error:
            self.refused_writes += 1
            log.warning("PLC %s: write refused: %s", self.plc.asset, error)
            return ExcCodes.ILLEGAL_VALUE
        self.catch_up()
        self.plant.apply(setpoints)
        return None


class _OwnUnitsOnly(SimCore):
    """pymodbus's register memory, answering only for the devices it holds.

    pymodbus 3.16's SimCore looks an unknown unit id up as unit 0 and fails with a
    KeyError, which the server logs as a traceback and answers with exception 4 (server
    device failure); raising NoSuchIdException instead makes the server answer 0x0B
    (gateway target device failed to respond) with one log line."""

    def _check(self, device_id: int) -> None:
        if device_id not in self.devices:
            raise NoSuchIdException(f"unit id {device_id} is not served here "
                                    f"(units: {', '.join(map(str, self.devices))})")

    async def async_getValues(self, device_id, func_code, address, count=1):
        self._check(device_id)
        return await super().async_getValues(device_id, func_code, address, count)

    async def async_setValues(self, device_id, func_code, address, values):
        self._check(device_id)
        return await super().async_setValues(device_id, func_code, address, values)


def _checked(model, setpoints: dict[str, float]) -> dict[str, float]:
    """Holding-register values inside their signals' bounds (ValueError naming the
    signal and the bound otherwise): inputs, and the writable disturbances."""
    inputs = model.inputs.check({n: v for n, v in setpoints.items() if n in model.inputs})
    return {**inputs, **model.disturbances.check(
        {n: v for n, v in setpoints.items() if n not in model.inputs})}
