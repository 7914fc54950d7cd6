"""The whole site killed, then started again on the same audit database (issue 11, item 9):
what operators and engineers decided comes back, and audit times never go backwards.

Two tanks of the two-tank site in lock-step on the shared embedded Ray. "Killed" is every
actor of the site force-killed at once (``ray.kill``: no clean-up runs, as after kill -9
of the demo); "started again" is ``build_fleet`` with the same site file and the same
clock a new ``twinloop demo`` would make.
"""

from __future__ import annotations

import asyncio
import sqlite3

import msgspec
import pytest
import ray

import plants
from actors.fleet import build_fleet, initial_outputs
from actors.safety import SafetyAuthority
from actors.shard import Shard
from engine.clock import ClockSpec
from engine.config import SetpointLimit, load_site
from tests.actors.test_shard import InProcess, two_tanks_over_mqtt
from tests.conftest import TWO_TANKS

EPOCH = 1.7e9
PERIOD = 120.0


def two_tanks(tmp_path):
    site = plants.resolve_site(load_site(TWO_TANKS), TWO_TANKS)
    return msgspec.structs.replace(
        site, site=msgspec.structs.replace(site.site, audit_db=str(tmp_path / "audit.db")))


def kill(fleet) -> None:
    """Every actor of the site, force-killed at once and not restarted."""
    for handle in [*fleet.shards.values(), *fleet.plant_shards.values(), fleet.safety]:
        ray.kill(handle, no_restart=True)


def audit_times(site) -> list[float]:
    """Every audit record's twin time, in the order the records were written."""
    with sqlite3.connect(site.site.audit_db) as db:
        return [time for (time,) in db.execute("SELECT time FROM audit ORDER BY seq")]


@pytest.fixture(scope="module")
def decided(ray_session, tmp_path_factory):
    """A site run for a while, with every kind of decision made, then killed: the site,
    and what was to be seen just before the kill."""
    site = two_tanks(tmp_path_factory.mktemp("full-restart"))
    fleet = build_fleet(site, ClockSpec(lockstep=True, epoch=EPOCH), namespace="test-full-1")
    one, two = fleet.assets["tank-01"], fleet.assets["tank-02"]
    try:
        fleet.run_for(4 * PERIOD)
        ray.get(one.set_reference.remote({"T_bulk": 436.0}, "olga"))
        ray.get(one.set_reference.remote({"T_bulk": 437.5}, "olga"))
        ray.get(two.set_reference.remote({"T_bulk": 440.0}, "olga"))
        ray.get(one.set_controller.remote(
            {"horizon": 12, "tracking": {"T_bulk": 50.0},
             "limits": {"m_oil": {"upper": 9.0, "max_rate": 0.01}}}, "erik"))
        ray.get(one.set_operator_limits.remote({"m_oil": (0.2, 6.0)}, "olga"))
        ray.get(two.set_mode.remote("ADVISORY", "olga"))
        fleet.run_for(3 * PERIOD)
        assert [p["n"] for p in ray.get(two.proposals.remote())] == [1, 2, 3]
        ray.get(two.approve.remote(1, "olga"))
        ray.get(two.reject.remote(2, "olga"))
        seen = {
            "tuning": ray.get(one.controller_tuning.remote()),
            "limits": {a: ray.get(fleet.assets[a].limits.remote()) for a in fleet.assets},
            "queue": ray.get(two.proposals.remote()),
            "applied": {a: ray.get(fleet.safety.last_applied.remote(a)) for a in fleet.assets},
        }
    finally:
        kill(fleet)
    return site, seen


@pytest.fixture(scope="module")
def restarted(decided):
    """The site started again after the kill (the tests run in order: the last one runs
    it on)."""
    site, seen = decided
    fleet = build_fleet(site, ClockSpec(lockstep=True, epoch=EPOCH), namespace="test-full-2")
    yield fleet, site, seen
    fleet.shutdown()


def test_every_decision_made_before_a_kill_of_the_whole_site_is_back(restarted):
    fleet, _, seen = restarted
    one, two = fleet.assets["tank-01"], fleet.assets["tank-02"]
    status = {a: ray.get(fleet.assets[a].status.remote()) for a in fleet.assets}
    # references: tank-01's second one, tank-02's last one; not the site file's
    assert status["tank-01"]["reference"]["T_bulk"]["value"] == 437.5
    assert status["tank-02"]["reference"]["T_bulk"]["value"] == 440.0
    # the retune: the controller's tuning and the gate's engineering limits
    assert ray.get(one.controller_tuning.remote()) == seen["tuning"]
    assert seen["tuning"]["horizon"] == 12
    assert ray.get(one.limits.remote()) == seen["limits"]["tank-01"]
    m_oil = seen["limits"]["tank-01"]["m_oil"]
    assert (m_oil["upper"], m_oil["max_rate"]) == (9.0, 0.01)
    assert (m_oil["operator_lower"], m_oil["operator_upper"]) == (0.2, 6.0)
    # modes, shown by the assets before their first tick, and the approval queue
    assert [status[a]["mode"] for a in ("tank-01", "tank-02")] == ["AUTONOMOUS", "ADVISORY"]
    assert ray.get(two.proposals.remote()) == seen["queue"]
    assert [p["n"] for p in seen["queue"]] == [3]
    assert not status["tank-01"]["restarted"]  # a new site, not a restarted shard
    assert fleet.restore_report == []
    # the simulated plants start where the gate left them
    for asset, applied in seen["applied"].items():
        inputs = ray.get(fleet.plants[asset].truth.remote())["inputs"]
        assert inputs["m_oil"] == applied["m_oil"]["value"]


def test_audit_times_never_go_backwards_across_a_restart_of_the_whole_site(restarted):
    fleet, site, _ = restarted
    newest = max(audit_times(site))
    two = fleet.assets["tank-02"]
    ray.get(two.approve.remote(3, "olga"))  # before the first tick of the new site
    fleet.run_for(3 * PERIOD)
    times = audit_times(site)
    assert all(a <= b for a, b in zip(times, times[1:], strict=False)), "audit time went back"
    assert times[-1] >= newest + 3 * PERIOD
    assert ray.get(fleet.assets["tank-01"].status.remote())["time"] >= newest + 3 * PERIOD


def test_decisions_for_an_asset_or_a_signal_no_longer_in_the_site_are_reported_and_skipped(
        tmp_path):
    """tank-01 let operators write its hot-oil supply temperature T_supply, and had
    operator limits and a retune on it; then the site file drops T_supply from tank-01's
    writable signals and drops tank-02. The site starts (the real safety authority and a
    shard in this process, on the same database), keeps the rest of what was decided, and
    says what it skipped."""
    supply = SetpointLimit(lower=473.15, upper=573.15, max_rate=0.05)
    before = two_tanks_over_mqtt(tmp_path)
    tank = before.assets[0]
    before = msgspec.structs.replace(before, assets=[
        msgspec.structs.replace(tank, limits={**tank.limits, "T_supply": supply}),
        before.assets[1]])
    after = msgspec.structs.replace(before, assets=[tank])

    async def start(site):
        safety = SafetyAuthority(site, {a.id: initial_outputs(a) for a in site.assets}, EPOCH)
        shard = Shard("shard:0", site.assets, ClockSpec(lockstep=True, epoch=EPOCH),
                      InProcess(safety), plants={}, plcs={})
        return safety, shard

    async def decide():
        safety, shard = await start(before)
        await shard.set_reference("tank-01", {"T_bulk": 437.5}, "olga")
        await shard.set_controller("tank-01", {"tracking": {"T_bulk": 50.0},
                                               "limits": {"T_supply": {"upper": 560.0}}}, "erik")
        await shard.set_operator_limits("tank-01", {"m_oil": (0.2, 6.0),
                                                    "T_supply": (480.0, 550.0)}, "olga")
        await shard.set_mode("tank-02", "MANUAL", "olga")
        await shard.stop()
        safety.audit.close()

    async def start_again():
        safety, shard = await start(after)
        return (safety.restore_report(), await shard.restore_report(),
                await shard.status("tank-01"), await shard.limits("tank-01"),
                await shard.controller_tuning("tank-01"))

    asyncio.run(decide())
    skipped, skipped_by_assets, status, limits, tuning = asyncio.run(start_again())
    assert list(limits) == ["m_oil"]  # T_supply is not written any more: no gate for it
    assert (limits["m_oil"]["operator_lower"], limits["m_oil"]["operator_upper"]) == (0.2, 6.0)
    assert status["reference"]["T_bulk"]["value"] == 437.5
    assert tuning["tracking"]["T_bulk"] == 50.0
    assert any("'tank-02'" in why and "not in the site" in why for why in skipped), skipped
    assert any("T_supply" in why and "operator limits" in why for why in skipped), skipped
    assert any("T_supply" in why and "engineering limits" in why for why in skipped), skipped
    assert skipped_by_assets == []
