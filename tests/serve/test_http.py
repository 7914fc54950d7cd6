"""The HTTP contract of DESIGN.md, over real HTTP on loopback, against the two-tank site,
with bearer tokens: olga is an operator, vera a viewer."""

from __future__ import annotations

import secrets

import httpx
import pytest

from serve.auth import Token, hash_token
from tests.conftest import assert_promtool_accepts, free_port
from tests.serve.test_refused_writes import assert_one_refusal_more

TOKENS = {role: secrets.token_urlsafe(32) for role in ("viewer", "operator", "engineer", "admin")}
USERS = {"viewer": "vera", "operator": "olga", "engineer": "emil", "admin": "ada"}


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory):
    """The token file the API reads (empty at start): tests add and revoke tokens in it
    with the `twinloop token` command while the API runs."""
    return tmp_path_factory.mktemp("tokens") / "tokens.toml"


@pytest.fixture(scope="module")
def api(two_tanks, tokens_file):
    from ray import serve

    from serve.app import start_http

    tokens = [Token(USERS[role], role, hash_token(token)) for role, token in TOKENS.items()]
    url = start_http(two_tanks, "127.0.0.1", free_port(), tokens, tokens_file)
    with httpx.Client(base_url=url, timeout=30.0, headers=bearer("operator")) as client:
        yield client
    serve.shutdown()


def test_assets_lists_both_tanks_with_kind_mode_and_health(api, two_tanks):
    two_tanks.run_for(600.0)
    assets = api.get("/assets").json()
    assert [(a["id"], a["kind"], a["mode"]) for a in assets] == [
        ("tank-01", "asphalt_tank", "AUTONOMOUS"), ("tank-02", "asphalt_tank", "AUTONOMOUS")]
    assert all(a["healthy"] for a in assets)
    assert api.get("/healthz").json()["status"] == "ok"


def test_asset_detail_carries_values_with_units(api):
    body = api.get("/assets/tank-01").json()
    assert body["estimate"]["T_bulk"]["unit"] == "K"
    assert body["estimate"]["T_bulk"]["std"] > 0
    assert body["measurement"]["T_bulk"]["unit"] == "K"
    assert body["setpoints"]["m_oil"]["unit"] == "kg/s"
    assert body["reference"]["T_bulk"] == {"value": 433.15, "unit": "K"}
    assert body["controller"]["backend"] == "do-mpc"
    assert body["controller"]["solve_time_s"] > 0


def test_a_new_reference_moves_the_estimate_towards_it(api, two_tanks):
    """Raise tank-02's reference by 5 K; after 2 h of twin time the estimate has risen."""
    before = api.get("/assets/tank-02").json()["estimate"]["T_bulk"]["value"]
    reply = api.put("/assets/tank-02/reference", json={"T_bulk": before + 5.0})
    assert reply.status_code == 200
    two_tanks.run_for(2 * 3600.0)
    after = api.get("/assets/tank-02").json()["estimate"]["T_bulk"]["value"]
    assert after > before + 1.0
    changes = api.get("/assets/tank-02/audit", params={"since": 0}).json()
    reference_change = [r for r in changes if r["signal"] == "T_bulk"][-1]
    assert reference_change["user"] == "olga" and reference_change["requested"] == before + 5.0


def test_unknown_asset_is_404(api):
    reply = api.get("/assets/tank-99")
    assert reply.status_code == 404
    assert "tank-99" in reply.json()["detail"]


@pytest.mark.parametrize(("body", "message"), [
    ({"T_bulk": 500.0}, "'T_bulk': 500 K is above its upper bound 473.15 K"),
    ({"T_top": 400.0}, "unknown signal 'T_top'"),
])
def test_bad_reference_is_422_naming_signal_and_bound_and_changes_nothing(api, body, message):
    before = api.get("/assets/tank-01").json()["reference"]
    reply = api.put("/assets/tank-01/reference", json=body)
    assert reply.status_code == 422
    assert message in reply.json()["detail"]
    assert api.get("/assets/tank-01").json()["reference"] == before


@pytest.mark.parametrize(("path", "body", "field"), [
    ("reference", {"T_bulk": "hot"}, "T_bulk"),
    ("reference", [433.15], "body"),
    ("setpoints", {"m_oil": None}, "m_oil"),
    ("setpoints", {"m_oil": {"value": 2}}, "m_oil"),
    ("mode", {"mode": "TURBO"}, "mode"),
    ("mode", {"mood": "OFF"}, "mode"),
    ("limits", {"m_oil": {"lower": 0.5}}, "upper"),
    ("limits", {"m_oil": {"lower": "low", "upper": 2.0}}, "lower"),
])
def test_malformed_body_is_422_naming_the_field_and_changes_nothing(api, path, body, field):
    before = api.get("/assets/tank-01").json()
    audit_before = api.get("/assets/tank-01/audit", params={"limit": 100_000}).json()
    limits_before = api.get("/assets/tank-01/limits").json()
    reply = api.put(f"/assets/tank-01/{path}", json=body)
    assert reply.status_code == 422
    assert any(field in detail["loc"] for detail in reply.json()["detail"]), reply.json()
    after = api.get("/assets/tank-01").json()
    for key in ("mode", "reference", "setpoints"):
        assert after[key] == before[key]
    assert_one_refusal_more(api, audit_before)
    assert api.get("/assets/tank-01/limits").json() == limits_before


@pytest.mark.parametrize(("path", "body", "message"), [
    ("setpoints", '{"m_oil": NaN}', "signal 'm_oil': nan is not a finite number"),
    ("setpoints", '{"m_oil": Infinity}', "signal 'm_oil': inf is not a finite number"),
    ("setpoints", '{"m_oil": 1e999}', "signal 'm_oil': inf is not a finite number"),
    ("setpoints", '{"m_oil": 50.0}', "'m_oil': 50 kg/s is above its upper bound 12 kg/s"),
    ("setpoints", '{"T_supply": 500.0}', "unknown signal 'T_supply': writable signals"),
    ("reference", '{"T_bulk": NaN}', "signal 'T_bulk': nan is not a finite number"),
    ("limits", '{"m_oil": {"lower": NaN, "upper": 2}}', "operator lower limit nan is not"),
])
def test_non_finite_or_unknown_values_are_422_naming_the_signal(api, path, body, message):
    before = api.get("/assets/tank-01").json()
    audit_before = api.get("/assets/tank-01/audit", params={"limit": 100_000}).json()
    reply = api.put(f"/assets/tank-01/{path}", content=body,
                    headers={"content-type": "application/json"})
    assert reply.status_code == 422
    assert message in reply.json()["detail"]
    after = api.get("/assets/tank-01").json()
    assert (after["setpoints"], after["reference"]) == (before["setpoints"], before["reference"])
    assert_one_refusal_more(api, audit_before)


def test_without_a_token_401_and_without_the_role_403(api):
    bare = httpx.Client(base_url=str(api.base_url), timeout=30.0)
    assert bare.get("/healthz").status_code == 200  # liveness stays open
    for method, path in (("GET", "/assets"), ("GET", "/assets/tank-01"), ("GET", "/metrics"),
                         ("GET", "/assets/tank-01/audit"), ("GET", "/assets/tank-01/proposals"),
                         ("PUT", "/assets/tank-01/mode")):
        reply = bare.request(method, path, json={"mode": "OFF"})
        assert reply.status_code == 401, path
        assert reply.headers["www-authenticate"] == "Bearer"
    forged = bare.get("/assets", headers={"Authorization": "Bearer " + "x" * 43})
    assert forged.status_code == 401 and forged.json()["detail"] == "invalid bearer token"

    viewer = bearer("viewer")
    assert bare.get("/assets/tank-01", headers=viewer).status_code == 200
    assert bare.get("/metrics", headers=viewer).status_code == 200
    for method, path, body in (("PUT", "/assets/tank-01/mode", {"mode": "OFF"}),
                               ("PUT", "/assets/tank-01/reference", {"T_bulk": 433.0}),
                               ("PUT", "/assets/tank-01/setpoints", {"m_oil": 1.0}),
                               ("PUT", "/assets/tank-01/limits",
                                {"m_oil": {"lower": 1, "upper": 2}}),
                               ("POST", "/assets/tank-01/proposals/1/approve", None),
                               ("POST", "/assets/tank-01/proposals/1/reject", None)):
        reply = bare.request(method, path, json=body, headers=viewer)
        assert reply.status_code == 403, path
        assert reply.json()["detail"] == "role operator required; vera has viewer"
    assert bare.get("/assets/tank-01/controller", headers=viewer).status_code == 200
    retune = {"horizon": 10}
    for role in ("viewer", "operator"):
        reply = bare.put("/assets/tank-01/controller", json=retune, headers=bearer(role))
        assert reply.status_code == 403 and "role engineer required" in reply.json()["detail"]
    assert api.get("/assets/tank-01/controller").json()["horizon"] != 10
    assert api.get("/assets/tank-01").json()["mode"] == "AUTONOMOUS"
    reply = bare.put("/assets/tank-01/reference", json={"T_bulk": 433.15}, headers=bearer("admin"))
    assert reply.status_code == 200
    last = api.get("/assets/tank-01/audit").json()[-1]
    assert (last["signal"], last["user"]) == ("T_bulk", "ada")


def test_a_token_added_or_revoked_while_the_api_runs_takes_effect_without_a_restart(
        api, tokens_file, capsys):
    """`twinloop token add` while the API runs: the new token is accepted at once with its
    role; `twinloop token remove`: it is refused (401) from the next request on, and the
    other user's token keeps working."""
    from serve.cli import main

    bare = httpx.Client(base_url=str(api.base_url), timeout=30.0)
    for user, role in (("otto", "operator"), ("vic", "viewer")):
        assert main(["token", "add", "--user", user, "--role", role,
                     "--file", str(tokens_file)]) == 0
    otto, vic = [out.splitlines()[-1] for out in capsys.readouterr().out.split("twinloop: ")[1:]]
    otto_bearer = {"Authorization": f"Bearer {otto}"}
    vic_bearer = {"Authorization": f"Bearer {vic}"}
    assert bare.get("/assets/tank-01", headers=otto_bearer).status_code == 200
    assert bare.put("/assets/tank-01/mode", json={"mode": "OFF"},
                    headers=vic_bearer).status_code == 403
    reply = bare.put("/assets/tank-01/reference", json={"T_bulk": 433.15}, headers=otto_bearer)
    assert reply.status_code == 200
    assert api.get("/assets/tank-01/audit").json()[-1]["user"] == "otto"

    assert main(["token", "remove", "--user", "otto", "--file", str(tokens_file)]) == 0
    reply = bare.get("/assets/tank-01", headers=otto_bearer)
    assert reply.status_code == 401 and reply.json()["detail"] == "invalid bearer token"
    assert bare.get("/assets/tank-01", headers=vic_bearer).status_code == 200
    assert main(["token", "remove", "--user", "otto", "--file", str(tokens_file)]) == 2
    assert "user 'otto' has no token" in capsys.readouterr().err


def test_operator_limits_must_lie_inside_the_engineering_limits(api):
    reply = api.put("/assets/tank-02/limits", json={"m_oil": {"lower": 0.2, "upper": 9.0}})
    assert reply.status_code == 422
    assert reply.json()["detail"] == ("m_oil: operator upper limit 9 is above the engineering "
                                      "upper limit 8")
    assert "operator_upper" not in api.get("/assets/tank-02/limits").json()["m_oil"]
    reply = api.put("/assets/tank-02/limits", json={"m_oil": {"lower": 0.2, "upper": 7.5}})
    assert reply.status_code == 200
    assert reply.json()["m_oil"] == {"lower": 0.1, "upper": 8.0, "max_rate": 0.02,
                                     "operator_lower": 0.2, "operator_upper": 7.5,
                                     "safe": 0.1}  # no configured safe value: the lower limit
    record = api.get("/assets/tank-02/audit").json()[-1]
    assert record["user"] == "olga" and "operator limits m_oil [0.2, 7.5]" in record["reason"]


def test_advisory_queues_proposals_with_reasons_for_approval_gated_at_approval_time(
        api, two_tanks):
    assert api.put("/assets/tank-01/mode", json={"mode": "ADVISORY"}).json() == {"mode": "ADVISORY"}
    truth = two_tanks.plants["tank-01"].truth.remote
    import ray

    held = ray.get(truth())["inputs"]["m_oil"]
    two_tanks.run_for(600.0)
    assert ray.get(truth())["inputs"]["m_oil"] == held  # nothing written while advising
    queued = api.get("/assets/tank-01/audit", params={"outcome": "queued"}).json()
    assert queued and all(r["applied"] is None for r in queued)
    assert "ADVISORY" in queued[-1]["reason"]

    proposals = api.get("/assets/tank-01/proposals").json()
    assert len(proposals) == 5  # one per 120 s tick
    first, *_, newest = proposals
    assert "T_bulk" in newest["reason"] and "m_oil" in newest["setpoints"]

    reply = api.post(f"/assets/tank-01/proposals/{newest['n']}/approve")
    assert reply.status_code == 200, reply.text
    applied = reply.json()["applied"]["m_oil"]
    assert ray.get(truth())["inputs"]["m_oil"] == pytest.approx(applied)
    assert abs(applied - held) <= 0.02 * 600.0 + 1e-9
    record = api.get("/assets/tank-01/audit").json()[-1]
    assert (record["source"], record["user"]) == ("approval", "olga")
    assert f"approved proposal #{newest['n']}" in record["reason"]

    reply = api.post(f"/assets/tank-01/proposals/{proposals[1]['n']}/reject")
    assert reply.status_code == 200
    record = api.get("/assets/tank-01/audit").json()[-1]
    assert (record["outcome"], record["user"], record["applied"]) == ("rejected", "olga", None)
    remaining = [p["n"] for p in api.get("/assets/tank-01/proposals").json()]
    assert newest["n"] not in remaining and proposals[1]["n"] not in remaining

    assert api.post(f"/assets/tank-01/proposals/{newest['n']}/approve").status_code == 404
    two_tanks.run_for(600.0)  # the first proposal is now older than max_measurement_age 600 s
    stale = api.post(f"/assets/tank-01/proposals/{first['n']}/approve").json()
    assert stale["applied"] == {}
    assert "measurement stale" in stale["records"][0]["reason"]

    api.put("/assets/tank-01/mode", json={"mode": "AUTONOMOUS"})
    modes = [r for r in api.get("/assets/tank-01/audit").json() if r["signal"] == "mode"]
    assert [r["reason"] for r in modes[-2:]] == ["mode AUTONOMOUS -> ADVISORY",
                                                 "mode ADVISORY -> AUTONOMOUS"]


def test_metrics_cover_every_asset_and_pass_promtool(api):
    text = api.get("/metrics").text
    for name in ("twinloop_tick_duration_seconds_bucket", "twinloop_deadline_overruns_total",
                 "twinloop_solver_duration_seconds_count", "twinloop_estimate",
                 'twinloop_safety_decisions_total{asset="tank-01",kind="asphalt_tank",outcome="clamped"}'):
        assert name in text
    assert 'asset="tank-02"' in text
    assert_promtool_accepts(text)


def test_audit_after_kill_9_of_the_safety_actor_holds_every_decision_before_it(api, two_tanks):
    import ray

    from tests.actors.test_fault_tolerance import kill, wait_until_restarted

    before = {asset: api.get(f"/assets/{asset}/audit", params={"limit": 100_000}).json()
              for asset in ("tank-01", "tank-02")}
    assert all(len(records) > 10 for records in before.values())
    wait_until_restarted(two_tanks.safety, kill(two_tanks.safety))
    for asset, records in before.items():
        assert api.get(f"/assets/{asset}/audit", params={"limit": 100_000}).json() == records
    two_tanks.run_for(240.0)
    after = api.get("/assets/tank-01/audit", params={"limit": 100_000}).json()
    assert after[:len(before["tank-01"])] == before["tank-01"]
    assert len(after) > len(before["tank-01"])
    assert ray.get(two_tanks.assets["tank-01"].status.remote())["healthy"]
