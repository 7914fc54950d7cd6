"""What one actor per asset costs: a fleet of asphalt tanks on an embedded Ray, against
the same control ticks run in-process without Ray, in the same run.

    python bench/fleet.py [--assets N] [--seconds S] [--speed X]

The design makes every asset a Ray actor (one process each, plus one process per
simulated plant and one safety actor per site). That buys isolation, restarts and
scale-out, and costs memory, start-up time and a remote call per step of the tick.
This benchmark measures those costs, each next to a baseline from the same run:

- Fleet start: wall seconds of ``build_fleet`` + ``Fleet.start`` for N tanks (total
  and per asset), real-time clock at ``speed`` twin-seconds per wall second.
- Tick time: each asset's own tick histogram (measure -> estimate -> propose -> gate
  -> write, in its asset shard, with the plant shard and safety actor reached over
  Ray) against the same tick run in a plain loop in this process (SimulatedPlant,
  ``ControlLoop.tick`` with the safety policy in memory, engine.gate.PolicyGate, and
  the records committed to the SQLite audit log, no Ray), as many ticks per asset as
  each asset runs. Their ratio is the Ray overhead. Means are exact (histogram sums);
  asset medians and p99 are interpolated inside the metric buckets (..., 25, 50, 100,
  250 ms), so they are coarse. The controller's solve time is compared the same way,
  which tells slower numerics (processes competing for the CPUs) from messaging.
- Real-time health: ticks, deadline overruns (overrun ratio = overruns / (ticks +
  overruns)), controller solve time, tick errors, per asset. Overruns are also read
  just after start: each clock is made when its actor is built, so deadlines that
  pass while the rest of the fleet is still being built count as overruns at the
  first tick; the rest are misses of the running loop.
- The non-solve part of a tick (tick mean minus solve mean): the estimator plus, in
  the actors, the remote calls to the plant and the safety actor and their queueing.
- Memory: resident (RSS) and unique (USS) memory of every actor process, found with
  psutil among this driver's descendant processes by their ``ray::<Class>`` titles
  (Ray's state API needs the dashboard, which is off), against the RSS growth of this
  process per in-process loop: the first loop (which also pays for loading do-mpc,
  CasADi and IPOPT) and each further one.

Results are merged into ``bench/results.json`` under the key ``"fleet"``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
import ray

import results_file
import plants
from actors.fleet import build_fleet
from controllers import build_controller, build_estimator
from engine.audit import AuditLog
from engine.clock import ClockSpec
from engine.config import SiteConfig, parse_site
from engine.gate import PolicyGate
from engine.loop import ControlLoop
from engine.simulation import SimulatedPlant

ACTOR_CLASSES = ("AssetShard", "PlantShard", "SafetyActor")
BASELINE_ASSETS = 3
MB = 2**20
STARTUP_READ_S = 0.5
"""Wall seconds after Fleet.start at which the overruns counted by the first tick are read."""


def site_config(n: int, speed: float, audit_db: Path) -> SiteConfig:
    """N asphalt tanks like the pilot's, with varied initial temperatures and seeds."""
    parts = [f'[site]\nname = "bench"\nspeed = {speed}\naudit_db = "{audit_db}"\n']
    for i in range(1, n + 1):
        t_bulk = 418.15 + (7 * i) % 25  # 145 to 169 °C
        parts.append(f"""
[[assets]]
id = "tank-{i:02d}"
kind = "asphalt_tank"
period_s = 120.0
max_measurement_age_s = 600.0
initial = {{ T_bulk = {t_bulk:.2f}, T_return = {t_bulk + 7:.2f} }}
inputs = {{ m_oil = 0.6 }}
reference = {{ T_bulk = 433.15 }}
[assets.limits.m_oil]
lower = 0.1
upper = 10.0
max_rate = 0.02
[assets.simulation]
seed = {i}
mismatch = {{ k_foul = 0.9, k_loss = 1.15 }}
""")
    return plants.resolve_site(parse_site("".join(parts)))


# -- baseline: the same tick, in-process ---------------------------------------------------

def baseline(site: SiteConfig, ticks: int, audit_db: Path) -> dict:
    """Run ``ticks`` lock-step ticks (as many as each actor runs, so that the cold first
    solve weighs the same) of the first BASELINE_ASSETS assets, one after the other,
    timing each tick and solve, and the process RSS after each asset's loop."""
    process = psutil.Process()
    audit = AuditLog(audit_db)
    rss = [process.memory_info().rss]
    tick_seconds, solve_seconds = [], []
    for asset in site.assets[:BASELINE_ASSETS]:
        epoch = time.time()
        model = plants.model_of(asset)
        loop = ControlLoop(
            asset.id, model, build_estimator(model, asset.estimator),
            build_controller(model, asset.controller, asset.limits),
            x0=asset.initial, u0=asset.inputs, d=asset.disturbances,
            reference=asset.reference, t0=epoch,
        )
        plant = SimulatedPlant(asset.id, model, asset.simulation, x0=asset.initial,
                               u0=asset.inputs, d=asset.disturbances, t0=epoch)
        gate = PolicyGate(asset, model.inputs.mapping(model.inputs.vector(asset.inputs)), epoch)
        for k in range(1, ticks + 1):
            t = epoch + k * asset.period_s
            started = time.perf_counter()
            plant.advance_to(t)
            result = loop.tick(t, plant.measure(), gate)
            solve_seconds.append(result.proposal.solve_time_s)
            audit.append(result.decision.records)
            if result.applied:
                plant.apply(result.applied)
            tick_seconds.append(time.perf_counter() - started)
        rss.append(process.memory_info().rss)
    further = [(b - a) / MB for a, b in zip(rss[1:], rss[2:])]
    return {
        "assets": min(BASELINE_ASSETS, len(site.assets)),
        "ticks_per_asset": ticks,
        "tick_ms": _summary_ms(tick_seconds),
        "solve_ms": _summary_ms(solve_seconds),
        "first_loop_rss_mb": (rss[1] - rss[0]) / MB,
        "further_loop_rss_mb": statistics.median(further) if further else None,
    }


def _summary_ms(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"median": float(np.median(ms)), "p99": float(np.percentile(ms, 99)),
            "mean": float(ms.mean()), "max": float(ms.max())}


# -- the fleet on Ray ----------------------------------------------------------------------

def histogram_quantile(cumulative: list[tuple[str, int]], q: float) -> float | None:
    """Quantile of a cumulative-bucket histogram, interpolating linearly inside the
    bucket (Prometheus' histogram_quantile); the top finite bound if it is in +Inf."""
    total = cumulative[-1][1]
    if total == 0:
        return None
    rank = q * total
    lower, below = 0.0, 0
    for bound, count in cumulative:
        if count >= rank:
            if bound == "+Inf":
                return lower
            upper = float(bound)
            return lower + (upper - lower) * (rank - below) / max(count - below, 1)
        lower, below = float(bound), count
    return lower


def merge_histograms(histograms: list[list[tuple[str, int]]]) -> list[tuple[str, int]]:
    return [(bound, sum(h[i][1] for h in histograms))
            for i, (bound, _) in enumerate(histograms[0])]


def actor_memory() -> dict:
    """RSS and USS (MB) of this Ray session's actor processes, by actor class, and the RSS
    of Ray's own processes (GCS, raylet, agents, idle workers)."""
    by_class: dict[str, list[dict]] = {name: [] for name in ACTOR_CLASSES}
    ray_system_rss = 0
    for child in psutil.Process().children(recursive=True):
        try:
            title = child.cmdline()[0] if child.cmdline() else child.name()
            memory = child.memory_full_info()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        # "ray::AssetShard", "ray::AssetShard.status", "ray::shard:0:AssetShard.__init__"
        actor_class = title.split(".")[0].rsplit(":", 1)[-1] if title.startswith("ray::") else ""
        if actor_class in by_class:
            by_class[actor_class].append({"rss": memory.rss / MB, "uss": memory.uss / MB})
        else:
            ray_system_rss += memory.rss
    def stats(values: list[float]) -> dict | None:
        return {"median": statistics.median(values), "max": max(values),
                "total": sum(values)} if values else None

    summary = {}
    for name, rows in by_class.items():
        summary[name] = {"count": len(rows), "rss_mb": stats([r["rss"] for r in rows]),
                         "uss_mb": stats([r["uss"] for r in rows])}
    everyone = [row for rows in by_class.values() for row in rows]
    summary["actors_total_rss_mb"] = sum(r["rss"] for r in everyone)
    summary["actors_total_uss_mb"] = sum(r["uss"] for r in everyone)
    summary["ray_system_rss_mb"] = ray_system_rss / MB
    return summary


def run_fleet(site: SiteConfig, seconds: float, speed: float) -> dict:
    """Start the fleet in real time, let it run, and read every asset's status and metrics."""
    started = time.perf_counter()
    ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    ray_init_s = time.perf_counter() - started
    n = len(site.assets)
    fleet = None
    try:
        started = time.perf_counter()
        fleet = build_fleet(site, ClockSpec(speed=speed))
        fleet.start()
        start_s = time.perf_counter() - started
        ids = list(fleet.assets)
        time.sleep(STARTUP_READ_S)
        at_start = ray.get([fleet.assets[i].status.remote() for i in ids])
        time.sleep(max(0.0, seconds - STARTUP_READ_S))
        memory = actor_memory()
        statuses = ray.get([fleet.assets[i].status.remote() for i in ids])
        snapshots = ray.get([fleet.assets[i].metrics_snapshot.remote() for i in ids])
    finally:
        if fleet is not None:
            fleet.shutdown()
        ray.shutdown()

    assets = []
    for status, snap, first in zip(statuses, snapshots, at_start):
        ticks, overruns = snap["ticks"], status["overruns"]  # status reads the clock live
        (_, tick_total), (solve_counts, solve_total) = snap["tick"], snap["solve"]
        solved = solve_counts[-1][1]
        assets.append({
            "id": status["id"], "ticks": ticks, "overruns": overruns,
            "overruns_at_start": first["overruns"],
            "overrun_ratio": overruns / (ticks + overruns) if ticks + overruns else None,
            "tick_mean_ms": 1e3 * tick_total / ticks if ticks else None,
            "solve_mean_ms": 1e3 * solve_total / solved if solved else None,
            "last_solve_ms": (1e3 * status["controller"]["solve_time_s"]
                              if status["controller"]["solve_time_s"] is not None else None),
            "solver_status": status["controller"]["status"],
            "errors": status["errors"],
        })
    tick_hist = merge_histograms([s["tick"][0] for s in snapshots])
    solve_hist = merge_histograms([s["solve"][0] for s in snapshots])
    ticks = sum(a["ticks"] for a in assets)
    solves = solve_hist[-1][1]
    overruns = sum(a["overruns"] for a in assets)
    overruns_at_start = sum(a["overruns_at_start"] for a in assets)

    def quantile_ms(hist, q):
        value = histogram_quantile(hist, q)
        return None if value is None else 1e3 * value

    return {
        "ray_init_s": ray_init_s,
        "start_s": start_s,
        "start_per_asset_s": start_s / n,
        "ticks": ticks,
        "overruns": overruns,
        "overrun_ratio": overruns / (ticks + overruns) if ticks + overruns else None,
        "overruns_at_start": overruns_at_start,
        "overruns_after_start": overruns - overruns_at_start,
        "assets_with_errors": sum(bool(a["errors"]) for a in assets),
        "tick_ms": {"median": quantile_ms(tick_hist, 0.5), "p99": quantile_ms(tick_hist, 0.99),
                    "mean": 1e3 * sum(s["tick"][1] for s in snapshots) / ticks if ticks else None},
        "solve_ms": {"median": quantile_ms(solve_hist, 0.5), "p99": quantile_ms(solve_hist, 0.99),
                     "mean": (1e3 * sum(s["solve"][1] for s in snapshots) / solves
                              if solves else None)},
        "memory": memory,
        "per_asset": assets,
    }


# -- report --------------------------------------------------------------------------------

def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def non_solve(r: dict) -> float | None:
    """Mean ms of a tick spent outside the controller's solve."""
    tick, solve = r["tick_ms"]["mean"], r["solve_ms"]["mean"]
    return None if tick is None or solve is None else tick - solve


def save(result: dict) -> None:
    results_file.save("fleet", result)


def print_summary(r: dict) -> None:
    f, b, m = r["fleet"], r["baseline"], r["fleet"]["memory"]

    def fmt(x, spec=".2f"):
        return "n/a" if x is None else format(x, spec)

    print(f"fleet: {r['assets']} asphalt tanks, {r['seconds']:g} s wall at speed {r['speed']:g} "
          f"on {r['machine']['cpus']} CPUs (load {r['machine']['load_average_1m_before']:.1f} "
          f"before), Ray {r['machine']['ray']}")
    print(f"  ray.init {f['ray_init_s']:.1f} s; build_fleet + start {f['start_s']:.1f} s "
          f"({f['start_per_asset_s']:.2f} s per asset)")
    print(f"  ticks {f['ticks']} (expected {r['expected_ticks_per_asset']} per asset), "
          f"overruns {f['overruns']} (ratio {fmt(f['overrun_ratio'], '.3f')}: "
          f"{f['overruns_at_start']} at start, {f['overruns_after_start']} after), "
          f"assets with errors {f['assets_with_errors']}")
    print(f"  tick ms: actor median {fmt(f['tick_ms']['median'])} p99 {fmt(f['tick_ms']['p99'])} "
          f"mean {fmt(f['tick_ms']['mean'])} | in-process median {b['tick_ms']['median']:.2f} "
          f"p99 {b['tick_ms']['p99']:.2f} mean {b['tick_ms']['mean']:.2f}")
    print(f"  solve ms: actor median {fmt(f['solve_ms']['median'])} "
          f"p99 {fmt(f['solve_ms']['p99'])} mean {fmt(f['solve_ms']['mean'])} "
          f"| in-process median {b['solve_ms']['median']:.2f} "
          f"p99 {b['solve_ms']['p99']:.2f} mean {b['solve_ms']['mean']:.2f}")
    print(f"  actor / in-process: tick x{fmt(r['ratios']['tick_median'])} (median), "
          f"x{fmt(r['ratios']['tick_mean'])} (mean); "
          f"solve x{fmt(r['ratios']['solve_mean'])} (mean); "
          f"rest of the tick {fmt(non_solve(f))} vs {fmt(non_solve(b))} ms "
          f"(x{fmt(r['ratios']['non_solve_mean'], '.0f')})")
    for name in ACTOR_CLASSES:
        c = m[name]
        if c["rss_mb"]:
            print(f"  {name:<19} x{c['count']:<3} RSS MB median {c['rss_mb']['median']:.0f} "
                  f"max {c['rss_mb']['max']:.0f} total {c['rss_mb']['total']:.0f}; "
                  f"USS median {c['uss_mb']['median']:.0f}")
    print(f"  actors total RSS {m['actors_total_rss_mb']:.0f} MB "
          f"(USS {m['actors_total_uss_mb']:.0f} MB), "
          f"Ray's own processes {m['ray_system_rss_mb']:.0f} MB")
    print(f"  in-process loop RSS: first {b['first_loop_rss_mb']:.1f} MB (with imports), "
          f"each further {fmt(b['further_loop_rss_mb'], '.1f')} MB; one asset actor + plant actor "
          f"= x{fmt(r['ratios']['asset_pair_rss_vs_further_loop'], '.0f')} a further loop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--speed", type=float, default=60.0)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # other work on the machine skews every timing here

    with tempfile.TemporaryDirectory(prefix="twinloop-bench-") as tmp:
        site = site_config(args.assets, args.speed, Path(tmp) / "audit.db")
        expected_ticks = max(1, round(args.seconds * args.speed / site.assets[0].period_s))
        base = baseline(site, expected_ticks, Path(tmp) / "baseline-audit.db")
        fleet = run_fleet(site, args.seconds, args.speed)

    memory = fleet["memory"]
    pair_rss = sum(memory[c]["rss_mb"]["median"] for c in ("AssetShard", "PlantShard")
                   if memory[c]["rss_mb"])
    further = base["further_loop_rss_mb"] or 0.0  # None with fewer than two baseline loops
    result = {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__, "platform": platform.platform(),
                    "memory_gb": psutil.virtual_memory().total / 2**30,
                    "load_average_1m_before": load_before},
        "assets": args.assets, "seconds": args.seconds, "speed": args.speed,
        "expected_ticks_per_asset": expected_ticks,
        "fleet": fleet,
        "baseline": base,
        "ratios": {
            "tick_median": ratio(fleet["tick_ms"]["median"], base["tick_ms"]["median"]),
            "tick_mean": ratio(fleet["tick_ms"]["mean"], base["tick_ms"]["mean"]),
            "solve_mean": ratio(fleet["solve_ms"]["mean"], base["solve_ms"]["mean"]),
            "non_solve_mean": ratio(non_solve(fleet), non_solve(base)),
            "asset_pair_rss_vs_further_loop": ratio(pair_rss, further) if further > 0 else None,
        },
    }
    save(result)
    print_summary(result)


if __name__ == "__main__":
    main()
