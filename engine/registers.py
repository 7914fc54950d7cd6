"""The Modbus register map of a site, and IEEE 754 values in 16-bit registers.

Every asset is one PLC: one Modbus TCP server on its own port (``base_port`` plus the
asset's index in the site file), answering for one unit id, as a real plant gives each
PLC its own address. Addresses are 0-based protocol addresses (input register 0 is
30001 and holding register 0 is 40001 in 1-based Modicon notation).

Input registers (function code 4), read by the twin:

    0-3    sample_time   float64, s (twin UNIX time at which the PLC sampled its inputs)
    4-...  one float32 (two registers) per measured output, in the model's output order

Holding registers (function codes 3, 6 and 16), written by the twin's output gateway:

    0-...  one float32 per manipulated input, in the model's input order, then one per
           disturbance the site lets operators write (the asset's ``limits``: a
           terminal's loading draws and receipts), in the model's disturbance order

Word order, for the big-endian IEEE 754 bytes A B C D of a float32 (A holds the sign):

    ABCD   registers [AB, CD]   big-endian, the Modbus convention (default)
    CDAB   [CD, AB]             word swap
    BADC   [BA, DC]             byte swap within each word
    DCBA   [DC, BA]             little-endian

A float64 follows the same rule over its four registers (CDAB reverses the four words).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from engine.model import PlantModel

if TYPE_CHECKING:
    from engine.config import SiteConfig

WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
WORD_ORDERS: tuple[str, ...] = ("ABCD", "CDAB", "BADC", "DCBA")

_FORMATS = {"float32": ">f", "float64": ">d"}
SAMPLE_TIME = "sample_time"


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
class PlcMap:
    """Where one asset's PLC listens and what its registers hold."""

    asset: str
    host: str
    port: int
    unit_id: int
    word_order: str
    inputs: tuple[Register, ...]
    holding: tuple[Register, ...]

    @property
    def input_count(self) -> int:
        return sum(r.count for r in self.inputs)

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


def _decode_block(block: Sequence[Register], registers: Sequence[int], word_order: str
                  ) -> dict[str, float]:
    values = {}
    for r in block:
        values[r.signal] = decode(registers[r.address:r.address + r.count], r.kind, word_order)
    return values


def plc_map(asset: str, model: PlantModel, *, host: str, port: int, unit_id: int,
            word_order: str, writable: Sequence[str] = ()) -> PlcMap:
    """The register map of one asset's PLC from its model's outputs and inputs, and the
    disturbances among the ``writable`` signals."""
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
    if sum(r.count for r in inputs) > 125 or len(holding) * 2 > 123:
        raise ValueError(f"asset {asset!r}: too many signals for one Modbus read or write")
    return PlcMap(asset, host, port, unit_id, word_order, tuple(inputs), tuple(holding))


def site_map(site: SiteConfig, models: Mapping[str, PlantModel]) -> list[PlcMap]:
    """Every asset's PLC map: asset i listens on ``base_port + i``; per-asset overrides of
    word order and unit id win over the site's ``[modbus]`` settings."""
    modbus = site.modbus
    return [plc_map(asset.id, models[asset.id], host=modbus.host, port=modbus.base_port + i,
                    unit_id=asset.modbus.unit_id or modbus.unit_id,
                    word_order=asset.modbus.word_order or modbus.word_order,
                    writable=list(asset.limits))
            for i, asset in enumerate(site.assets)]


def format_map(plcs: Sequence[PlcMap]) -> str:
    """The register map as a table, one row per value."""
    header = ("asset", "signal", "direction", "table", "address", "type", "unit", "word order",
              "unit id", "endpoint")
    rows = [header]
    for plc in plcs:
        for r in (*plc.inputs, *plc.holding):
            rows.append((plc.asset, r.signal, r.direction, r.table,
                         f"{r.address}-{r.address + r.count - 1}", r.kind, r.unit, plc.word_order,
                         str(plc.unit_id), f"modbus://{plc.address}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)

