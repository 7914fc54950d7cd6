"""decide_batch through a real SafetyActor: one call per shard per tick instant, trips that
act in every mode, everything on disk before the answer, checkpoints off the gating path."""

from __future__ import annotations

import math

import pytest
import ray

from actors.safety import SafetyActor, SafetyAuthority
from engine.audit import AuditLog
from engine.config import AssetConfig, SetpointLimit, SiteConfig, SiteSettings, TripInterlock
from engine.messages import GateRequest, Measurement, Mode, Outcome, Proposal
from tests.actors.test_fault_tolerance import kill, wait_until_restarted

RECEIPT = {"receipt_05": SetpointLimit(lower=0.0, upper=60.0, max_rate=0.1)}


@pytest.fixture()
def site(tmp_path) -> SiteConfig:
    """Four terminals, one per mode, each with tank 05's receipt and high-high trip."""
    assets = [AssetConfig(id=f"terminal-{mode.value.lower()}", kind="asphalt_terminal",
                          mode=mode, limits=RECEIPT, max_measurement_age_s=1800.0)
              for mode in Mode]
    locks = [TripInterlock(name=f"{a.id} tank 05 high-high level", when=[f"{a.id}.level_05"],
                           above=13.3, close=[f"{a.id}.receipt_05"]) for a in assets]
    return SiteConfig(site=SiteSettings(name="batch", audit_db=str(tmp_path / "audit.db")),
                      assets=assets, interlocks=locks)


def test_one_batch_closes_an_open_receipt_above_high_high_in_each_of_the_four_modes(
        ray_session, site):
    safety = SafetyActor.options(name="safety:batch", namespace="test-safety-batch").remote(
        site, {a.id: {"receipt_05": 60.0} for a in site.assets}, 0.0)
    try:
        requests = [GateRequest(
            asset=a.id, time=300.0, measurement=Measurement(a.id, 300.0, {"level_05": 13.42}),
            measurement_age=0.0, proposal=Proposal(asset=a.id, time=300.0, reason="mpc",
                                                   setpoints={"receipt_05": 60.0}))
            for a in site.assets]
        decisions = ray.get(safety.decide_batch.remote(requests, math.inf))
        assert [d.applied for d in decisions] == [{"receipt_05": 0.0}] * 4
        # on disk before the answer: another connection reads every record of the batch
        stored = AuditLog(site.site.audit_db).query(outcome="interlock")
        assert sorted(r.asset for r in stored) == sorted(a.id for a in site.assets)
        for asset in site.assets:
            (record,) = ray.get(safety.audit_records.remote(asset.id, outcome="interlock"))
            assert record["source"] == "interlock" and record["applied"] == 0.0
            assert record["reason"].startswith(f"interlock '{asset.id} tank 05 high-high level': "
                                               f"{asset.id}.level_05 13.42 >= 13.3; receipt_05 "
                                               "closed from 60 to its safe value 0")
            assert ray.get(safety.last_applied.remote(asset.id))["receipt_05"]["value"] == 0.0
        # an operator's write while the trip stands: nothing reopens
        (again,) = ray.get(safety.decide_batch.remote([GateRequest(
            asset="terminal-manual", time=600.0,
            measurement=Measurement("terminal-manual", 600.0, {"level_05": 13.45}),
            measurement_age=0.0,
            proposal=Proposal(asset="terminal-manual", time=600.0,
                              setpoints={"receipt_05": 30.0}, reason="", source="operator",
                              user="olga"))]))
        assert again.applied == {"receipt_05": 0.0}
        assert [r.outcome for r in again.records] == [Outcome.CLAMPED]
        # a late batch is not decided (the caller has stopped waiting): nothing recorded
        assert ray.get(safety.decide_batch.remote(requests, 0.0)) is None
    finally:
        ray.kill(safety, no_restart=True)


def test_a_batch_of_a_hundred_decisions_is_one_synced_commit(tmp_path):
    """Group commit, on the actor's own code without Ray: 100 decisions of one tick
    instant are one transaction synced once (one by one they were 100); checkpoints add
    none; every record is readable from another connection when decide_batch returns."""
    assets = [AssetConfig(id=f"a{i:03d}", kind="asphalt_terminal", limits=RECEIPT,
                          max_measurement_age_s=1800.0) for i in range(100)]
    site = SiteConfig(site=SiteSettings(name="group", audit_db=str(tmp_path / "audit.db")),
                      assets=assets)
    gate = SafetyAuthority(site, {a.id: {"receipt_05": 0.0} for a in assets}, 0.0)

    def requests(t):
        return [GateRequest(asset=a.id, time=t, measurement=Measurement(a.id, t, {"l": 1.0}),
                            measurement_age=0.0, proposal=Proposal(
                                asset=a.id, time=t, setpoints={"receipt_05": 1.0}, reason="mpc",
                                source="operator", user="olga")) for a in assets]

    before = gate.audit.synced_commits
    decisions = gate.decide_batch(requests(300.0))
    assert gate.audit.synced_commits == before + 1
    assert len(AuditLog(site.site.audit_db).query(since=300.0, limit=1000)) == 100
    assert all(d.applied == {"receipt_05": 1.0} for d in decisions)
    gate.store_checkpoints({a.id: {"t": 300.0} for a in assets})
    assert gate.audit.synced_commits == before + 1
    for r in requests(600.0):
        gate.decide(r.proposal, r.measurement_age, r.measurement)
    assert gate.audit.synced_commits == before + 101


def test_checkpoints_are_kept_off_the_gating_path_and_outlive_a_restart(ray_session, site):
    ids = [a.id for a in site.assets]
    safety = SafetyActor.options(namespace="test-safety-batch").remote(
        site, {a: {"receipt_05": 0.0} for a in ids}, 0.0)
    try:
        ray.get(safety.store_checkpoints.remote({ids[0]: {"loop": {"t": 300.0}}}))
        ray.get(safety.set_mode.remote(ids[1], Mode.OFF, "olga", 300.0))
        wait_until_restarted(safety, kill(safety))
        points = ray.get(safety.restore_points.remote(ids[:2]))  # the restarted actor answers
        assert points[ids[0]]["checkpoint"] == {"loop": {"t": 300.0}}
        point = points[ids[1]]
        assert (point["checkpoint"], point["mode"], point["last_applied"]) == (
            None, "OFF", {"receipt_05": [0.0, 0.0]})
    finally:
        ray.kill(safety, no_restart=True)


def test_a_retune_keeps_the_configured_safe_value_and_the_limits_answer_shows_it(tmp_path):
    limit = SetpointLimit(lower=0.0, upper=60.0, max_rate=0.1, safe=5.0)
    site = SiteConfig(site=SiteSettings(name="safe", audit_db=str(tmp_path / "audit.db")),
                      assets=[AssetConfig(id="t", kind="asphalt_terminal", mode=Mode.OFF,
                                          limits={"receipt_05": limit})])
    gate = SafetyAuthority(site, {"t": {"receipt_05": 20.0}}, 0.0)
    assert gate.limits("t")["receipt_05"]["safe"] == 5.0
    # controllers.tuning hands new limits without a safe value: the configured one stays
    gate.set_tuning("t", {}, {"receipt_05": SetpointLimit(lower=0.0, upper=50.0, max_rate=0.2)},
                    [], "erik", 10.0)
    assert gate.limits("t")["receipt_05"] == {"lower": 0.0, "upper": 50.0, "max_rate": 0.2,
                                              "safe": 5.0}
    decision = gate.decide(Proposal(asset="t", time=20.0, setpoints={"receipt_05": 0.0},
                                    reason="", source="safe-state", user="olga"), math.inf)
    assert decision.applied == {"receipt_05": 5.0}  # OFF, and 15 kg/s faster than the rate
    (record,) = gate.audit_records("t", outcome="clamped")
    assert (record["user"], record["source"]) == ("olga", "safe-state")
