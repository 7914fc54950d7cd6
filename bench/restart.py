"""How soon a killed asset actor controls again, against how soon a new one starts.

    python bench/restart.py

One tank of the pilot site (tank-01) runs in real time at 120x (one 120 s control period
per wall second) on an embedded Ray. Measured in the same run:

- Cold start (the baseline): wall seconds from creating the site's actors to the asset's
  first completed tick.
- Restart: the asset actor's worker process is killed with SIGKILL after at least three
  ticks; wall seconds from the kill to the first tick of the restarted actor, which has
  restored its estimator, controller plan, reference and mode from its checkpoint
  (issue 5 asks for at most 5 s). Repeated ``KILLS`` times; median and maximum.

The ratio restart / cold start says what the checkpoint saves over starting afresh.
Results are merged into ``bench/results.json`` under the key ``"restart"``.
"""

from __future__ import annotations

import os
import platform
import signal
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

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


def one_tank(audit_db: Path):
    site = plants.resolve_site(load_site(PILOT), PILOT)
    tank = next(asset for asset in site.assets if asset.id == "tank-01")
    return msgspec.structs.replace(
        site, assets=[tank], interlocks=[],
        site=msgspec.structs.replace(site.site, name="bench-restart", audit_db=str(audit_db)))


def wait_for(condition, what: str) -> float:
    """Poll ``condition()`` until true; the wall time it took."""
    start = time.monotonic()
    while time.monotonic() - start < TIMEOUT_S:
        try:
            if condition():
                return time.monotonic() - start
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):  # restarting
            pass
        time.sleep(0.02)
    raise TimeoutError(f"{what}: not within {TIMEOUT_S} s")


def main() -> None:
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
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
    finally:
        ray.shutdown()
    result = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__, "load_average_1m_before": os.getloadavg()[0]},
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


if __name__ == "__main__":
    main()
