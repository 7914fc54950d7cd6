"""The audit log survives its writer being killed with SIGKILL, answers queries in time
order, and only its owner may read it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

from engine.audit import AuditLog
from engine.messages import AuditRecord, Outcome


def record(i, asset="tank-01", outcome=Outcome.ACCEPTED):
    return AuditRecord(time=float(i), asset=asset, user="controller", source="controller",
                       signal="m_oil", requested=float(i), applied=float(i), outcome=outcome,
                       reason="within limits")


def test_the_database_its_wal_and_its_folder_are_readable_by_their_owner_only(tmp_path):
    """Under the usual umask 022, which left the database and var/ readable by every
    user: var/ is 0700, the database and SQLite's -wal and -shm files 0600."""
    umask = os.umask(0o022)
    try:
        log = AuditLog(tmp_path / "var" / "audit.db")
        log.append([record(1)])
    finally:
        os.umask(umask)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode)
             for path in (tmp_path / "var", *(tmp_path / "var").iterdir())}
    assert modes == {"var": 0o700, "audit.db": 0o600, "audit.db-wal": 0o600,
                     "audit.db-shm": 0o600}


def test_query_filters_by_asset_time_and_outcome(tmp_path):
    log = AuditLog(tmp_path / "audit.db")
    log.append([record(i) for i in range(10)])
    log.append([record(5, asset="tank-02"), record(11, outcome=Outcome.CLAMPED)])
    assert [r.time for r in log.query("tank-01", since=3, until=6)] == [3, 4, 5, 6]
    assert [r.time for r in log.query("tank-01", outcome="clamped")] == [11]
    assert [r.time for r in log.query("tank-01", limit=2)] == [9, 11]
    assert len(log.query("tank-02")) == 1


def test_query_answers_in_time_order_whatever_the_order_of_writing(tmp_path):
    """Records written out of time order (a restored asset's older decisions after a newer
    one) come back oldest first, and ``limit`` keeps the newest in time."""
    log = AuditLog(tmp_path / "audit.db")
    log.append([record(5), record(2), record(8)])
    log.append([record(1), record(6)])
    assert [r.time for r in log.query("tank-01")] == [1, 2, 5, 6, 8]
    assert [r.time for r in log.query("tank-01", limit=2)] == [6, 8]
    assert [r.time for r in log.query("tank-01", since=2, until=6)] == [2, 5, 6]


def test_every_committed_record_survives_kill_9(tmp_path):
    path = tmp_path / "audit.db"
    writer = textwrap.dedent(f"""
        import os, signal
        from engine.audit import AuditLog
        from engine.messages import AuditRecord, Outcome
        log = AuditLog({str(path)!r})
        for i in range(200):
            log.append([AuditRecord(time=float(i), asset="a", user="u", source="controller",
                        signal="s", requested=1.0, applied=1.0, outcome=Outcome.ACCEPTED,
                        reason="r")])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", writer], check=False)
    assert result.returncode == -9
    assert [r.time for r in AuditLog(path).query("a", limit=1000)] == [float(i) for i in range(200)]
