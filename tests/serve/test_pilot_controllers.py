"""The controller API over real HTTP on the pilot site (every seed kind, lock-step): every
asset answers its tuning, takes it back unchanged, and a tank can be moved to the
"fast" backend, which then runs it."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import ray

from tests.conftest import admin_api

PILOT = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"
RETUNE_TIMEOUT_S = 120.0
"""Wall seconds a PUT may take: it rebuilds the controller, 15 s for the terminal's
do-mpc on a quiet machine."""


@pytest.fixture(scope="module")
def pilot(ray_session, tmp_path_factory):
    """The pilot site in lock-step, in a Ray namespace of its own; nothing runs unless a
    test runs the site."""
    import plants
    from actors.fleet import build_fleet
    from engine.clock import ClockSpec
    from engine.config import load_site

    site = plants.resolve_site(load_site(PILOT), PILOT)
    audit = tmp_path_factory.mktemp("audit") / "pilot-audit.db"
    site = msgspec.structs.replace(site, site=msgspec.structs.replace(site.site,
                                                                      audit_db=str(audit)))
    fleet = build_fleet(site, ClockSpec(lockstep=True, epoch=1.7e9), namespace="test-pilot-api")
    yield fleet
    fleet.shutdown()


@pytest.fixture(scope="module")
def api(pilot):
    with admin_api(pilot, timeout=RETUNE_TIMEOUT_S) as client:
        yield client


def test_every_pilot_asset_answers_its_tuning_and_takes_it_back_unchanged(api, pilot):
    """GET /assets/{id}/controller is 200 for each of the 12 assets (the terminal with its
    operator-written draws and receipts, the pipeline and cells on "fast" with soft
    output limits); PUT of that very body is 200, answers the same tuning and changes
    neither the next GET nor the safety actor's limits."""
    assert len(pilot.assets) == 12
    for asset_id in pilot.assets:
        reply = api.get(f"/assets/{asset_id}/controller")
        assert reply.status_code == 200, f"{asset_id}: {reply.text}"
        tuning = reply.json()
        gate = ray.get(pilot.safety.limits.remote(asset_id))
        back = api.put(f"/assets/{asset_id}/controller", json=tuning)
        assert back.status_code == 200, f"{asset_id}: {back.text}"
        assert back.json() == tuning, asset_id
        assert api.get(f"/assets/{asset_id}/controller").json() == tuning, asset_id
        assert ray.get(pilot.safety.limits.remote(asset_id)) == gate, asset_id


def test_a_tank_moved_to_the_fast_backend_shows_it_and_runs_on_it(api, pilot):
    """PUT {"backend": "fast"} on tank-01 is 200 and the next GET shows it; the asset then
    ticks healthily with the fast MPC's converged plans."""
    tuning = api.get("/assets/tank-01/controller").json()
    assert tuning["backends"] == ["do-mpc", "fast"]
    reply = api.put("/assets/tank-01/controller", json={"backend": "fast"})
    assert reply.status_code == 200, reply.text
    shown = api.get("/assets/tank-01/controller").json()
    assert shown["backend"] == "fast"
    assert {k: v for k, v in shown.items() if k != "backend"} == \
        {k: v for k, v in tuning.items() if k != "backend"}
    pilot.run_for(5 * 120.0)
    status = api.get("/assets/tank-01").json()
    assert status["healthy"], status["errors"]
    assert status["controller"]["backend"] == "fast"
    assert status["controller"]["status"] == "converged"
