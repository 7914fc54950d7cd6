"""HTTP status reads under load, and what they cost the control ticks (issue 11 item 6).

    python bench/http_load.py [--clients 20] [--seconds 10]

The pilot site (examples/pilot.toml: 12 assets of every kind, Modbus PLCs, as ``make
demo`` runs it) runs in real time at its own speed on an embedded Ray with the HTTP API.
``CLIENTS`` concurrent clients (aiohttp, in this process) read ``GET /assets/tank-01`` as
fast as they are answered, for ``SECONDS`` wall seconds per phase:

- ``constant_idle``: the ceiling of the HTTP stack itself on this machine: a Serve
  deployment on the same proxy whose ``GET /const/assets/{id}`` answers a constant body
  (one status of the asset, as JSON) without authentication or any lookup, before the
  fleet starts ticking (nothing else runs);
- ``constant``: the same while the fleet runs: what the control load leaves the stack;
- ``pushed``: the API as deployed, answering from the statuses the assets push
  (serve.status_cache);
- ``pull`` (the baseline, measured in the same run): the same routes deployed a second
  time under ``/pull`` without the status board, so every read asks the asset's shard,
  as before pushes existed;
- ``pushed_mixed`` and ``pull_mixed``: the same, with one more client writing
  ``PUT /assets/tank-01/reference`` (the reference it already has: audited, no change to
  the control) back to back.

Each phase reports reads per second, read latency p50 and p99 (ms), writes per second,
errors, and the control ticks and deadline overruns of the whole fleet during it (from
each asset's ``ticks`` and ``overruns``). Ratios pushed / pull are the gain, pushed /
constant the share of the HTTP stack's ceiling reached. The machine's load average is
recorded with the run: on a machine other work loads, every figure moves with it. The goal
(issue 11 item 6): at least 1,000 reads/s at p99 <= 50 ms, no overrun during the load.
Results are merged into ``bench/results.json`` under ``"http"``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import ray
import results_file
from fastapi import FastAPI, Response
from ports import free_port
from ray import serve

import plants
from actors.fleet import Fleet, build_fleet
from engine.clock import ClockSpec
from engine.config import load_site
from serve.app import TwinLoopAPI, start_http
from serve.auth import Token, hash_token

PILOT = Path(__file__).resolve().parents[1] / "examples" / "pilot.toml"
ASSET = "tank-01"
WARM_UP_S = 600.0
"""Wall seconds at most to wait for every asset's first ticks."""


constant_app = FastAPI()


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
@serve.ingress(constant_app)
class Constant:
    """The baseline: the HTTP stack answering a constant body."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    @constant_app.get("/assets/{asset_id}")
    async def asset(self, asset_id: str) -> Response:
        return Response(self.body, media_type="application/json")


def pilot(audit_db: Path):
    site = plants.resolve_site(load_site(PILOT), PILOT)
    return msgspec.structs.replace(
        site, site=msgspec.structs.replace(site.site, name="bench-http", audit_db=str(audit_db)))


def fleet_counts(fleet: Fleet) -> tuple[int, int]:
    """(ticks, overruns) of the whole fleet, asked of the shards."""
    statuses = ray.get([handle.status.remote() for handle in fleet.assets.values()])
    return sum(s["ticks"] for s in statuses), sum(s["overruns"] for s in statuses)


def wait_ticking(fleet: Fleet, ticks: int) -> None:
    give_up = time.monotonic() + WARM_UP_S
    while time.monotonic() < give_up:
        statuses = ray.get([h.status.remote() for h in fleet.assets.values()])
        if min(s["ticks"] for s in statuses) >= ticks:
            return
        time.sleep(1.0)
    raise TimeoutError(f"the fleet did not tick {ticks} times within {WARM_UP_S} s")


async def load(url: str, token: str, prefix: str, clients: int, seconds: float,
               write: bool) -> dict[str, Any]:
    """``clients`` readers of GET {prefix}/assets/ASSET (and a writer if ``write``) for
    ``seconds``; each reader's loop stops by itself at the end."""
    headers = {"Authorization": f"Bearer {token}"}
    read_ms: list[float] = []
    writes = errors = 0
    connector = aiohttp.TCPConnector(limit=clients + 1)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:
        async with session.get(f"{prefix}/assets/{ASSET}") as reply:
            reference = (await reply.json())["reference"]
        body = {name: entry["value"] for name, entry in reference.items()}
        end = time.monotonic() + seconds

        async def reader() -> None:
            nonlocal errors
            while time.monotonic() < end:
                start = time.perf_counter()
                async with session.get(f"{prefix}/assets/{ASSET}") as reply:
                    await reply.read()
                    if reply.status != 200:
                        errors += 1
                        continue
                read_ms.append(1000.0 * (time.perf_counter() - start))

        async def writer() -> None:
            nonlocal writes, errors
            while time.monotonic() < end:
                async with session.put(f"{prefix}/assets/{ASSET}/reference",
                                       json=body) as reply:
                    await reply.read()
                    if reply.status == 200:
                        writes += 1
                    else:
                        errors += 1

        started = time.monotonic()
        tasks = [reader() for _ in range(clients)] + ([writer()] if write else [])
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
    read_ms.sort()
    return {"reads": len(read_ms), "reads_per_s": round(len(read_ms) / elapsed, 1),
            "p50_ms": round(statistics.median(read_ms), 2) if read_ms else None,
            "p99_ms": round(read_ms[int(0.99 * (len(read_ms) - 1))], 2) if read_ms else None,
            "writes_per_s": round(writes / elapsed, 1), "errors": errors,
            "seconds": round(elapsed, 1)}


def shard_questions(fleet: Fleet) -> int:
    """Status questions the shards answered (a read that was not served from a push)."""
    return sum(ray.get(shard.shard_status.remote())["status_queries"]
               for shard in fleet.shards.values())


def phase(fleet: Fleet, url: str, token: str, prefix: str, clients: int, seconds: float,
          write: bool) -> dict[str, Any]:
    asked = shard_questions(fleet)
    ticks, overruns = fleet_counts(fleet)
    result = asyncio.run(load(url, token, prefix, clients, seconds, write))
    ticks_after, overruns_after = fleet_counts(fleet)
    result.update(ticks=ticks_after - ticks, overruns=overruns_after - overruns,
                  shard_questions=shard_questions(fleet) - asked - 2 * len(fleet.assets))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    load_before = round(os.getloadavg()[0], 1)
    token = secrets.token_urlsafe(32)
    tokens = [Token("bench", "operator", hash_token(token))]
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            site = pilot(Path(tmp) / "audit.db")
            fleet = build_fleet(site, ClockSpec(speed=site.site.speed), namespace="bench-http",
                                modbus=True)
            url = start_http(fleet, "127.0.0.1", free_port(), tokens)
            # the baseline: the same routes, every read asking the asset's shard
            pull = TwinLoopAPI.bind(  # type: ignore[attr-defined]
                site.site.name, fleet.assets, fleet.safety, tokens)
            serve.run(pull, name="pull", route_prefix="/pull")
            body = msgspec.json.encode(ray.get(fleet.assets[ASSET].status.remote()))
            serve.run(Constant.bind(body),  # type: ignore[attr-defined]
                      name="constant", route_prefix="/const")
            phases = {"constant_idle": phase(fleet, url, token, "/const", args.clients,
                                             args.seconds, False)}
            print("constant_idle", phases["constant_idle"], flush=True)
            fleet.start()
            wait_ticking(fleet, 2)
            for name, prefix, write in (("constant", "/const", False),
                                        ("pushed", "", False), ("pull", "/pull", False),
                                        ("pushed_mixed", "", True),
                                        ("pull_mixed", "/pull", True)):
                phases[name] = phase(fleet, url, token, prefix, args.clients, args.seconds,
                                     write)
                print(name, phases[name], flush=True)
            serve.shutdown()
            fleet.shutdown()
    finally:
        ray.shutdown()
    pushed, baseline, ceiling = phases["pushed"], phases["pull"], phases["constant"]
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "site": "examples/pilot.toml (12 assets, Modbus), real time at its own speed",
        "route": f"GET /assets/{ASSET}",
        "clients": args.clients,
        **phases,
        "reads_per_s_ratio_pushed_over_pull": round(
            pushed["reads_per_s"] / max(baseline["reads_per_s"], 1e-9), 2),
        "p99_ratio_pushed_over_pull": round(pushed["p99_ms"] / baseline["p99_ms"], 3),
        "reads_per_s_ratio_pushed_over_constant": round(
            pushed["reads_per_s"] / max(ceiling["reads_per_s"], 1e-9), 2),
        "load_average_1min": {"before": load_before, "after": round(os.getloadavg()[0], 1)},
        "goal": "reads_per_s >= 1000, p99_ms <= 50, overruns 0 (issue 11 item 6)",
    }
    results_file.save("http", result)
    print(msgspec.json.format(msgspec.json.encode(result), indent=2).decode())



if __name__ == "__main__":
    main()
