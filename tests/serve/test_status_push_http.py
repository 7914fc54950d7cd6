"""In real time, status reads are answered from the statuses the assets push, not by the
shard that runs the numerics (issue 11 item 6); a write is read back at once; a stopped
shard's last status stops being served."""

from __future__ import annotations

import time

import msgspec
import pytest
import ray

from tests.conftest import TWO_TANKS, admin_api

SPEED = 240.0
"""Twin s per wall s: tank-01 (period 120 s) ticks twice a wall second."""


@pytest.fixture(scope="module")
def one_tank_running(ray_session, tmp_path_factory):
    import plants
    from actors.fleet import build_fleet
    from engine.clock import ClockSpec
    from engine.config import load_site

    site = plants.resolve_site(load_site(TWO_TANKS), TWO_TANKS)
    audit = tmp_path_factory.mktemp("audit") / "audit.db"
    site = msgspec.structs.replace(
        site, assets=site.assets[:1],
        site=msgspec.structs.replace(site.site, audit_db=str(audit)))
    fleet = build_fleet(site, ClockSpec(speed=SPEED), namespace="test-status-push-http")
    fleet.start()
    yield fleet
    fleet.shutdown()


def status_queries(fleet) -> int:
    return sum(ray.get(shard.shard_status.remote())["status_queries"]
               for shard in fleet.shards.values())


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            raise TimeoutError(what)
        time.sleep(0.2)


def test_reads_are_answered_from_pushed_statuses_without_asking_the_shard(one_tank_running):
    fleet = one_tank_running
    with admin_api(fleet) as api:
        wait_until(lambda: api.get("/assets/tank-01").json()["ticks"] >= 2, "two ticks")
        asked = status_queries(fleet)
        bodies = [api.get("/assets/tank-01").json() for _ in range(30)]
        listed = [api.get("/assets").json() for _ in range(5)]
        assert status_queries(fleet) == asked  # not one question to the shard
        assert all(body["id"] == "tank-01" and body["estimate"]["T_bulk"]["unit"] == "K"
                   for body in bodies)
        assert [a["id"] for a in listed[-1]] == ["tank-01"]
        ticks = [body["ticks"] for body in bodies]
        assert ticks == sorted(ticks)  # never an older status after a newer one

        # a write through the API is read back at once (one question to the shard)
        assert api.put("/assets/tank-01/mode", json={"mode": "MANUAL"}).status_code == 200
        assert api.get("/assets/tank-01").json()["mode"] == "MANUAL"
        assert api.put("/assets/tank-01/mode", json={"mode": "AUTONOMOUS"}).status_code == 200
        assert api.get("/assets/tank-01").json()["mode"] == "AUTONOMOUS"

        # a stopped asset pushes nothing: after two periods its shard is asked again
        ray.get(fleet.shards["shard:0"].stop.remote())
        time.sleep(2 * 120.0 / SPEED + 1.5)
        asked = status_queries(fleet)
        api.get("/assets/tank-01")
        assert status_queries(fleet) == asked + 1
