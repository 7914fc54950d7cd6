"""The status board: the latest status every asset pushed, for everyone who reads it.

    shards --StatusBatch (one message per shard per tick instant)--> StatusBoard
    StatusBoard --StatusUpdate (every status changed since `since`)--> readers that ask
                                                                       (``changes``)
    StatusBoard --StatusBatch (as it arrived)--------------------------> subscribers
                                                                       (``subscribe``)

Readers never call into a shard, so a read cannot delay a tick, and a shard busy with its
numerics cannot delay a read. Two ways to read:

- ``changes(since, timeout_s)``: a long poll. Answers at once with every status that
  changed after version ``since`` (all of them for ``since`` = 0, or for a ``since`` from
  before a restart of the board), else waits up to ``timeout_s`` for the next push. The
  HTTP replica keeps its own copy this way; a live console (WebSocket) would too.
- ``subscribe(handle)``: the board calls ``handle.publish_statuses.remote(batch)`` with every
  batch it receives (msgpack-encoded engine.status.StatusBatch), fire and forget. The OPC UA
  gateway is one.

Messages are msgpack-encoded engine.status Structs (cheaper than pickling). The board holds
one status per asset (about 2 kB each) and does no numerics; it runs no CasADi.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec
import ray

from engine.status import AssetStatus, StatusBatch, StatusUpdate


class Board:
    """The board's code as a plain class (tests run it in-process); StatusBoard is the actor."""

    def __init__(self) -> None:
        self.version = 0
        """Counted up by every status received."""
        self.latest: dict[str, AssetStatus] = {}
        self.changed_at: dict[str, int] = {}
        """Asset id -> version at which its latest status arrived."""
        self.batches = 0
        self.subscribers: list[Any] = []
        self._wake = asyncio.Event()
        """Set (and replaced) at every change: what a waiting ``changes`` waits for."""
        self._decode = msgspec.msgpack.Decoder(StatusBatch)
        self._encode = msgspec.msgpack.Encoder()

    def publish(self, batch: bytes) -> int:
        """Take a shard's StatusBatch (msgpack); a status older than the one held (a
        message overtaken by a newer one) is dropped. Returns the board's version."""
        statuses = self._decode.decode(batch).statuses
        self.batches += 1
        for status in statuses:
            held = self.latest.get(status.id)
            if held is None or status.newer_than(held):
                self.version += 1
                self.latest[status.id] = status
                self.changed_at[status.id] = self.version
        for subscriber in self.subscribers:
            subscriber.publish_statuses.remote(batch)
        self._wake.set()
        self._wake = asyncio.Event()
        return self.version

    def subscribe(self, subscriber: Any) -> None:
        """Send every batch received from now on to ``subscriber.publish_statuses``."""
        self.subscribers.append(subscriber)

    async def changes(self, since: int, timeout_s: float) -> bytes:
        """Every status that changed after version ``since``, as a msgpack StatusUpdate;
        waits up to ``timeout_s`` for one if there is none yet (then answers none)."""
        if since == self.version:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout_s)
        fresh = since > self.version  # the reader saw a board from before a restart
        statuses = [self.latest[asset] for asset, at in self.changed_at.items()
                    if fresh or at > since]
        return self._encode.encode(StatusUpdate(version=self.version, statuses=statuses))

    def board_status(self) -> dict[str, Any]:
        return {"version": self.version, "assets": len(self.latest), "batches": self.batches,
                "subscribers": len(self.subscribers)}


@ray.remote(num_cpus=0, max_restarts=-1)
class StatusBoard(Board):
    """A Board as a Ray actor (named ``status:<site>``). Restarted empty when killed: the
    shards fill it again at their next tick."""
