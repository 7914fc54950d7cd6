"""The fleet's historian: one actor owning the store, and each shard's feed into it.

``HistorianActor`` (named ``historian:<site>``) opens the store the site file's
``[historian]`` selects (engine.historian.open_store: a DuckDB file, on the driver's node
like the audit database, or a PostgreSQL server), writes what the shards send through an
engine.history_writer.HistoryWriter (its own thread, a bounded queue, batches merged into
one append) and answers history queries (engine.historian.Historian).

``HistoryFeed`` is a shard's end. After each tick instant the shard sends the TickRecords
of the assets it ticked as one batch, fire and forget: the tick never waits for the
historian. A rod pump's stroke card pairs (engine.cards.CardRecord) go the same way, one
call per card, stored in the cards table (engine.history_cards) as they arrive.
At most ``MAX_IN_FLIGHT`` batches are unanswered at a time; a batch beyond
that (a slow historian) is dropped, and so is one whose call fails (a dead or restarting
historian); both are counted per asset, for ``twinloop_history_dropped_records_total``.
The writer counts what it drops itself (a full queue, a failed append): ``stats``.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
from collections.abc import Sequence
from typing import Any, Literal

import msgspec
import pyarrow.csv
import ray

from engine.cards import CardRecord
from engine.config import HistorianSettings
from engine.historian import Historian, SeriesHistory, open_store, to_table
from engine.history import SeriesSpec, TickRecord
from engine.history_cards import DEFAULT_LIMIT
from engine.history_writer import HistoryWriter, WriterStats

MAX_IN_FLIGHT = 8
"""Batches a shard leaves unanswered by the historian before it drops the next."""
DEFAULT_WINDOW_S = 3600.0
"""A history query without ``since`` covers this long before ``until``."""
CONCURRENT_CALLS = 4
"""Calls the historian actor runs at once, each on a thread of its own."""
MAX_CARDS = 1000
"""Most card pairs one cards query answers."""
QueryMode = Literal["raw", "interpolated", "aggregate"]


class FeedStats(msgspec.Struct, frozen=True):
    """What a shard's feed sent and dropped: batches, and records per asset."""

    sent_batches: int
    dropped_batches: int
    dropped_records: dict[str, int]
    last_error: str = ""


class HistoryFeed:
    """A shard's fire-and-forget batches to ``historian`` (an actor handle; None: no
    historian, nothing is sent). Use inside the shard's event loop."""

    def __init__(self, historian: Any, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.historian = historian
        self.max_in_flight = max_in_flight
        self._in_flight: set[asyncio.Task] = set()
        self._undeclared: list[SeriesSpec] = []
        self._sent = 0
        self._dropped = 0
        self._dropped_records: dict[str, int] = {}
        self._last_error = ""

    def declare(self, specs: Sequence[SeriesSpec]) -> None:
        """Series to declare (with their units) before any batch is stored: they go with
        every batch until one is answered (the historian may run its calls in any order,
        and a series stored before it is declared would keep no unit)."""
        self._undeclared.extend(specs)

    def send(self, records: Sequence[TickRecord]) -> None:
        """Hand ``records`` to the historian without waiting; drop them (counted) when
        ``max_in_flight`` batches are still unanswered."""
        if self.historian is None or not records:
            return
        if len(self._in_flight) >= self.max_in_flight:
            self._drop(records, "historian slow: "
                       f"{self.max_in_flight} batches unanswered")
            return
        task = asyncio.get_running_loop().create_task(
            self._deliver(list(records), list(self._undeclared)))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        self._sent += 1

    def send_cards(self, card: CardRecord) -> None:
        """Hand one stroke's card pair to the historian without waiting; dropped (counted
        as a record of its asset) like a batch of ``send``."""
        if self.historian is None:
            return
        if len(self._in_flight) >= self.max_in_flight:
            self._drop([card], "historian slow: "
                       f"{self.max_in_flight} batches unanswered")
            return
        task = asyncio.get_running_loop().create_task(self._deliver_card(card))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        self._sent += 1

    async def _deliver_card(self, card: CardRecord) -> None:
        try:
            await self.historian.record_cards.remote([card])
        except Exception as error:  # noqa: BLE001 - a dead historian loses this card only
            self._drop([card], f"{type(error).__name__}: {error}")

    async def _deliver(self, records: list[TickRecord], specs: list[SeriesSpec]) -> None:
        try:
            await self.historian.record.remote(records, specs)
        except Exception as error:  # noqa: BLE001 - a dead historian loses this batch only
            self._drop(records, f"{type(error).__name__}: {error}")
            return
        declared = set(specs)
        self._undeclared = [s for s in self._undeclared if s not in declared]

    def _drop(self, records: Sequence[TickRecord | CardRecord], why: str) -> None:
        self._dropped += 1
        self._last_error = why
        for record in records:
            self._dropped_records[record.asset] = self._dropped_records.get(record.asset, 0) + 1

    async def drain(self) -> None:
        """Wait until every batch sent has been answered (or dropped)."""
        await asyncio.gather(*self._in_flight)

    def dropped_records(self, asset: str) -> int:
        return self._dropped_records.get(asset, 0)

    def stats(self) -> FeedStats:
        return FeedStats(self._sent, self._dropped, dict(self._dropped_records),
                         self._last_error)


def query_history(historian: Historian, assets: list[str], signals: list[str],
                  since: float | None, until: float | None, mode: QueryMode = "raw",
                  step: float = 60.0) -> list[SeriesHistory]:
    """History of ``signals`` of ``assets`` (SI, each series with its unit) over
    [since, until] (UNIX s of the twin's clock; ``until`` default: the last recorded
    point, ``since`` default: DEFAULT_WINDOW_S before ``until``). ``raw``: the stored
    points; ``interpolated``: values every ``step`` s; ``aggregate``: min, max, mean,
    last, count and time-weighted mean per ``step`` s (engine.history_query).
    ValueError names the signal or the bound; LookupError an asset never recorded."""
    known = {asset for asset, _ in historian.store.specs()}
    for asset in assets:
        if asset not in known:
            raise LookupError(f"asset {asset!r} has no recorded history")
    if until is None:
        span = historian.store.time_range()
        until = span[1] if span is not None else 0.0
    if since is None:
        since = until - DEFAULT_WINDOW_S
    if mode == "raw":
        return historian.recorded(assets, signals, since, until)
    if mode == "interpolated":
        return historian.interpolated(assets, signals, since, until, step)
    if mode == "aggregate":
        return historian.aggregated(assets, signals, since, until, step)
    raise ValueError(f"mode: {mode!r} is not 'raw', 'interpolated' or 'aggregate'")


class HistorianService:
    """The historian actor's code as a plain class (tests run it in-process)."""

    def __init__(self, settings: HistorianSettings) -> None:
        self.settings = settings
        self.historian = Historian(open_store(settings), settings)
        self.writer = HistoryWriter(self.historian)

    def record(self, records: list[TickRecord], specs: list[SeriesSpec] | None = None) -> bool:
        """Declare ``specs`` and queue ``records`` for the writer; False if its queue was
        full (the batch is dropped and counted in ``stats``)."""
        if specs:
            self.historian.store.declare(specs)
        return self.writer.submit(records)

    def stats(self) -> WriterStats:
        return self.writer.stats()

    def record_cards(self, cards: list[CardRecord]) -> int:
        """Store stroke card pairs now (a few per stroke, not worth the writer's queue);
        returns how many."""
        return self.historian.store.append_cards(cards)

    def cards(self, asset: str, since: float | None, until: float | None,
              limit: int = DEFAULT_LIMIT) -> list[CardRecord]:
        """The newest ``limit`` card pairs of ``asset`` with since <= time <= until (UNIX
        s; None: unbounded), oldest first. ValueError names a bad range or limit."""
        low = -math.inf if since is None else since
        high = math.inf if until is None else until
        if math.isnan(low) or math.isnan(high) or low > high:
            raise ValueError(f"cards: since {since} must not be after until {until}")
        if not 1 <= limit <= MAX_CARDS:
            raise ValueError(f"cards: limit {limit} must be within 1..{MAX_CARDS}")
        return self.historian.store.read_cards(asset, low, high, limit)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued batch is stored; False on timeout."""
        return self.writer.flush(timeout)

    def query(self, assets: list[str], signals: list[str], since: float | None,
              until: float | None, mode: QueryMode = "raw",
              step: float = 60.0) -> list[SeriesHistory]:
        """query_history on this historian."""
        return query_history(self.historian, assets, signals, since, until, mode, step)

    def query_json(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """``query``'s answer as JSON-ready dicts (NaN as None)."""
        return [h.as_dict() for h in self.query(*args, **kwargs)]

    def query_csv(self, *args: Any, **kwargs: Any) -> bytes:
        """``query``'s answer as CSV: one row per series and time (engine.historian.to_table)."""
        table = to_table(self.query(*args, **kwargs))
        out = io.BytesIO()
        if table.num_columns:
            pyarrow.csv.write_csv(table, out)
        return out.getvalue()

    def close(self, timeout: float = 30.0) -> bool:
        """Store what is queued, then close the store."""
        done = self.writer.close(timeout)
        self.historian.store.close()
        return done


@ray.remote(num_cpus=0, max_restarts=-1)
class HistorianActor(HistorianService):
    """A HistorianService as a Ray actor; Ray restarts a killed one (it reopens the store:
    what was stored stays, the batches in flight are lost and counted by the feeds).
    Start it with start_historian."""

    def __init__(self, settings: HistorianSettings) -> None:
        # this process writes only the history: every file it makes (the store, DuckDB's
        # write-ahead log) is its owner's only, as the audit database is
        os.umask(0o077)
        super().__init__(settings)


def start_historian(settings: HistorianSettings, **options: Any) -> Any:
    """A HistorianActor over ``settings`` answering CONCURRENT_CALLS calls at a time (a
    query does not hold up the shards' batches); ``options`` are Ray actor options
    (name, namespace, scheduling_strategy)."""
    actor = HistorianActor.options(  # type: ignore[attr-defined]  # ray.remote class
        max_concurrency=CONCURRENT_CALLS, **options)
    return actor.remote(settings)

