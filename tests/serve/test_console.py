"""The operator console in a real browser: Debian's Chromium driven by Playwright, against
the real Ray Serve app over loopback, on a site with one asset of every kind in lock-step.

Screenshots of every page go to var/test-artifacts/console/ (the README's come from there).
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import httpx
import pytest

from serve.auth import Token, hash_token
from tests.conftest import free_port

SITE = Path(__file__).resolve().parents[1] / "sites" / "every_kind.toml"
ARTEFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKENS = {role: secrets.token_urlsafe(32) for role in ("viewer", "operator")}
USERS = {"viewer": "vera", "operator": "olga"}
KIND_PAGES = {"well-01": "Sucker-rod pump", "terminal": "Terminal", "dra-line": "DRA pipeline",
              "cell-01": "Smelting cell", "pump-01": "Centrifugal pump", "tank-01": "Heated tank"}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
"""Chromium's background connections are refused on a closed plant network (and here)."""

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs "
                                                          "Debian's chromium)")


@pytest.fixture(scope="module")
def fleet(site_fleet):
    with site_fleet(SITE, "test-console", history=True) as fleet:
        fleet.run_for(600.0)
        yield fleet


@pytest.fixture(scope="module")
def url(fleet):
    from ray import serve

    from serve.app import start_http

    tokens = [Token(USERS[role], role, hash_token(token)) for role, token in TOKENS.items()]
    yield start_http(fleet, "127.0.0.1", free_port(), tokens)
    serve.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, url):
    """A fresh browser tab that records every console error and failed request."""
    context = browser.new_context(base_url=url, viewport={"width": 1280, "height": 720})
    tab = context.new_page()
    tab.problems = []
    tab.on("console", lambda m: m.type == "error" and tab.problems.append(m.text))
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    tab.on("requestfailed", lambda r: tab.problems.append(f"{r.url}: {r.failure}"))
    yield tab
    context.close()


def sign_in(page, role: str) -> None:
    page.goto("/")
    page.get_by_label("Token").fill(TOKENS[role])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text(f"{USERS[role]} ({role})").wait_for()


def shoot(page, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)


def test_console_files_are_served_by_the_app_itself_without_a_token(url):
    """No CDN: the page, its scripts and Plotly all come from the app, token-free (they
    hold no data); the data routes still need a token."""
    with httpx.Client(base_url=url, timeout=30.0) as client:
        index = client.get("/")
        assert index.status_code == 200 and "text/html" in index.headers["content-type"]
        for script in ("/console/console.js", "/console/panels.js",
                       "/console/vendor/plotly.min.js"):
            answer = client.get(script)
            assert answer.status_code == 200, script
            assert "javascript" in answer.headers["content-type"]
        assert "http://" not in index.text and "https://" not in index.text
        assert client.get("/fleet").status_code == 401


def test_a_wrong_token_is_refused_at_sign_in(page):
    page.goto("/")
    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").get_by_text("invalid bearer token").wait_for()


def test_fleet_overview_lists_every_asset_and_filters_on_the_server(page):
    sign_in(page, "viewer")
    rows = page.locator(".rows .row")
    rows.first.wait_for()
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.asset)")) == sorted(KIND_PAGES)
    tank = page.locator("[data-asset='tank-01']")
    assert "▲ 1 high" in tank.inner_text()  # its LO alarm, by shape and text
    page.get_by_label("search assets").fill("well")
    page.get_by_text("1 assets").wait_for()
    assert rows.evaluate_all("rs => rs.map(r => r.dataset.asset)") == ["well-01"]
    shoot(page, "fleet")
    assert page.problems == []


@pytest.mark.parametrize("asset_id", sorted(KIND_PAGES))
def test_each_kind_page_draws_its_screen_from_the_twin(page, asset_id):
    sign_in(page, "operator")
    page.goto(f"/#/asset/{asset_id}")
    panel = page.locator("section.panel")
    panel.get_by_role("heading", name=KIND_PAGES[asset_id]).wait_for()
    page.wait_for_function("() => document.querySelector('section.panel')?.dataset.revision")
    if asset_id == "well-01":
        page.locator(".js-plotly-plot").nth(2).wait_for()  # cards, fillage, Goodman
        # the simulated plant hands its surface card over with each measurement
        page.locator(".gtitle", has_text="Measured cards").wait_for()
        assert page.get_by_text("surface (measured)").count() == 1
        assert page.locator("svg.pump").get_attribute("data-spm") is not None
    if asset_id == "terminal":
        assert page.locator("[data-tank]").count() == 2
    shoot(page, asset_id)
    assert page.problems == []


def test_a_viewer_sees_no_write_controls(page):
    sign_in(page, "viewer")
    page.goto("/#/asset/well-01")
    page.locator("section.panel").get_by_role("heading", name="Sucker-rod pump").wait_for()
    for name in ("Write through the safety gate", "Set reference", "approve", "reject",
                 "Switch to AUTONOMOUS", "acknowledge", "shelve"):
        assert page.get_by_role("button", name=name).count() == 0
    assert page.get_by_label("mode").count() == 0
    assert page.problems == []


def test_an_operator_approves_a_proposal_and_finds_it_in_the_audit(page, fleet):
    """well-01 runs in ADVISORY: its controller's proposals wait. The operator approves
    the newest from the page; the write goes through the safety gate and shows in the
    audit list with the operator's name."""
    fleet.run_for(600.0)
    sign_in(page, "operator")
    page.goto("/#/asset/well-01")
    pending = page.locator("[data-proposal]")
    pending.first.wait_for()
    number = pending.first.get_attribute("data-proposal")
    pending.first.get_by_role("button", name="approve").click()
    page.locator(f"[data-proposal='{number}']").wait_for(state="detached")
    audit = page.locator("table.audit tbody tr", has_text="olga")
    audit.first.wait_for()
    assert "SPM" in audit.first.inner_text()
    assert page.problems == []


def test_pages_update_live_as_the_assets_tick(page, fleet):
    """Pushed, not polled: after the page is drawn, ticks of the fleet reach it over the
    WebSocket (the status revision on the page moves on, and the fleet list's age too)."""
    sign_in(page, "viewer")
    page.goto("/#/asset/cell-01")
    page.get_by_text("live", exact=True).wait_for()
    page.wait_for_function("() => document.querySelector('section.panel')?.dataset.revision")
    shown = int(page.locator("section.panel").get_attribute("data-revision"))
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    fleet.run_for(300.0)
    page.wait_for_function(
        f"() => +document.querySelector('section.panel')?.dataset.revision > {shown}")
    assert not any(url.endswith("/assets/cell-01") for url in requests)  # not polled
    assert page.evaluate("window.twinloop.latencies.length") > 0
    assert page.problems == []


def test_live_feed_refuses_a_socket_without_a_valid_token(url):
    import json

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    with connect(url.replace("http", "ws", 1) + "/live") as socket:
        socket.send(json.dumps({"token": "wrong"}))
        assert json.loads(socket.recv(timeout=30)) == {"error": "invalid bearer token"}
        with pytest.raises(ConnectionClosed):
            socket.recv(timeout=30)
        assert socket.close_code == 1008


def test_an_operator_acknowledges_an_alarm_and_finds_it_in_the_audit(page):
    """tank-01 starts below its LO limit: the alarm is up, unacknowledged. The operator
    acknowledges it on the page; the pushed status shows it acknowledged, and the audit
    names the operator."""
    sign_in(page, "operator")
    page.goto("/#/asset/tank-01")
    row = page.locator("[data-alarm='tank-01:T_bulk.LO']")
    row.get_by_text("UNACKNOWLEDGED").wait_for()
    row.get_by_role("button", name="acknowledge").click()
    row.get_by_text("ACKNOWLEDGED", exact=True).wait_for()
    page.locator("table.audit tbody tr", has_text="T_bulk.LO").filter(has_text="olga") \
        .first.wait_for()
    assert page.problems == []


def test_trend_shows_measurement_estimate_and_reference_from_the_historian(page):
    sign_in(page, "viewer")
    page.goto("/#/asset/tank-01")
    trend = page.locator("section.trend")
    trend.locator(".js-plotly-plot .legendtext", has_text="measured").wait_for()
    names = trend.locator(".legendtext").evaluate_all("ts => ts.map(t => t.textContent)")
    assert {"measured", "estimate", "reference", "predicted"} <= set(names)  # do-mpc's plan
    assert page.problems == []


def test_an_operator_computes_and_approves_the_7_day_plan(page):
    sign_in(page, "operator")
    page.goto("/#/asset/dra-line")
    plan = page.locator(".plan-7d")
    plan.get_by_role("button", name="Compute 7-day plan").click()
    plan.get_by_role("button", name="Approve").click(timeout=120_000)
    plan.get_by_text("approved by olga").wait_for()
    assert page.locator(".js-plotly-plot", has_text="DRA injection by hour").count() == 1
    shoot(page, "dra-line-plan")
    # before the first plan, GET .../plan answers 404 as the contract says; the browser
    # logs that answer, and nothing else may go wrong
    assert [p for p in page.problems if "404 (Not Found)" not in p] == []
