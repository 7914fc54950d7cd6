"""Tick-to-browser latency of the operator console (issue 13 item 2).

    python bench/console.py [--seconds 60]

The pilot site (examples/pilot.toml: 12 assets of every kind, Modbus PLCs, as ``make
demo`` runs it) runs in real time at its own speed on an embedded Ray with the HTTP API.
Headless Chromium (Debian's, driven by Playwright) signs in to the console and shows the
fleet overview, which follows every asset over the WebSocket /live. Each status carries
the wall time it was built, right after its tick's decision (``built_at``); the page
records, for every status it shows, the time from then to the animation frame after the
DOM update (``window.twinloop.latencies``, Date.now() on the same machine).

Baseline, in the same run: a WebSocket client in this process (no browser) following the
same assets records the time from ``built_at`` to each message's arrival. The ratio
browser / baseline is what the page adds. Goal: p99 <= 50 ms from decision to browser.
Results are merged into ``bench/results.json`` under ``"console"``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import ray
import results_file
from playwright.sync_api import sync_playwright
from ports import consecutive_free_ports, free_port
from ray import serve
from websockets.sync.client import connect

import plants
from actors.fleet import build_fleet
from engine.clock import ClockSpec
from engine.config import load_site
from serve.app import start_http
from serve.auth import Token, hash_token

PILOT = Path(__file__).resolve().parents[1] / "examples" / "pilot.toml"
WARM_UP_S = 600.0
"""Wall seconds at most to wait for every asset's first status."""
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(latencies: list[float]) -> dict[str, float]:
    return {"statuses": len(latencies), "p50_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies)}


def raw_client(url: str, token: str, ids: list[str], stop: threading.Event,
               latencies: list[float]) -> None:
    """The baseline: the same feed, read by a plain WebSocket client."""
    with connect(url.replace("http", "ws", 1) + "/live") as feed:
        feed.send(json.dumps({"token": token}))
        feed.send(json.dumps({"follow": ids}))
        while not stop.is_set():
            try:
                message = json.loads(feed.recv(timeout=1.0))
            except TimeoutError:
                continue
            now = time.time()
            latencies += [1000 * (now - s["built_at"]) for s in message.get("statuses", [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("bench/console.py needs Chromium (apt-get install chromium)")
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    token = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as work:
        site = plants.resolve_site(load_site(PILOT), PILOT)
        site = msgspec.structs.replace(
            site, site=msgspec.structs.replace(site.site, name="bench-console",
                                               audit_db=os.path.join(work, "audit.db")),
            modbus=msgspec.structs.replace(
                site.modbus, base_port=consecutive_free_ports(len(site.assets))))
        fleet = build_fleet(site, ClockSpec(speed=site.site.speed), namespace="bench-console",
                            modbus=True)
        try:
            url = start_http(fleet, "127.0.0.1", free_port(),
                             [Token("bench", "viewer", hash_token(token))])
            fleet.start()
            ids = sorted(fleet.assets)
            give_up = time.monotonic() + WARM_UP_S
            while any(s["built_at"] is None for s in ray.get(
                    [h.summary.remote() for h in fleet.assets.values()])):
                if time.monotonic() > give_up:
                    raise SystemExit(f"assets not ticking after {WARM_UP_S:g} s")
                time.sleep(1.0)
            stop, baseline = threading.Event(), []
            reader = threading.Thread(target=raw_client, args=(url, token, ids, stop, baseline))
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium,
                                                     args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                page.goto(url + "/")
                page.get_by_label("Token").fill(token)
                page.get_by_role("button", name="Sign in").click()
                page.get_by_text("live", exact=True).wait_for()
                reader.start()
                page.evaluate("window.twinloop.latencies.length = 0")
                time.sleep(args.seconds)
                shown = page.evaluate("window.twinloop.latencies")
                browser.close()
            stop.set()
            reader.join()
        finally:
            serve.shutdown()
            fleet.shutdown()
            ray.shutdown()
    if not shown or not baseline:
        raise SystemExit(f"no live statuses measured (browser {len(shown)}, "
                         f"baseline {len(baseline)})")
    browser_figures, raw_figures = summary(shown), summary(baseline)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "site": "examples/pilot.toml, real time at its speed", "seconds": args.seconds,
        "browser": browser_figures, "baseline_websocket_client": raw_figures,
        "ratio_p99_browser_to_baseline": browser_figures["p99_ms"] / raw_figures["p99_ms"],
        "goal": "p99 <= 50 ms from the tick's decision to the browser's update",
    }
    print(json.dumps(result, indent=2))
    results_file.save("console", result)


if __name__ == "__main__":
    main()
