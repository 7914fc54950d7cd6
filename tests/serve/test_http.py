"""The HTTP contract of DESIGN.md, over real HTTP on loopback, against the two-tank site."""

from __future__ import annotations

import shutil
import socket
import subprocess

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(two_tanks):
    from ray import serve

    from serve.app import start_http

    url = start_http(two_tanks, "127.0.0.1", free_port())
    with httpx.Client(base_url=url, timeout=30.0) as client:
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
    assert reference_change["user"] == "http" and reference_change["requested"] == before + 5.0


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


def test_malformed_body_is_422_naming_the_field(api):
    reply = api.put("/assets/tank-01/reference", json={"T_bulk": "hot"})
    assert reply.status_code == 422
    assert "T_bulk" in str(reply.json()["detail"])
    assert api.put("/assets/tank-01/mode", json={"mode": "TURBO"}).status_code == 422


def test_mode_change_stops_controller_writes_and_is_audited(api, two_tanks):
    assert api.put("/assets/tank-01/mode", json={"mode": "ADVISORY"}).json() == {"mode": "ADVISORY"}
    two_tanks.run_for(600.0)
    queued = api.get("/assets/tank-01/audit", params={"outcome": "queued"}).json()
    assert queued and all(r["applied"] is None for r in queued)
    assert "ADVISORY" in queued[-1]["reason"]
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
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus; .ci/run installs it)")
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
