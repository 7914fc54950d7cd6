"""The historian's cards table, shared by both stores (engine.history_duckdb,
engine.history_postgres): one row per stroke card pair (engine.cards.CardRecord).

    cards (asset, time, period, surface_position[], surface_load[], downhole_position[],
           downhole_load[], fillage, fluid_pound, confidence, source)

Arrays are SQL arrays of doubles (DuckDB ``DOUBLE[]``, PostgreSQL ``double precision[]``),
SI like the record: positions m, loads N, times UNIX s, the period s.
"""

from __future__ import annotations

from typing import Any

from engine.cards import CardRecord

COLUMNS = CardRecord.__struct_fields__
"""The table's columns: the record's fields, in order."""
ARRAYS = ("surface_position", "surface_load", "downhole_position", "downhole_load")
DEFAULT_LIMIT = 20
"""Cards a query answers without a range: the last ones stored."""


def create_table(table: str, real: str, array: str, boolean: str, text: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of the cards table in a dialect's type names, and an
    index on (asset, time)."""
    types = {"asset": text, "time": real, "period": real, "fillage": real,
             "fluid_pound": boolean, "confidence": real, "source": text,
             **dict.fromkeys(ARRAYS, array)}
    columns = ", ".join(f"{name} {types[name]} NOT NULL" for name in COLUMNS)
    return (f"CREATE TABLE IF NOT EXISTS {table} ({columns}); "
            f"CREATE INDEX IF NOT EXISTS {table}_asset_time ON {table} (asset, time);")


def insert(table: str, placeholder: str) -> str:
    """The parametrised INSERT of one row (``placeholder``: "?" or "%s")."""
    return (f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES "
            f"({', '.join([placeholder] * len(COLUMNS))})")


def select(table: str, placeholder: str) -> str:
    """Cards of one asset with since <= time <= until, newest first, at most a limit:
    parameters (asset, since, until, limit)."""
    return (f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE asset = {placeholder} AND "
            f"time >= {placeholder} AND time <= {placeholder} ORDER BY time DESC "
            f"LIMIT {placeholder}")


def row(record: CardRecord) -> tuple[Any, ...]:
    return tuple(getattr(record, name) for name in COLUMNS)


def records(rows: list[tuple[Any, ...]]) -> list[CardRecord]:
    """Rows newest first (``select``) -> records oldest first."""
    out = []
    for values in reversed(rows):
        fields: dict[str, Any] = dict(zip(COLUMNS, values, strict=True))
        for name in ARRAYS:
            fields[name] = [float(v) for v in fields[name]]
        out.append(CardRecord(**fields))
    return out
