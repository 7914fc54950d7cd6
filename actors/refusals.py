"""Writes refused at an edge (HTTP, OPC UA) before they reach the gate, put on record.

A write refused at the edge (a malformed body, a value of the wrong type, an unknown
signal, a value outside its signal's bounds) changes nothing, but the audit still says
who tried what and why: one record per refused write, outcome ``refused``, source the
edge (``http``, ``opcua``), the user, the reason (never the raw input: a reason is cut
to REASON_CHARS).

A client can make refusals as fast as it can send requests, so they must not cost the
audit one transaction each. The edge keeps them in memory and sends them to the safety
actor at most once every FLUSH_S wall seconds, in one call (SafetyAuthority.note_refused:
one transaction, no fsync of its own, since nothing waits on a refusal; the next
decision's commit syncs it). Within one interval at most MAX_PENDING refusals are kept
one by one; the rest are counted, and one record per asset and user says how many were
left out. A flood therefore costs the safety actor at most one call and MAX_PENDING + a
few rows per FLUSH_S, whatever its rate.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from engine.messages import RefusedWrite

FLUSH_S = 0.5
"""Wall seconds between two batches of refusals sent to the safety actor (at most)."""
MAX_PENDING = 200
"""Refusals kept one by one per batch; further ones are counted in a summary record."""
REASON_CHARS = 300
"""Longest reason kept (a reason names the problem, never echoes a large input)."""
SEND_TIMEOUT_S = 5.0
"""Wall seconds to wait for the safety actor to take a batch before trying again later."""

log = logging.getLogger(__name__)

Send = Callable[[list[RefusedWrite]], Awaitable[object]]
"""Hands a batch to the safety actor: ``lambda batch: safety.note_refused.remote(batch)``."""


class RefusalRecorder:
    """Collects one edge's refused writes and sends them in batches (see the module).

    Args:
        edge: the audit source of these records ("http", "opcua").
        send: hands a batch to the safety actor.
    """

    def __init__(self, edge: str, send: Send) -> None:
        self.edge = edge
        self.send = send
        self.pending: list[RefusedWrite] = []
        self.left_out: Counter[tuple[str, str]] = Counter()
        self._flushing: asyncio.Task | None = None

    def refused(self, asset: str, user: str, signal: str, reason: str,
                requested: float | None = None) -> None:
        """Note one refused write; it is sent with the next batch (within FLUSH_S)."""
        if len(self.pending) < MAX_PENDING:
            self.pending.append(RefusedWrite(
                asset=asset, user=user, source=self.edge, signal=signal[:100],
                requested=requested, reason=_cut(reason)))
        else:
            self.left_out[asset, user] += 1
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_later())

    async def flush(self) -> None:
        """Send what is pending now, in one call (a reader of the audit calls this first,
        so that it sees every refusal made before it asked). A batch the safety actor does
        not take stays pending, within MAX_PENDING."""
        batch = self.pending + [RefusedWrite(
            asset=asset, user=user, source=self.edge, signal="*", requested=None,
            reason=f"{count} further refused write(s) by {user} within {FLUSH_S:g} s, "
                   "not recorded one by one")
            for (asset, user), count in self.left_out.items()]
        if not batch:
            return
        self.pending, self.left_out = [], Counter()
        try:
            await asyncio.wait_for(self.send(batch), SEND_TIMEOUT_S)
        except Exception as error:  # safety restarting: keep them for the next batch
            log.warning("%d refused write(s) not yet on record (%s); retrying",
                        len(batch), type(error).__name__)
            self.pending = (batch + self.pending)[:MAX_PENDING]
            self._flushing = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_S)
        await self.flush()


def _cut(reason: str) -> str:
    return reason if len(reason) <= REASON_CHARS else reason[:REASON_CHARS - 3] + "..."
