"""Durable audit log: every safety decision, one row per signal, in SQLite.

The database runs in WAL mode with ``synchronous=FULL``: a committed record survives
a kill -9 of the writing process and a power loss. Records are appended, never
updated. Queries filter by asset, time range and outcome.

Beside the records, a key-value ``state`` table holds what the safety actor must
remember across a restart (modes, last applied values, operator limits, approval
queues, what operators and engineers decided: references, controller tuning and
limits; asset checkpoints) as JSON; a state change is committed in the same
transaction as the records of the decision that made it, so the two never disagree.

Group commit: the safety authority appends all records and state of one batch of
decisions in one transaction, so a batch costs one fsync of the WAL, not one per
decision. Entries that need not be on disk before anyone acts (asset checkpoints) are
appended with ``durable=False``: committed without an fsync of their own (they survive
a kill -9 of the process at once, a power loss once the next durable commit syncs the WAL).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.files import private_file
from engine.messages import AuditRecord, Outcome

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    time      REAL NOT NULL,
    asset     TEXT NOT NULL,
    user      TEXT NOT NULL,
    source    TEXT NOT NULL,
    signal    TEXT NOT NULL,
    requested REAL,
    applied   REAL,
    outcome   TEXT NOT NULL,
    reason    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_asset_time ON audit (asset, time);
CREATE TABLE IF NOT EXISTS state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_COLUMNS = ("time", "asset", "user", "source", "signal", "requested", "applied", "outcome",
            "reason")
_INSERT = (f"INSERT INTO audit ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' * len(_COLUMNS))})")


class AuditLog:
    """Append-only audit records in one SQLite file, created with its folder if absent,
    both readable by their owner only (engine.files; SQLite gives the -wal and -shm files
    the database's mode)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            private_file(self.path)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.synced_commits = 0
        """Transactions committed with a sync to disk (one fsync of the WAL each)."""

    def append(self, records: Iterable[AuditRecord],
               state: Mapping[str, Any] | None = None, *, durable: bool = True) -> int:
        """Write records, and replace the ``state`` entries given (JSON-able values),
        in one transaction, synced to disk before returning unless ``durable`` is False;
        returns how many records."""
        rows = [tuple(getattr(r, c) for c in _COLUMNS) for r in records]
        entries = [(key, json.dumps(value)) for key, value in (state or {}).items()]
        if not (rows or entries):
            return 0
        if not durable:
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: no sync at commit
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(_INSERT, rows)
                self._db.executemany("INSERT OR REPLACE INTO state (key, value) VALUES (?, ?)",
                                     entries)
        finally:
            if not durable:
                self._db.execute("PRAGMA synchronous=FULL")
        self.synced_commits += durable
        return len(rows)

    def state(self) -> dict[str, Any]:
        """Every state entry, decoded."""
        return {key: json.loads(value)
                for key, value in self._db.execute("SELECT key, value FROM state")}

    def newest_time(self) -> float:
        """The latest twin time of any record, s (-inf if there is none); read once at
        start-up (a scan of the table: the index is by asset first)."""
        (newest,) = self._db.execute("SELECT MAX(time) FROM audit").fetchone()
        return -math.inf if newest is None else float(newest)

    def query(
        self,
        asset: str | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
        outcome: Outcome | str | None = None,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Records in time order (oldest first; records of the same time in the order they
        were written), the newest ``limit`` of those matching. Writers append in the order
        they decide, which need not be the order of the records' twin times, so the order
        is by ``time``, not by insertion."""
        where, args = [], []
        for clause, value in (("asset = ?", asset), ("time >= ?", since), ("time <= ?", until),
                              ("outcome = ?", None if outcome is None else str(outcome))):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY time DESC, seq DESC LIMIT ?"
        rows = self._db.execute(sql, [*args, int(limit)]).fetchall()
        return [AuditRecord(time, asset, user, source, signal, requested, applied,
                            Outcome(outcome), reason)
                for time, asset, user, source, signal, requested, applied, outcome, reason
                in reversed(rows)]

    def close(self) -> None:
        self._db.close()
