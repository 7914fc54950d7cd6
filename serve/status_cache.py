"""The HTTP replica's copy of every asset's status, kept by following the status board.

    status board --changes(since) long poll--> StatusCache --> GET /assets/{id}, GET /assets,
                                                              GET /healthz, GET /fleet
                                                          --> listeners (WebSocket /live)

A read is answered from the copy, without a call into the asset's shard, while the copy
is fresh: the fleet runs in real time and the asset's latest status arrived no longer
ago than ``STALE_PERIODS`` of its periods (in wall seconds at the clock's speed) plus
``STALE_WALL_S`` (every asset ticks, in every mode, so a live asset pushes a new status
every period). Otherwise
the read asks the shard, as before pushes existed: in lock-step (tests, where twin time
moves only when asked and a read must see the instants just run), before an asset's
first tick, and when its shard is down (the question then fails: 503). After a write
through this replica the next read of that asset asks the shard too, so a client reads
its own write; the answer replaces the copy, and a pushed status replaces it only if it
is newer (engine.status.AssetStatus.newer_than).

The body of ``GET /assets/{id}`` is the JSON of the status Struct itself, encoded once
per status received (engine.status.encode_json).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
import ray

from engine.clock import ClockSpec
from engine.status import AssetStatus, StatusUpdate, encode_json

log = logging.getLogger(__name__)

STALE_PERIODS = 2.0
"""A pushed status older than this many periods of its asset is not served."""
STALE_WALL_S = 1.0
"""Wall seconds of delivery slack on top of STALE_PERIODS."""
LONG_POLL_S = 10.0
"""How long one question to the board waits for a change, wall s."""
RETRY_S = 1.0
"""Wall seconds before asking a board that failed again."""
LISTEN_QUEUE = 1000
"""Statuses a live listener may fall behind before it loses the oldest."""


class StatusCache:
    """The latest status of each asset, as pushed (through the board) or read directly."""

    def __init__(self, board: Any, clock: ClockSpec | None) -> None:
        """``board``: the status board's handle (None: nothing is pushed, every read asks
        the shard); ``clock``: the site's clock (lock-step: every read asks the shard)."""
        self.board = board
        self.speed: float | None = (None if board is None or clock is None or clock.lockstep
                                    else clock.speed)
        """Twin seconds per wall second; None: every read asks the shard."""
        self.version = 0
        self.statuses: dict[str, AssetStatus] = {}
        self.received: dict[str, float] = {}
        """Asset id -> time.monotonic() its status arrived."""
        self._bodies: dict[str, bytes] = {}
        self._ask_shard: set[str] = set()
        self._following: asyncio.Task | None = None
        self._updates = msgspec.msgpack.Decoder(StatusUpdate)
        self._listeners: set[asyncio.Queue[AssetStatus]] = set()

    def fresh(self, asset_id: str) -> AssetStatus | None:
        """The asset's status if it may be served without asking its shard, else None."""
        if self.speed is None:
            return None
        self._follow()
        status = self.statuses.get(asset_id)
        if status is None or asset_id in self._ask_shard:
            return None
        age = time.monotonic() - self.received[asset_id]
        if age > STALE_PERIODS * status.period_s / self.speed + STALE_WALL_S:
            return None
        return status

    def body(self, status: AssetStatus) -> bytes:
        """The JSON of ``status`` (encoded once per status)."""
        if self.statuses.get(status.id) is not status:
            return encode_json(status)
        body = self._bodies.get(status.id)
        if body is None:
            body = self._bodies[status.id] = encode_json(status)
        return body

    def read(self, data: dict[str, Any]) -> AssetStatus:
        """A status the shard answered (plain data): kept unless a newer one was pushed
        meanwhile; returned either way."""
        status = msgspec.convert(data, AssetStatus)
        self._ask_shard.discard(status.id)
        self._keep(status)
        return status

    def written(self, asset_id: str) -> None:
        """A write through this replica changed the asset: ask its shard next time."""
        self._ask_shard.add(asset_id)

    def listen(self) -> asyncio.Queue[AssetStatus]:
        """A queue that gets every newer status from now on, as it arrives (a live
        console's feed; it follows the board, in lock-step too). A listener that falls
        LISTEN_QUEUE statuses behind loses the oldest: it wants the present. Raises
        LookupError if nothing is pushed (no board)."""
        if self.board is None:
            raise LookupError("no status board: this fleet pushes no statuses")
        queue: asyncio.Queue[AssetStatus] = asyncio.Queue(LISTEN_QUEUE)
        self._listeners.add(queue)
        self._follow()
        return queue

    def unlisten(self, queue: asyncio.Queue[AssetStatus]) -> None:
        self._listeners.discard(queue)

    def _keep(self, status: AssetStatus) -> None:
        held = self.statuses.get(status.id)
        if held is None or status.newer_than(held):
            self.statuses[status.id] = status
            self.received[status.id] = time.monotonic()
            self._bodies.pop(status.id, None)
            for queue in self._listeners:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(status)

    def _follow(self) -> None:
        """Start following the board (once, in the replica's event loop)."""
        if self._following is None or self._following.done():
            self._following = asyncio.get_running_loop().create_task(self._follow_board())

    async def _follow_board(self) -> None:
        while True:
            try:
                update = self._updates.decode(
                    await self.board.changes.remote(self.version, LONG_POLL_S))
            except (ray.exceptions.RayError, msgspec.DecodeError) as error:
                log.warning("status board: %s; asking again in %g s", error, RETRY_S)
                await asyncio.sleep(RETRY_S)
                continue
            for status in update.statuses:
                self._keep(status)
            self.version = update.version
