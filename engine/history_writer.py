"""HistoryWriter: takes batches of TickRecords off the control path and stores them.

``submit`` never blocks its caller: it puts the batch on a bounded queue, or, when the
queue is full (a slow or failed store), drops the batch and counts it. One thread
drains the queue, merges what has queued into one append, applies the storage policy
(engine.history_policy) and rolls up and retains (engine.historian) every
``maintain_every_s`` seconds of twin time. A batch whose append fails is dropped and
counted too; ``stats`` reports everything dropped, for a metric or a status answer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

import msgspec

from engine.historian import Historian
from engine.history import TickRecord, points_of
from engine.history_policy import StorageFilter

MERGE_BATCHES = 64
"""Queued batches merged into one append at most."""


class WriterStats(msgspec.Struct, frozen=True):
    """What a writer did: batches and records submitted, queued, stored and dropped
    (``dropped_*``: refused on a full queue or lost in a failed append), points stored,
    the last store error, and the storage policies that could not apply to a series."""

    submitted_batches: int
    dropped_batches: int
    dropped_records: int
    written_records: int
    written_points: int
    failed_appends: int
    queued_batches: int
    last_error: str = ""
    policy_problems: list[str] = []


class HistoryWriter:
    """Writes submitted TickRecords into ``historian.store`` on a thread of its own."""

    def __init__(self, historian: Historian, storage: StorageFilter | None = None, *,
                 queue_batches: int | None = None, maintain_every_s: float = 60.0) -> None:
        settings = historian.settings
        self.historian = historian
        self.storage = storage or StorageFilter(settings.signals, settings.default,
                                                historian.store.specs)
        size = settings.queue_batches if queue_batches is None else queue_batches
        if size < 1:
            raise ValueError(f"queue_batches: must be at least 1, got {size}")
        self.maintain_every_s = maintain_every_s
        self._queue: queue.Queue[list[TickRecord] | None] = queue.Queue(size)
        self._lock = threading.Lock()
        self._counts = {name: 0 for name in ("submitted_batches", "dropped_batches",
                                             "dropped_records", "written_records",
                                             "written_points", "failed_appends")}
        self._last_error = ""
        self._maintained: float | None = None
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def submit(self, records: Sequence[TickRecord]) -> bool:
        """Queue ``records`` for storing; False (and counted) if the queue is full."""
        batch = list(records)
        with self._lock:
            self._counts["submitted_batches"] += 1
        try:
            self._queue.put_nowait(batch)
        except queue.Full:
            self._count(dropped_batches=1, dropped_records=len(batch))
            return False
        return True

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(**self._counts, queued_batches=self._queue.qsize(),
                               last_error=self._last_error,
                               policy_problems=list(self.storage.problems.values()))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued batch is stored (or dropped); False on timeout."""
        done = threading.Event()
        waiter = threading.Thread(target=lambda: (self._queue.join(), done.set()), daemon=True)
        waiter.start()
        return done.wait(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Store what is queued and the storage policy's held points, then stop; False
        if the store did not take them within ``timeout`` s (the thread is left behind)."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        return self._append([])

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, increment in increments.items():
                self._counts[name] += increment

    def _run(self) -> None:
        while True:
            batches = [self._queue.get()]
            while len(batches) < MERGE_BATCHES and batches[-1] is not None:
                try:
                    batches.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = batches[-1] is None
            records = [r for batch in batches if batch is not None for r in batch]
            if records:
                if self._append(records):
                    self._maintain(max(r.time for r in records))
                else:
                    self._count(dropped_batches=len(batches) - stop,
                                dropped_records=len(records))
            for _ in batches:
                self._queue.task_done()
            if stop:
                return

    def _append(self, records: list[TickRecord]) -> bool:
        """Store ``records`` through the storage policy (none: the policy's held points)."""
        try:
            points = self.storage.apply(points_of(records)) if records else self.storage.flush()
            written = self.historian.store.append(points)
        except Exception as error:  # noqa: BLE001 - a failed store loses the batch only
            with self._lock:
                self._counts["failed_appends"] += 1
                self._last_error = f"{type(error).__name__}: {error}"
            return False
        self._count(written_records=len(records), written_points=written)
        return True

    def _maintain(self, now: float) -> None:
        if self._maintained is not None and now - self._maintained < self.maintain_every_s:
            return
        self._maintained = now
        try:
            self.historian.roll_up(now)
            self.historian.retain(now)
        except Exception as error:  # noqa: BLE001 - retried at the next maintenance
            with self._lock:
                self._last_error = f"{type(error).__name__}: {error}"
