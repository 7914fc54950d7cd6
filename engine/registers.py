"""The Modbus register map of a site, and IEEE 754 values in 16-bit registers.

Every asset is one PLC: one Modbus TCP server on its own port (``base_port`` plus the
asset's index in the site file), answering for one unit id, as a real plant gives each
PLC its own address. Addresses are 0-based protocol addresses (input register 0 is
30001 and holding register 0 is 40001 in 1-based Modicon notation).

Input registers (function code 4), read by the twin:

    0-3    sample_time   float64, s (twin UNIX time at which the PLC sampled its inputs)
    4-...  one float32 (two registers) per measured output, in the model's output order

A rod pump's PLC follows them with its card buffer (:class:`CardBuffer`), the surface card
of the last stroke its controller recorded, as rod-pump controllers expose one, starting at
register B (the first after the measured outputs):

    B      card_count     uint16, cards recorded (0: none yet; after 65535 comes 1)
    B+1    card_points    uint16, n, samples in the card (at most the buffer's capacity)
    B+2-5  card_time      float64, s (twin UNIX time of the stroke's start)
    B+6-7  card_period    float32, s (the stroke period; samples are uniform in time:
                          sample i at card_time + i card_period / n)
    B+8+4i point i        float32 position, m (upward), then float32 load, N
                          (polished-rod load), i = 0..n-1

Every scan the twin reads the measured outputs and the buffer's header (B..B+7) in one
request; when card_count changed it reads the n points in requests of at most 125
registers, then card_count again: a count that moved meanwhile means the PLC recorded
another stroke during the read (a torn read), which is discarded. Float32 in the PLC's word
order, like every other value here, rather than 16-bit integers with a scale: one codec on
both ends and no scale registers that could change between two reads, at 0.01 N resolution
near 100 kN where an int16 over a +-500 kN range resolves 15 N; it costs 4 registers a
point (a 400-point card's 1600 take 13 reads).

Holding registers (function codes 3, 6 and 16), written by the twin's output gateway:

    0-...  one float32 per manipulated input, in the model's input order, then one per
           disturbance the site lets operators write (the asset's ``limits``: a
           terminal's loading draws and receipts), in the model's disturbance order

Word order, for the big-endian IEEE 754 bytes A B C D of a float32 (A holds the sign):

    ABCD   registers [AB, CD]   big-endian, the Modbus convention (default)
    CDAB   [CD, AB]             word swap
    BADC   [BA, DC]             byte swap within each word
    DCBA   [DC, BA]             little-endian

A float64 follows the same rule over its four registers (CDAB reverses the four words);
a uint16 is one register, most significant byte first, whatever the word order.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from engine.cards import SurfaceCard

if TYPE_CHECKING:  # engine.model imports CasADi, which engine.config's readers do not need
    from engine.config import SiteConfig
    from engine.model import PlantModel

WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
WORD_ORDERS: tuple[str, ...] = ("ABCD", "CDAB", "BADC", "DCBA")

_FORMATS = {"float32": ">f", "float64": ">d"}
SAMPLE_TIME = "sample_time"
MAX_READ = 125
"""Most registers one read (function code 3 or 4) returns (Modbus Application Protocol
v1.1b3, section 6.4)."""
CARD_HEADER = 8
"""Registers of a card buffer before its points: count, points, time, period."""
POINT_REGISTERS = 4
"""Registers per card point: float32 position, float32 load."""


def encode(value: float, kind: str, word_order: str) -> list[int]:
    """Registers (unsigned 16-bit) holding ``value`` as ``kind`` ("float32"/"float64")."""
    data = struct.pack(_FORMATS[kind], value)
    words = [data[i:i + 2] for i in range(0, len(data), 2)]
    if word_order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    if word_order in ("CDAB", "DCBA"):
        words = words[::-1]
    return [int.from_bytes(w, "big") for w in words]


def decode(registers: Sequence[int], kind: str, word_order: str) -> float:
    """Inverse of :func:`encode`."""
    words = [int(r).to_bytes(2, "big") for r in registers]
    if word_order in ("CDAB", "DCBA"):
        words = words[::-1]
    if word_order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    return struct.unpack(_FORMATS[kind], b"".join(words))[0]


def _count(kind: str) -> int:
    return struct.calcsize(_FORMATS[kind]) // 2


@dataclass(frozen=True)
class Register:
    """One value in a PLC's registers.

    Attributes:
        signal: signal name (or ``sample_time``).
        table: "input" (function code 4, read-only) or "holding" (3, 6, 16).
        address: first register, 0-based.
        kind: "float32" (two registers) or "float64" (four).
        unit: SI unit of the value.
    """

    signal: str
    table: str
    address: int
    kind: str
    unit: str

    @property
    def count(self) -> int:
        return _count(self.kind)

    @property
    def direction(self) -> str:
        if self.signal == SAMPLE_TIME:
            return "timestamp"
        return "measurement" if self.table == "input" else "setpoint"


@dataclass(frozen=True)
class CardBuffer:
    """Where a rod pump's PLC keeps the last stroke's surface card (layout in the module
    docstring).

    Attributes:
        address: first register (card_count), right after the measured outputs.
        capacity: most points the buffer holds.
    """

    address: int
    capacity: int

    @property
    def count(self) -> int:
        """Registers of the whole buffer."""
        return CARD_HEADER + POINT_REGISTERS * self.capacity

    @property
    def points_address(self) -> int:
        return self.address + CARD_HEADER

    def rows(self) -> tuple[tuple[str, str, str, str], ...]:
        """(name, registers, type, unit) of each part, for the printed map."""
        a, last = self.address, self.address + self.count - 1
        return (("card_count", f"{a}", "uint16", "1"),
                ("card_points", f"{a + 1}", "uint16", "1"),
                ("card_time", f"{a + 2}-{a + 5}", "float64", "s"),
                ("card_period", f"{a + 6}-{a + 7}", "float32", "s"),
                (f"card_point[0..{self.capacity - 1}]", f"{a + CARD_HEADER}-{last}",
                 "float32 position, load", "m, N"))


@dataclass(frozen=True)
class CardHeader:
    """A card buffer's header as read: ``count`` (0 before the first card), ``points``,
    ``time`` (stroke start, s) and ``period`` (s)."""

    count: int
    points: int
    time: float
    period: float


@dataclass(frozen=True)
class PlcMap:
    """Where one asset's PLC listens and what its registers hold (``card``: a rod pump's
    card buffer, None for a PLC without one)."""

    asset: str
    host: str
    port: int
    unit_id: int
    word_order: str
    inputs: tuple[Register, ...]
    holding: tuple[Register, ...]
    card: CardBuffer | None = None

    @property
    def input_count(self) -> int:
        """Registers of the sample time and the measured outputs."""
        return sum(r.count for r in self.inputs)

    @property
    def scan_count(self) -> int:
        """Registers the twin reads every scan: the measured outputs and the card
        buffer's header, if any."""
        return self.input_count + (0 if self.card is None else CARD_HEADER)

    @property
    def input_table_size(self) -> int:
        """Registers of the whole input table, the card buffer included."""
        return self.input_count + (0 if self.card is None else self.card.count)

    @property
    def holding_count(self) -> int:
        return sum(r.count for r in self.holding)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def encode_inputs(self, sample_time: float, values: Mapping[str, float]) -> list[int]:
        """Input-register image of one PLC scan: sample time, then every measured output."""
        registers: list[int] = []
        for r in self.inputs:
            value = sample_time if r.signal == SAMPLE_TIME else values[r.signal]
            registers += encode(value, r.kind, self.word_order)
        return registers

    def decode_inputs(self, registers: Sequence[int]) -> tuple[float, dict[str, float]]:
        """(sample time, {output: value}) from the input-register image."""
        values = _decode_block(self.inputs, registers, self.word_order)
        return values.pop(SAMPLE_TIME), values

    def encode_setpoints(self, values: Mapping[str, float]) -> list[int]:
        """Holding-register image of every manipulated input (all must be given)."""
        missing = [r.signal for r in self.holding if r.signal not in values]
        if missing:
            raise ValueError(f"asset {self.asset!r}: no value for setpoint(s) {missing}")
        registers: list[int] = []
        for r in self.holding:
            registers += encode(values[r.signal], r.kind, self.word_order)
        return registers

    def decode_setpoints(self, registers: Sequence[int]) -> dict[str, float]:
        return _decode_block(self.holding, registers, self.word_order)

    def _buffer(self) -> CardBuffer:
        if self.card is None:
            raise ValueError(f"asset {self.asset!r}: its PLC has no card buffer")
        return self.card

    def encode_card(self, count: int, card: SurfaceCard) -> list[int]:
        """The whole card buffer holding ``card`` as the ``count``-th one recorded (points
        past the card's are zero). The card's samples must be uniform in time; ValueError
        for a card longer than the buffer or a count outside 1..65535."""
        buffer = self._buffer()
        n = len(card.position)
        if not 1 <= n <= buffer.capacity:
            raise ValueError(f"asset {self.asset!r}: card of {n} samples, the card buffer "
                             f"holds 1..{buffer.capacity}")
        if not 1 <= count <= 0xFFFF:
            raise ValueError(f"asset {self.asset!r}: card_count {count} is outside 1..65535")
        registers = [count, n, *encode(card.time, "float64", self.word_order),
                     *encode(card.period, "float32", self.word_order)]
        for position, load in zip(card.position, card.load, strict=True):
            registers += encode(position, "float32", self.word_order)
            registers += encode(load, "float32", self.word_order)
        return registers + [0] * (buffer.count - len(registers))

    def decode_card_header(self, registers: Sequence[int]) -> CardHeader:
        """The header from the card buffer's first CARD_HEADER registers."""
        return CardHeader(count=int(registers[0]), points=int(registers[1]),
                          time=decode(registers[2:6], "float64", self.word_order),
                          period=decode(registers[6:8], "float32", self.word_order))

    def decode_card(self, header: CardHeader, points: Sequence[int]) -> SurfaceCard:
        """The surface card from its header and the registers of its ``header.points``
        points (not checked: see engine.cards.check_card)."""
        n = header.points
        values = [decode(points[i:i + 2], "float32", self.word_order)
                  for i in range(0, POINT_REGISTERS * n, 2)]
        return SurfaceCard(time=header.time, position=values[0::2], load=values[1::2],
                           sample_time=[header.period / n * i for i in range(n)])


def _decode_block(block: Sequence[Register], registers: Sequence[int], word_order: str
                  ) -> dict[str, float]:
    values = {}
    for r in block:
        values[r.signal] = decode(registers[r.address:r.address + r.count], r.kind, word_order)
    return values


def plc_map(asset: str, model: PlantModel, *, host: str, port: int, unit_id: int,
            word_order: str, writable: Sequence[str] = (), card_points: int = 0) -> PlcMap:
    """The register map of one asset's PLC from its model's outputs and inputs, the
    disturbances among the ``writable`` signals and, given ``card_points``, a card buffer
    of that many points."""
    if word_order not in WORD_ORDERS:
        raise ValueError(f"asset {asset!r}: word order {word_order!r} is not one of "
                         f"{', '.join(WORD_ORDERS)}")
    if not 1 <= unit_id <= 247:
        raise ValueError(f"asset {asset!r}: Modbus unit id {unit_id} is outside 1..247")
    inputs = [Register(SAMPLE_TIME, "input", 0, "float64", "s")]
    for signal in model.outputs:
        inputs.append(Register(signal.name, "input", inputs[-1].address + inputs[-1].count,
                               "float32", signal.unit))
    written = [*model.inputs, *(s for s in model.disturbances if s.name in writable)]
    holding = [Register(s.name, "holding", 2 * i, "float32", s.unit)
               for i, s in enumerate(written)]
    input_count = sum(r.count for r in inputs)
    card = CardBuffer(input_count, card_points) if card_points else None
    header = 0 if card is None else CARD_HEADER
    if input_count + header > MAX_READ or len(holding) * 2 > 123:
        raise ValueError(f"asset {asset!r}: too many signals for one Modbus read or write")
    if card is not None and not 1 <= card_points <= (0x10000 - card.points_address) // 4:
        raise ValueError(f"asset {asset!r}: a card buffer of {card_points} points does not "
                         "fit the input registers")
    return PlcMap(asset, host, port, unit_id, word_order, tuple(inputs), tuple(holding), card)


def site_map(site: SiteConfig, models: Mapping[str, PlantModel],
             card_points: Mapping[str, int] | None = None) -> list[PlcMap]:
    """Every asset's PLC map: asset i listens on ``base_port + i``; per-asset overrides of
    word order and unit id win over the site's ``[modbus]`` settings; an asset in
    ``card_points`` gets a card buffer of that many points."""
    modbus = site.modbus
    points = card_points or {}
    return [plc_map(asset.id, models[asset.id], host=modbus.host, port=modbus.base_port + i,
                    unit_id=asset.modbus.unit_id or modbus.unit_id,
                    word_order=asset.modbus.word_order or modbus.word_order,
                    writable=list(asset.limits), card_points=points.get(asset.id, 0))
            for i, asset in enumerate(site.assets)]


def format_map(plcs: Sequence[PlcMap]) -> str:
    """The register map as a table, one row per value."""
    header = ("asset", "signal", "direction", "table", "address", "type", "unit", "word order",
              "unit id", "endpoint")
    rows = [header]
    for plc in plcs:
        endpoint = (plc.word_order, str(plc.unit_id), f"modbus://{plc.address}")
        for r in plc.inputs:
            rows.append((plc.asset, r.signal, r.direction, r.table,
                         f"{r.address}-{r.address + r.count - 1}", r.kind, r.unit, *endpoint))
        for name, registers, kind, unit in (() if plc.card is None else plc.card.rows()):
            rows.append((plc.asset, name, "card", "input", registers, kind, unit, *endpoint))
        for r in plc.holding:
            rows.append((plc.asset, r.signal, r.direction, r.table,
                         f"{r.address}-{r.address + r.count - 1}", r.kind, r.unit, *endpoint))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)

