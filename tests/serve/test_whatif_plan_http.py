"""What-ifs and the DRA 7-day plan over real HTTP (issue 14 items 2 and 3), against a
two-tank terminal and the pilot's DRA pipeline in lock-step (tests/sites/whatif_plan.toml).
olga is an operator, vera a viewer."""

from __future__ import annotations

import math
import secrets
from pathlib import Path

import httpx
import pytest

from controllers.mpc_common import number
from plants import bitumen
from serve.auth import Token, hash_token
from tests.conftest import free_port
from tests.serve.test_openapi import check

SITE = Path(__file__).resolve().parents[1] / "sites" / "whatif_plan.toml"
TOKENS = {role: secrets.token_urlsafe(32) for role in ("viewer", "operator")}
USERS = {"viewer": "vera", "operator": "olga"}


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture(scope="module")
def fleet(site_fleet):
    with site_fleet(SITE, "test-whatif-plan-http") as fleet:
        fleet.run_for(900.0)
        yield fleet


@pytest.fixture(scope="module")
def api(fleet):
    from ray import serve

    from serve.app import start_http

    tokens = [Token(USERS[role], role, hash_token(token)) for role, token in TOKENS.items()]
    url = start_http(fleet, "127.0.0.1", free_port(), tokens)
    with httpx.Client(base_url=url, timeout=600.0, headers=bearer("operator")) as client:
        yield client
    serve.shutdown()


def test_a_raised_receipt_shows_the_level_crossing_its_alarm_and_the_live_tank_is_untouched(
        api, fleet):
    """Filling tank 01 (20 m across) at 40 kg/s: the what-if shows level_01 at its HI
    alarm after (13 m - level now) rho A / 40 kg/s; the baseline stays below. The live
    asset's estimate, setpoints, plant and audit are as before, but for one record: the
    what-if, read by olga."""
    import ray

    before = api.get("/assets/terminal").json()
    truth = ray.get(fleet.plants["terminal"].truth.remote())
    audit = api.get("/assets/terminal/audit", params={"since": 0}).json()

    reply = api.post("/assets/terminal/whatif", json={
        "duration_s": 86400.0, "changes": {"setpoints": {"receipt_01": 40.0}},
        "controller": False, "samples": 4, "timeout_s": 300.0})
    assert reply.status_code == 200, reply.text
    result = reply.json()

    trajectories = result["scenario"]["trajectories"]
    level = trajectories["level_01"]["value"][0]     # from the live estimate
    assert level == pytest.approx(before["measurement"]["level_01"]["value"], abs=0.05)
    crossing = next(c for c in result["scenario"]["kpis"]["crossings"]
                    if c["limit"] == "level_01.HI")
    rho = bitumen.density(trajectories["T_bulk_01"]["value"][0], 1.03)
    expected = (crossing["bound"] - level) * rho * math.pi * 20.0 ** 2 / 4 / 40.0
    assert crossing["first_time_s"] == pytest.approx(expected, rel=0.1)
    assert crossing["kind"] == "alarm" and crossing["probability"] == 1.0
    assert result["scenario"]["kpis"]["first_crossing_s"] <= crossing["first_time_s"]
    assert "level_01.HI" not in [c["limit"] for c in result["baseline"]["kpis"]["crossings"]]
    assert result["scenario"]["trajectories"]["receipt_01"]["value"][1] == 40.0
    assert len(result["time"]) == 86400 / 300 + 1

    after = api.get("/assets/terminal").json()
    for field in ("estimate", "setpoints", "time", "revision", "mode"):
        assert after[field] == before[field]
    assert ray.get(fleet.plants["terminal"].truth.remote()) == truth
    records = api.get("/assets/terminal/audit", params={"since": 0}).json()
    assert records[:len(audit)] == audit
    [read] = records[len(audit):]
    assert (read["user"], read["signal"], read["applied"]) == ("olga", "whatif", None)
    assert "receipt_01" in read["reason"]

    fleet.run_for(300.0)
    live = api.get("/assets/terminal").json()
    assert live["setpoints"]["receipt_01"]["value"] == 0.0


def test_what_if_refusals(api):
    viewer = api.post("/assets/terminal/whatif", json={"duration_s": 3600.0},
                      headers=bearer("viewer"))
    assert viewer.status_code == 403
    unknown = api.post("/assets/terminal/whatif", json={
        "duration_s": 3600.0, "changes": {"setpoints": {"receipt_09": 1.0}}})
    assert unknown.status_code == 422 and "receipt_09" in unknown.json()["detail"]
    too_long = api.post("/assets/terminal/whatif", json={"duration_s": 1e7})
    assert too_long.status_code == 422 and "duration_s" in too_long.json()["detail"]
    late = api.post("/assets/terminal/whatif", json={"duration_s": 86400.0,
                                                    "controller": False, "timeout_s": 1e-3})
    assert late.status_code == 504 and "timeout_s" in late.json()["detail"]
    document = api.get("/openapi.json").json()
    for reply in (unknown, late, viewer):
        check(document, reply, "POST", "/assets/{asset_id}/whatif")
    assert api.post("/assets/nowhere/whatif", json={"duration_s": 60.0}).status_code == 404


def test_the_seven_day_plan_beats_its_baselines_within_maop_and_its_approval_is_audited(api):
    document = api.get("/openapi.json").json()
    missing = api.get("/assets/dra-line/plan")
    assert missing.status_code == 404
    check(document, missing, "GET", "/assets/{asset_id}/plan")
    reply = api.post("/assets/dra-line/plan")
    assert reply.status_code == 200, reply.text
    check(document, reply, "POST", "/assets/{asset_id}/plan")
    plan = reply.json()
    assert plan["version"] == 1 and plan["status"] == "proposed" and plan["user"] == "olga"
    assert plan["currency"] == "USD"
    assert len(plan["hours"]) == 168
    for hour in plan["hours"]:
        assert len(hour["dra_injection"]) == 3 and len(hour["pump_speed"]) == 3
        assert hour["electricity_price"] in (0.074, 0.102, 0.151)
        for pressure, bound in zip(hour["discharge_pressure"], plan["maop"], strict=True):
            assert pressure <= bound * (1 + 1e-6)
    assert plan["maop"] == [9.6e6] * 3
    assert plan["delivered_volume"] == pytest.approx([28800.0] * 7, rel=1e-4)
    for name in ("constant_dra", "no_dra"):
        baseline = plan["baselines"][name]
        assert baseline["feasible"], baseline["reason"]
        assert plan["cost"] < baseline["cost"]
    assert api.get("/assets/dra-line/plan", headers=bearer("viewer")).json() == plan
    assert api.get("/assets/dra-line").json()["controller"]["forecast"] == "site"

    approved = api.post("/assets/dra-line/plan/1/approve")
    assert approved.status_code == 200, approved.text
    check(document, approved, "POST", "/assets/{asset_id}/plan/{version}/approve")
    check(document, api.get("/assets/dra-line/plan"), "GET", "/assets/{asset_id}/plan")
    assert (approved.json()["status"], approved.json()["approved_by"]) == ("approved", "olga")
    assert api.get("/assets/dra-line/plan").json()["status"] == "approved"
    record = api.get("/assets/dra-line/audit", params={"since": 0}).json()[-1]
    assert (record["user"], record["signal"], record["applied"]) == ("olga", "plan", 1.0)
    assert "approved" in record["reason"]
    again = api.post("/assets/dra-line/plan/1/approve")
    assert again.status_code == 422 and "approved already" in again.json()["detail"]
    assert api.post("/assets/dra-line/plan/7/approve").status_code == 404
    assert api.post("/assets/dra-line/plan", headers=bearer("viewer")).status_code == 403


def approved_plan(api) -> dict:
    """The dra-line's latest plan, made and approved unless an earlier test did."""
    if api.get("/assets/dra-line/plan").status_code == 404:
        assert api.post("/assets/dra-line/plan").status_code == 200
    plan = api.get("/assets/dra-line/plan").json()
    if plan["status"] != "approved":
        assert api.post(f"/assets/dra-line/plan/{plan['version']}/approve").status_code == 200
    return plan


def assert_follows(status: dict, plan: dict) -> None:
    """The status says the plan drives the controller, and its latest proposal targets
    the plan's flow for the hour, not the nomination's daily average."""
    assert status["controller"]["forecast"] == f"plan v{plan['version']}"
    hour = plan["hours"][int((status["time"] - plan["start"]) // 3600.0)]
    assert number(hour["flow"]) != number(28800.0 / 86400.0)  # not the nomination's
    assert f"-> {number(hour['flow'])} m^3/s" in status["controller"]["reason"]


def test_an_approved_plan_drives_the_controllers_flow_target(api, fleet):
    plan = approved_plan(api)
    fleet.run_for(900.0)
    assert_follows(api.get("/assets/dra-line").json(), plan)


def test_a_plan_for_an_asset_of_another_kind_is_422_naming_why(api):
    reply = api.post("/assets/terminal/plan")
    assert reply.status_code == 422
    assert "asphalt_terminal" in reply.json()["detail"]
    assert "dra_pipeline" in reply.json()["detail"]


def test_twinloop_whatif_writes_the_scenario_and_baseline_as_csv_and_png(api, tmp_path,
                                                                         capsys):
    import csv

    from serve.cli import main

    prefix = tmp_path / "fill"
    status = main(["whatif", "terminal", "--url", str(api.base_url),
                   "--token", TOKENS["operator"], "--duration", "43200",
                   "--set", "receipt_01=40", "--no-controller", "--timeout", "300",
                   "--out", str(prefix)])
    assert status == 0
    rows = list(csv.reader((tmp_path / "fill.csv").open()))
    assert rows[0][0] == "time_s"
    assert len(rows) == 1 + 43200 / 300 + 1
    level = rows[0].index("level_01 [m]")
    baseline = rows[0].index("level_01 baseline [m]")
    assert float(rows[-1][level]) > float(rows[-1][baseline]) + 2.0     # m: filled
    assert (tmp_path / "fill.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "level_01.HI at" in capsys.readouterr().out
    denied = main(["whatif", "terminal", "--url", str(api.base_url),
                   "--token", TOKENS["viewer"], "--duration", "600", "--out", str(prefix)])
    assert denied == 2


# These kill shards: they come last.

def test_an_approved_plan_drives_the_controller_again_after_its_shard_is_killed(api, fleet):
    """Issue 11 item 9: an approval is an operator's decision, and outlives a kill -9 of
    the asset's shard (Ray restarts it, and it follows the site's plan store again)."""
    import ray

    from tests.actors.test_fault_tolerance import kill, wait_until_restarted

    plan = approved_plan(api)
    shard = fleet.shards[fleet.directory["dra-line"]]
    wait_until_restarted(shard, kill(shard))
    fleet.run_for(900.0)
    status = ray.get(fleet.assets["dra-line"].status.remote())  # the new process's own
    assert status["restarted"]
    assert_follows(status, plan)
    assert ray.get(shard.restore_report.remote()) == []


def test_an_approved_plan_that_no_longer_fits_its_asset_is_skipped_and_reported(fleet):
    """A plan of the plan store its asset can no longer follow (here the dra-line's plan
    filed under the terminal, which has no delivery_flow) is skipped on a restart and
    reported, and the asset runs on the site's forecast."""
    import ray

    from engine.plan_store import PlanStore, plans_folder
    from tests.actors.test_fault_tolerance import kill, wait_until_restarted

    store = PlanStore(plans_folder(fleet.site.site.audit_db))
    entry = store.add("terminal", store.approved("dra-line")["plan"], created=0.0, user="olga")
    store.approve("terminal", entry["version"], user="olga", time=0.0)
    shard = fleet.shards[fleet.directory["terminal"]]
    wait_until_restarted(shard, kill(shard))
    fleet.run_for(900.0)
    status = ray.get(fleet.assets["terminal"].status.remote())
    assert status["restarted"] and status["controller"]["forecast"] != "plan v1"
    [report] = ray.get(shard.restore_report.remote())
    assert "'terminal': approved plan skipped" in report and "delivery_flow" in report
