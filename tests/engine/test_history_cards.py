"""The historian's cards table in both stores (DuckDB, and PostgreSQL on a real server):
stroke card pairs go in and come back whole, by asset and time range, the newest N."""

from __future__ import annotations

import math

import pytest

from engine.cards import CardRecord


def _card(asset: str, time: float, fillage: float) -> CardRecord:
    n = 40
    position = [1.27 * (1 - math.cos(2 * math.pi * k / n)) for k in range(n)]
    return CardRecord(
        asset=asset, time=time, period=7.5, surface_position=position,
        surface_load=[5e4 + 2e4 * math.sin(2 * math.pi * k / n) + 0.1 * k for k in range(n)],
        downhole_position=[0.9 * z for z in position],
        downhole_load=[2e4 * (k < n // 2) + 1e-3 * k for k in range(n)],
        fillage=fillage, fluid_pound=fillage < 0.7, confidence=0.97)


@pytest.fixture(params=["duckdb", "postgres"])
def store(request, tmp_path):
    if request.param == "duckdb":
        from engine.history_duckdb import DuckDBStore
        store = DuckDBStore(tmp_path / "var" / "history.duckdb")
    else:
        from engine.history_postgres import PostgresStore
        store = PostgresStore(request.getfixturevalue("postgres_dsn"))
    yield store
    store.close()


def test_card_pairs_round_trip_by_asset_range_and_limit(store):
    written = [_card("well-01", 1.7e9 + 7.5 * k, 0.9 - 0.1 * k) for k in range(4)]
    assert store.append_cards([*written[2:], _card("well-02", 1.7e9, 1.0), *written[:2]]) == 5
    assert store.read_cards("well-01", -math.inf, math.inf, 20) == written  # oldest first
    assert store.read_cards("well-01", 1.7e9 + 7.5, 1.7e9 + 15.0, 20) == written[1:3]
    assert store.read_cards("well-01", -math.inf, math.inf, 2) == written[2:]  # the newest
    assert store.read_cards("well-03", -math.inf, math.inf, 20) == []
    (other,) = store.read_cards("well-02", -math.inf, math.inf, 20)
    assert other.fluid_pound is False and other.source == "measured"


def test_stored_cards_outlive_the_store(tmp_path):
    from engine.history_duckdb import DuckDBStore

    path = tmp_path / "var" / "history.duckdb"
    first = DuckDBStore(path)
    first.append_cards([_card("well-01", 1.7e9, 0.6)])
    first.close()
    again = DuckDBStore(path)
    assert again.read_cards("well-01", -math.inf, math.inf, 20) == [_card("well-01", 1.7e9, 0.6)]
    again.close()
