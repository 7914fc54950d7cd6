"""Writes refused at the HTTP edge (issue 11, item 8) are on record: outcome refused, the
token's user, the reason; and a flood of them costs the audit one batch per interval,
not a transaction (or an fsync) each. Over real HTTP against the two-tank site in
lock-step; the flood against a SafetyAuthority in this process."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

import plants
from actors.fleet import initial_outputs
from actors.refusals import MAX_PENDING, RefusalRecorder
from actors.safety import SafetyAuthority
from engine.config import load_site
from tests.conftest import TWO_TANKS, admin_api


def assert_one_refusal_more(api, before: list[dict], asset: str = "tank-01") -> None:
    """tank-01's audit is ``before`` and one record more: a refusal at the HTTP edge."""
    after = api.get(f"/assets/{asset}/audit", params={"limit": 100_000}).json()
    assert len(after) == len(before) + 1
    refused = [r for r in after if r["outcome"] == "refused"]
    assert [r for r in after if r["outcome"] != "refused"] == [
        r for r in before if r["outcome"] != "refused"]
    assert (refused[-1]["source"], refused[-1]["applied"]) == ("http", None), refused[-1]


@pytest.fixture(scope="module")
def api(two_tanks):
    two_tanks.run_for(240.0)
    with admin_api(two_tanks) as client:
        yield client


def test_a_write_refused_at_the_http_edge_is_on_record_with_user_and_reason(api):
    """A boolean, an unknown signal, a value above the signal's bound, a reference given
    as a string and an unknown mode: each answers 422, changes nothing, and leaves one
    record in tank-02's audit (outcome refused, source http, user tester) naming the
    signal and why."""
    writes = [("setpoints", {"m_oil": True}), ("setpoints", {"steam": 1.0}),
              ("setpoints", {"m_oil": 1e6}), ("reference", {"T_bulk": "433.5"}),
              ("mode", {"mode": "TURBO"})]
    for path, body in writes:
        assert api.put(f"/assets/tank-02/{path}", json=body).status_code == 422, (path, body)

    refused = api.get("/assets/tank-02/audit", params={"outcome": "refused"}).json()
    assert [(r["source"], r["user"], r["signal"]) for r in refused] == [
        ("http", "tester", "m_oil"), ("http", "tester", "steam"), ("http", "tester", "m_oil"),
        ("http", "tester", "T_bulk"), ("http", "tester", "mode")]
    boolean, unknown, huge, string, mode = refused
    assert "malformed request" in boolean["reason"] and "m_oil" in boolean["reason"]
    assert "unknown signal 'steam'" in unknown["reason"]
    assert "above its upper bound 12" in huge["reason"] and huge["requested"] == 1e6
    assert "body.T_bulk" in string["reason"] and "body.mode" in mode["reason"]
    assert all(r["applied"] is None for r in refused)
    assert api.get("/assets/tank-01/audit", params={"outcome": "refused"}).json() == []


def test_a_flood_of_refusals_is_one_unsynced_batch_with_a_count_of_the_rest(tmp_path):
    """2,000 refused writes within one interval reach the safety authority as ONE batch:
    MAX_PENDING records one by one and one record counting the other 1,800, committed
    without an fsync (the audit's synced commits do not move)."""
    site = plants.resolve_site(load_site(TWO_TANKS), TWO_TANKS)
    site = msgspec.structs.replace(
        site, site=msgspec.structs.replace(site.site, audit_db=str(tmp_path / "audit.db")))
    authority = SafetyAuthority(site, {a.id: initial_outputs(a) for a in site.assets}, 1.7e9)
    batches = []

    async def send(batch):
        batches.append(len(batch))
        authority.note_refused(batch)

    async def flood():
        recorder = RefusalRecorder("http", send)
        for n in range(2000):
            recorder.refused("tank-01", "mallory", "m_oil", f"malformed request #{n}")
        await recorder.flush()

    synced = authority.audit.synced_commits
    asyncio.run(flood())
    records = authority.audit.query("tank-01", outcome="refused", limit=10_000)
    assert batches == [MAX_PENDING + 1]
    assert len(records) == MAX_PENDING + 1
    assert records[-1].reason.startswith(f"{2000 - MAX_PENDING} further refused write(s) by "
                                         "mallory")
    assert authority.audit.synced_commits == synced
