"""How a hosted asset (actors.asset) reaches its plant: measurements in, gated setpoints out.

    DirectLink   actor calls to its simulated plant in a plant shard, through the
                 asset's handle (actors.directory.AssetHandle; lock-step tests, no protocol)
    ModbusLink   a Modbus TCP client of the plant's PLC: input registers in, holding
                 registers out (engine.registers)
    IngestLink   measurements pushed by a gateway (MQTT) through AssetShard.ingest;
                 setpoints leave through the gateway's publisher

``measure()`` returns the newest measurement (a rod pump's carries its stroke's surface
card: a simulated plant's with each measurement, a PLC's when its card buffer holds a new
one; MQTT's do not: cards come over their own MQTT topic), or None
when there is nothing new (a lost connection, no message yet): the asset then keeps its
last measurement, whose age grows until the safety watchdog refuses controller writes.
``read_back()`` returns what the plant's output registers hold now (Modbus: the holding
registers), so that the asset can see a write that went around the gate; None where the
link cannot read them.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from engine.backoff import Backoff
from engine.cards import SurfaceCard, check_card
from engine.messages import Measurement, MeasurementPayload
from engine.registers import MAX_READ, POINT_REGISTERS, CardBuffer, CardHeader, PlcMap
from engine.status import DirectLinkStatus, LinkStatus, ModbusLinkStatus, MqttLinkStatus

log = logging.getLogger(__name__)


class PlantLink(Protocol):
    """How an asset reads its plant and writes its setpoints: DirectLink, ModbusLink or
    IngestLink."""

    async def measure(self) -> Measurement | None:
        """The plant's newest measurement not taken before, or None."""
        ...

    async def apply(self, setpoints: dict[str, float], all_inputs: dict[str, float]) -> None:
        """Write ``setpoints`` (signal -> SI value); ``all_inputs`` are every input's."""
        ...

    async def read_back(self) -> dict[str, float] | None:
        """What the plant's outputs hold now (signal -> SI value), or None."""
        ...

    def status(self) -> LinkStatus:
        """``kind`` and ``error`` (None when healthy), and what else the link knows."""
        ...

    async def close(self) -> None: ...


class DirectLink:
    """The simulated plant, called directly: ``plant`` is the asset's handle onto its
    plant shard (``plant.measure.remote()`` calls ``shard.measure.remote(asset_id)``)."""

    def __init__(self, plant) -> None:
        self.plant = plant

    async def measure(self) -> Measurement:
        return await self.plant.measure.remote()

    async def apply(self, setpoints: dict[str, float], all_inputs: dict[str, float]) -> None:
        await self.plant.apply.remote(setpoints)

    async def read_back(self) -> None:
        """Nothing to read back: a plant without a PLC has no way in around the asset."""

    def status(self) -> LinkStatus:
        return DirectLinkStatus()

    async def close(self) -> None:
        pass


class ModbusLink:
    """Modbus TCP client of one PLC. A failed request closes the connection; the next
    attempt waits d_k = min(retry_initial * 2^k, retry_max) wall seconds (k failures in
    a row) and measurements stay stale until a read succeeds again. A sample no newer
    than the last one read (a PLC that stopped scanning) is nothing new either.

    A PLC with a card buffer (engine.registers) is read in the same request up to the
    buffer's header; when its card_count changed, the points follow in reads of at most
    125 registers and card_count is read again. A count that moved meanwhile (a torn
    read: the PLC recorded another stroke) discards the card, and the next scan reads the
    new one; a card that breaks engine.cards.check_card is refused, logged and counted.
    Either way the measurement is delivered, and a card is read once."""

    def __init__(self, plc: PlcMap, *, timeout_s: float, retry_initial_s: float,
                 retry_max_s: float) -> None:
        self.plc = plc
        self.client = AsyncModbusTcpClient(plc.host, port=plc.port, timeout=timeout_s,
                                           retries=0, reconnect_delay=0)
        self.backoff = Backoff(retry_initial_s, retry_max_s)
        self.retry_at = 0.0
        self.error: str | None = None
        self.sample_time = float("-inf")
        self.card_count = 0
        """card_count of the last card read whole (0: none yet)."""
        self.cards_read = 0
        self.cards_refused = 0
        self.cards_torn = 0

    async def _connected(self) -> bool:
        if self.client.connected:
            return True
        if time.monotonic() < self.retry_at:
            return False
        if await self.client.connect():
            return True
        self._failed("cannot connect")
        return False

    def _failed(self, problem: str) -> None:
        self.client.close()
        delay = self.backoff.next_delay()
        self.retry_at = time.monotonic() + delay
        self.error = (f"Modbus {self.plc.address} unit {self.plc.unit_id}: {problem}; "
                      f"attempt {self.backoff.failures} failed, retrying in {delay:g} s; "
                      "measurements are stale")

    async def measure(self) -> Measurement | None:
        if not await self._connected():
            return None
        try:
            registers = await self._read_inputs(0, self.plc.scan_count)
        except ConnectionError as error:
            self._failed(str(error))
            return None
        self.backoff.reset()
        self.error = None
        sample_time, values = self.plc.decode_inputs(registers[:self.plc.input_count])
        if not sample_time > self.sample_time:
            return None
        self.sample_time = sample_time
        card = None
        if self.plc.card is not None:
            card = await self._new_card(self.plc.card, self.plc.decode_card_header(
                registers[self.plc.input_count:]))
        return Measurement(asset=self.plc.asset, time=sample_time, values=values, card=card)

    async def _read_inputs(self, address: int, count: int) -> list[int]:
        """``count`` input registers from ``address`` (function code 4, one request);
        ConnectionError saying what failed."""
        try:
            reply = await self.client.read_input_registers(address, count=count,
                                                           device_id=self.plc.unit_id)
        except (TimeoutError, ModbusException, OSError) as error:
            raise ConnectionError(f"read failed ({type(error).__name__}: {error})") from None
        if reply.isError():
            raise ConnectionError(f"read refused ({reply})")
        return list(reply.registers)

    async def _new_card(self, buffer: CardBuffer, header: CardHeader) -> SurfaceCard | None:
        """The card in ``buffer`` if ``header`` announces one not read yet, read whole and
        checked; None otherwise (nothing new, a torn read, a bad card or a failed read)."""
        if header.count in (0, self.card_count):
            return None
        try:
            if not 1 <= header.points <= buffer.capacity:
                raise ValueError(f"card_points: {header.points} must be within "
                                 f"1..{buffer.capacity}")
            points: list[int] = []
            size = POINT_REGISTERS * header.points
            for start in range(0, size, MAX_READ):
                points += await self._read_inputs(buffer.points_address + start,
                                                  min(MAX_READ, size - start))
            (count,) = await self._read_inputs(buffer.address, 1)
            if count != header.count:
                self.cards_torn += 1
                log.info("PLC %s: card %d replaced by card %d during the read; reading it "
                         "next scan", self.plc.asset, header.count, count)
                return None
            self.card_count = header.count
            card = check_card(self.plc.decode_card(header, points))
        except ConnectionError as error:
            self._failed(f"card {error}")
            return None
        except ValueError as error:
            self.card_count = header.count
            self.cards_refused += 1
            log.warning("PLC %s: card %d refused: %s", self.plc.asset, header.count, error)
            return None
        self.cards_read += 1
        return card

    async def apply(self, setpoints: dict[str, float], all_inputs: dict[str, float]) -> None:
        """Write every input's holding registers in one request (function code 16).
        Raises ConnectionError when the write does not reach the PLC."""
        if not await self._connected():
            raise ConnectionError(self.error)
        try:
            reply = await self.client.write_registers(
                0, self.plc.encode_setpoints(all_inputs), device_id=self.plc.unit_id)
        except (TimeoutError, ModbusException, OSError) as error:
            self._failed(f"write failed ({type(error).__name__}: {error})")
            raise ConnectionError(self.error) from None
        if reply.isError():
            raise ConnectionError(f"Modbus {self.plc.address}: PLC refused setpoints "
                                  f"{setpoints} ({reply})")

    async def read_back(self) -> dict[str, float] | None:
        """The holding registers, decoded (function code 3); None if they cannot be read
        now (``measure`` reports a lost connection)."""
        if not self.client.connected:
            return None
        try:
            reply = await self.client.read_holding_registers(
                0, count=self.plc.holding_count, device_id=self.plc.unit_id)
        except (TimeoutError, ModbusException, OSError) as error:
            self._failed(f"read-back failed ({type(error).__name__}: {error})")
            return None
        if reply.isError():
            self._failed(f"read-back refused ({reply})")
            return None
        return self.plc.decode_setpoints(reply.registers)

    def status(self) -> LinkStatus:
        return ModbusLinkStatus(address=self.plc.address, unit_id=self.plc.unit_id,
                                word_order=self.plc.word_order,
                                connected=self.client.connected, error=self.error,
                                reconnect_attempts=self.backoff.failures,
                                cards_read=self.cards_read, cards_refused=self.cards_refused,
                                cards_torn=self.cards_torn)

    async def close(self) -> None:
        self.client.close()


class IngestLink:
    """Measurements pushed in (AssetShard.ingest); setpoints go out through a publisher."""

    def __init__(self, asset: str) -> None:
        self.asset = asset
        self.latest: MeasurementPayload | None = None
        self.taken: float = float("-inf")
        self.received = 0

    def ingest(self, samples: list[MeasurementPayload]) -> None:
        for sample in samples:
            if self.latest is None or sample.ts >= self.latest.ts:
                self.latest = sample
        self.received += len(samples)

    async def measure(self) -> Measurement | None:
        if self.latest is None or self.latest.ts <= self.taken:
            return None
        self.taken = self.latest.ts
        return Measurement(asset=self.asset, time=self.latest.ts, values=self.latest.values)

    async def apply(self, setpoints: dict[str, float], all_inputs: dict[str, float]) -> None:
        """Nothing to write here: the asset publishes applied setpoints to the gateway."""

    async def read_back(self) -> None:
        """Nothing to read back: the gateway publishes setpoints, it does not hold them."""

    def status(self) -> LinkStatus:
        error = None if self.latest is not None else "no MQTT measurement received yet"
        return MqttLinkStatus(error=error, received=self.received,
                              latest_time=None if self.latest is None else self.latest.ts)

    async def close(self) -> None:
        pass
