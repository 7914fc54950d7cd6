"""How soon a killed asset actor controls again, against how soon a new one starts; and
how soon the whole pilot site is healthy again after it was killed.

    python bench/restart.py [asset | site [SITE_FILE]]     (default: both, the pilot)

``asset``: one tank of the pilot site (tank-01) runs in real time at 120x (one 120 s control period
per wall second) on an embedded Ray. Measured in the same run:

- Cold start (the baseline): wall seconds from creating the site's actors to the asset's
  first completed tick.
- Restart: the asset actor's worker process is killed with SIGKILL after at least three
  ticks; wall seconds from the kill to the first tick of the restarted actor, which has
  restored its estimator, controller plan, reference and mode from its checkpoint
  (issue 5 asks for at most 5 s). Repeated ``KILLS`` times; median and maximum.

The ratio restart / cold start says what the checkpoint saves over starting afresh.
Results are merged into ``bench/results.json`` under the key ``"restart"``.

``site``: the whole pilot site (or SITE_FILE, which must have a tank-01 with a T_bulk
reference; every asset, direct links instead of Modbus) on an
embedded Ray at 60x, as after kill -9 of ``twinloop demo`` and a new one on the same
audit database:

- Cold start to healthy: wall seconds from creating the site's actors on a new database
  to every asset's first tick with a healthy status.
- Restart to healthy: every actor of the site force-killed at once (``ray.kill``, no
  clean-up) after an operator's reference change; wall seconds from creating the actors
  again on the same database to every asset healthy, its decided reference back, and
  twin time past the newest audit record. Ray's own start (the demo's first seconds) is
  not in either figure.

Results are merged into ``bench/results.json`` under the key ``"site_restart"``.
"""

from __future__ import annotations

import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import ray
import results_file

import plants
from actors.fleet import build_fleet
from engine.clock import ClockSpec
from engine.config import load_site

PILOT = Path(__file__).resolve().parents[1] / "examples" / "pilot.toml"
SPEED = 120.0
KILLS = 3
TIMEOUT_S = 120.0
SITE_SPEED = 60.0
SITE_TIMEOUT_S = 900.0


def one_tank(audit_db: Path):
    site = plants.resolve_site(load_site(PILOT), PILOT)
    tank = next(asset for asset in site.assets if asset.id == "tank-01")
    return msgspec.structs.replace(
        site, assets=[tank], interlocks=[],
        site=msgspec.structs.replace(site.site, name="bench-restart", audit_db=str(audit_db)))


def wait_for(condition, what: str, timeout: float = TIMEOUT_S) -> float:
    """Poll ``condition()`` until true; the wall time it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if condition():
                return time.monotonic() - start
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):  # restarting
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{what}: not within {timeout} s")


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "ray": ray.__version__, "load_average_1m_before": os.getloadavg()[0]}


def asset_restart() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        fleet = build_fleet(one_tank(Path(tmp) / "audit.db"), ClockSpec(speed=SPEED),
                            namespace="bench-restart")
        asset = fleet.assets["tank-01"]
        fleet.start()
        wait_for(lambda: ray.get(asset.status.remote())["ticks"] >= 1, "first tick")
        cold = time.monotonic() - started
        restarts = []
        try:
            for _ in range(KILLS):
                wait_for(lambda: ray.get(asset.status.remote())["ticks"] >= 3, "three ticks")
                os.kill(ray.get(asset.pid.remote()), signal.SIGKILL)
                restarts.append(wait_for(
                    lambda: ray.get(asset.status.remote(), timeout=5)["ticks"] >= 1,
                    "first tick after the kill"))
        finally:
            fleet.shutdown()
    result = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "speed": SPEED,
        "cold_start_s": cold,
        "restart_s": {"median": statistics.median(restarts), "max": max(restarts),
                      "all": restarts},
        "restart_over_cold_start": statistics.median(restarts) / cold,
    }
    results_file.save("restart", result)
    print(f"asset actor: cold start to first tick {cold:.1f} s; SIGKILL to first tick after "
          f"restart median {result['restart_s']['median']:.1f} s, max "
          f"{result['restart_s']['max']:.1f} s ({KILLS} kills; "
          f"x{result['restart_over_cold_start']:.2f} of a cold start)")


def whole_site(path: Path, audit_db: Path):
    site = plants.resolve_site(load_site(path), path)
    return msgspec.structs.replace(site, site=msgspec.structs.replace(
        site.site, name="bench-site-restart", audit_db=str(audit_db)))


def healthy_site(site, namespace: str, reference: float | None = None) -> tuple[Any, float]:
    """Build and start the site's actors; the fleet and the wall seconds until every asset
    ticked and is healthy (and tank-01 tracks ``reference``, if given)."""
    started = time.monotonic()
    fleet = build_fleet(site, ClockSpec(speed=SITE_SPEED), namespace=namespace)
    fleet.start()

    def ready() -> bool:
        statuses = dict(zip(fleet.assets, ray.get(
            [a.status.remote() for a in fleet.assets.values()], timeout=10), strict=True))
        return all(s["ticks"] >= 1 and s["healthy"] for s in statuses.values()) and (
            reference is None
            or statuses["tank-01"]["reference"]["T_bulk"]["value"] == reference)

    wait_for(ready, "every asset healthy", SITE_TIMEOUT_S)
    return fleet, time.monotonic() - started


def site_restart(path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        site = whole_site(path, Path(tmp) / "audit.db")
        load = os.getloadavg()[0]
        fleet, cold = healthy_site(site, "bench-site-1")
        try:
            ray.get(fleet.assets["tank-01"].set_reference.remote({"T_bulk": 437.5}, "bench"))
            newest = ray.get(fleet.safety.newest_time.remote())
        finally:
            for handle in [*fleet.shards.values(), *fleet.plant_shards.values(), fleet.safety]:
                ray.kill(handle, no_restart=True)
        fleet, restart = healthy_site(site, "bench-site-2", reference=437.5)
        try:
            resumed_after = ray.get(fleet.assets["tank-01"].status.remote())["time"] - newest
        finally:
            fleet.shutdown()
    result = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine() | {"load_average_1m_before": load},
        "site": os.path.relpath(path, PILOT.parents[1]), "assets": len(site.assets),
        "speed": SITE_SPEED,
        "links": "direct (no Modbus)",
        "cold_start_to_healthy_s": cold,
        "restart_to_healthy_s": restart,
        "twin_time_after_newest_record_s": resumed_after,
    }
    results_file.save("site_restart", result)
    print(f"whole site {path.name} ({len(site.assets)} assets): cold start to healthy "
          f"{cold:.1f} s; killed and started again on its audit database: healthy, decisions back, "
          f"after {restart:.1f} s (twin time {resumed_after:+.0f} s past the newest record)")


def main(args: list[str]) -> None:
    which = args[:1]
    site_file = Path(args[1]).resolve() if args[1:] else PILOT
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    try:
        if which in ([], ["asset"]):
            asset_restart()
        if which in ([], ["site"]):
            site_restart(site_file)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
