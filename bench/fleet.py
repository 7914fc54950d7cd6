"""A mixed fleet on one node: memory, start time, overruns and tick latency per fleet size.

    python bench/fleet.py [--assets N [N ...]] [--kinds wells=60,cells=25,...]
                          [--duration S] [--warmup S] [--speed X] [--link direct|modbus]
                          [--assets-per-shard N] [--out FILE] ...

For each fleet size N (default 100 and 1,000, smallest first) it generates a site with
plants.sitegen (``twinloop site generate``): N assets of every kind in ``--kinds``
(weights, apportioned; each kind at least one), at their kinds' default periods, each
behind a simulated plant that differs from its twin. It starts the site on an embedded
Ray with the real fleet builder (actors.fleet.build_fleet: asset shards, plant shards,
the safety actor deciding each tick instant in one batch) on the real-time clock at
``--speed`` (1: real time), lets it warm up, and measures it for ``--duration`` s:

- Start time: wall seconds from ``build_fleet`` to every asset built and ticking
  (``Fleet.start`` returned), and ``ray.init`` apart.
- Memory: resident memory (RSS) summed over the worker processes of the asset shards,
  plant shards and safety actor (each found by the pid the actor reports, read with
  psutil at the end of the run), in total and per asset; unique memory (USS) too. Not
  counted: Ray's own processes (GCS, raylet, agents, idle workers: reported apart) and
  this driver. RSS counts the shared libraries in every process again.
- Overruns after start-up: each asset's ticks and overruns (actors.asset.HostedAsset:
  a deadline missed because the asset's last tick was still running, or passed by a
  whole period or more) are read at the end of the warm-up and at the end of the run;
  ratio = overruns / (ticks + overruns) of the difference, over the whole fleet. The
  warm-up holds every asset's first, cold, tick for periods up to the warm-up.
- Tick latency p50/p99 after start-up: the assets' tick histograms (the wall time
  from the start of the shard's tick instant to the asset's writes: measure, estimate,
  propose, the batched gate with its audit commit, write; engine.metrics buckets, so
  the quantiles are interpolated inside buckets of ..., 100, 250, 500 ms, 1 s), against
  the bare ControlLoop of the same kinds, run in a process of its own before the fleet
  (engine.loop.ControlLoop.tick with engine.gate.PolicyGate, the plant as a plant shard
  hosts it, and the records committed to a SQLite audit log; no Ray), weighted by the
  ticks each kind made in the fleet.
- The largest fleet whose overrun ratio after start-up is at most 0.1 % (OVERRUN_BUDGET),
  over the runs of this configuration stored in the results file.

Plants are linked directly by default (the asset shard calls its plant shard once per
tick). ``--link modbus`` puts a Modbus TCP PLC simulator on its own port in front of
every plant instead (as ``twinloop demo`` does): a free range of N ports is found, and
every PLC samples its plant every ``[modbus] scan_period_s`` (0.25 s), which for a rod
pump synthesises its dynamometer card (0.8-2.3 ms, measured under load): 600 wells
cost 2-5.5 CPU-seconds per second in scans alone, more than this 2-core machine has,
hence the default. Ports and servers are not the limit: one file descriptor per
listening PLC, its memory too small to measure.

A fleet that does not start within ``--start-timeout`` s, or during whose start or
warm-up the machine's available memory falls below ``--min-free-gb`` (this machine is
shared), is stopped (its actors killed), recorded with the reason and how far it got,
larger sizes are skipped and the exit status is 1. Memory falling below the floor while
a fleet is measured ends the measurement early: the run is recorded with what was
measured (``measured_s``, ``stopped_early``).

Results are merged into ``--out`` (default bench/results.json) under ``"fleet"``:
``runs`` (one object per run; a new run replaces a stored one of the same size and
configuration), ``largest_within_budget`` and ``rss_mb_per_extra_asset`` (the RSS slope
between the two largest started runs of this configuration); the other keys stay.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import psutil
import ray
import results_file
from ports import consecutive_free_ports

import plants
from actors.asset import build_loop
from actors.fleet import Fleet, assets_per_shard, build_fleet, initial_outputs
from actors.plant import HostedPlant
from engine.audit import AuditLog
from engine.clock import ClockSpec
from engine.config import SiteConfig, parse_site
from engine.gate import PolicyGate
from plants.sitegen import COUNTS, SiteCounts, generate_site

MB = 2**20
OVERRUN_BUDGET = 0.001
"""Overrun ratio after start-up a fleet may have to count as keeping up (0.1 %)."""
DEFAULT_MIX = {"wells": 60.0, "cells": 25.0, "pumps": 10.0, "tanks": 4.5,
               "terminals": 0.2, "pipelines": 0.3}
"""Share of each kind (sitegen's count names) in the default fleet: a field of rod pumps,
a potline, pipeline pumps, a tank farm, and the site-scale assets (terminal, DRA line);
1,000 assets are 600 wells, 250 cells, 100 pumps, 45 tanks, 2 terminals, 3 pipelines."""
BARE_BUDGET_S = 30.0
"""Wall seconds of bare ticks per kind after which the baseline moves on to the next kind
(a terminal's do-mpc tick takes seconds on a loaded machine)."""
BARE_MIN_TICKS = 5
POLL_S = 2.0
"""Wall seconds between checks of a starting or running fleet."""
PROGRESS_S = 30.0
"""Wall seconds between progress lines while a fleet starts."""
READ_TIMEOUT_S = 300.0
"""Wall seconds to wait for every asset's status and metrics."""
KILL_WAIT_S = 30.0
"""Wall seconds to wait for the builder to give up once a failed start's actors are killed."""


class FleetFailed(RuntimeError):
    """The fleet could not start, or had to be stopped (time or memory): the message
    says why and how far it got."""


# -- the fleet's composition ---------------------------------------------------------------

def parse_kinds(text: str) -> dict[str, float]:
    """``wells=60,cells=25`` (weights) or ``wells,cells`` (their DEFAULT_MIX weights) ->
    weight per sitegen count name. ValueError naming the kind or weight otherwise."""
    mix: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, weight = item.partition("=")
        name = name.strip()
        if name not in COUNTS:
            raise ValueError(f"--kinds: unknown kind {name!r}; kinds are {', '.join(COUNTS)}")
        try:
            value = float(weight) if weight else DEFAULT_MIX[name]
        except ValueError:
            raise ValueError(f"--kinds: weight of {name!r} must be a number, "
                             f"got {weight!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"--kinds: weight of {name!r} must be > 0, got {weight!r}")
        mix[name] = value
    if not mix:
        raise ValueError(f"--kinds: give at least one of {', '.join(COUNTS)}")
    return mix


def fleet_counts(n: int, mix: dict[str, float]) -> SiteCounts:
    """``n`` assets shared among the kinds of ``mix`` in proportion to their weights
    (largest remainder), each kind at least one; ValueError if ``n`` is below the
    number of kinds."""
    if n < len(mix):
        raise ValueError(f"--assets: {n} assets cannot hold one of each of the "
                         f"{len(mix)} kinds {', '.join(mix)}")
    total = sum(mix.values())
    share = {kind: n * weight / total for kind, weight in mix.items()}
    counts = {kind: max(1, math.floor(s)) for kind, s in share.items()}
    by_remainder = sorted(mix, key=lambda kind: share[kind] - math.floor(share[kind]),
                          reverse=True)
    while sum(counts.values()) < n:
        for kind in by_remainder[:n - sum(counts.values())]:
            counts[kind] += 1
    while sum(counts.values()) > n:  # the minimum of one raised a small kind
        largest = max(counts, key=lambda kind: counts[kind])
        counts[largest] -= 1
    return SiteCounts(**counts)


def make_site(counts: SiteCounts, *, seed: int, speed: float, audit_db: Path,
              assets_per_shard: int | None = None, modbus_base_port: int | None = None
              ) -> SiteConfig:
    """The generated site (plants.sitegen) of ``counts``, resolved, with its audit
    database at ``audit_db`` and the given packing and first Modbus port."""
    site = plants.resolve_site(parse_site(generate_site(counts, seed=seed, name="bench",
                                                        speed=speed)))
    replace = msgspec.structs.replace
    site = replace(site, site=replace(site.site, audit_db=str(audit_db)),
                   fleet=replace(site.fleet, assets_per_shard=assets_per_shard))
    if modbus_base_port is not None:
        site = replace(site, modbus=replace(site.modbus, base_port=modbus_base_port))
    return site


# -- baseline: the bare ControlLoop, in this process ---------------------------------------

def bare_loops(site: SiteConfig, ticks: int, audit_db: Path, budget_s: float = BARE_BUDGET_S,
               say: Callable[[str], None] = print) -> dict[str, list[float]]:
    """Wall seconds of each of ``ticks`` lock-step ticks (fewer once a kind's ticks took
    ``budget_s``, at least BARE_MIN_TICKS) of the first asset of each kind of ``site``,
    run here without Ray: the plant as a plant shard hosts it advanced to the tick,
    measured, ``ControlLoop.tick`` through ``PolicyGate``, the records committed to the
    audit log (durable, as the safety actor does), the writes applied. Each kind's first,
    cold, tick is run but not counted, as the fleet's ticks after its warm-up are warm."""
    audit = AuditLog(audit_db)
    firsts: dict[str, Any] = {}
    for asset in site.assets:
        firsts.setdefault(asset.kind, asset)
    seconds: dict[str, list[float]] = {}
    epoch = 1.7e9
    for kind, asset in firsts.items():
        loop = build_loop(asset, epoch)
        plant = HostedPlant(asset, ClockSpec(lockstep=True, epoch=epoch), None,
                            site.modbus.scan_period_s)
        gate = PolicyGate(asset, initial_outputs(asset), epoch)
        period = asset.resolved_period_s()
        seconds[kind] = []
        for k in range(ticks + 1):
            t = epoch + (k + 1) * period
            started = time.perf_counter()
            plant.advance_to(t)
            result = loop.tick(t, plant.measure(), gate)
            if result.decision is not None:
                audit.append(result.decision.records)
            if result.applied:
                plant.apply(result.applied)
            if k > 0:
                seconds[kind].append(time.perf_counter() - started)
            if k >= BARE_MIN_TICKS and sum(seconds[kind]) > budget_s:
                break
        say(f"  {kind}: {len(seconds[kind])} ticks, median "
            f"{1e3 * float(np.median(seconds[kind])):.1f} ms")
    return seconds


def weighted_quantile(samples: dict[str, list[float]], weights: dict[str, float],
                      q: float) -> float | None:
    """Quantile ``q`` of the samples of every kind, each kind weighing ``weights[kind]``
    in all (spread evenly over its samples); None if nothing weighs."""
    values, mass = [], []
    for kind, xs in samples.items():
        w = weights.get(kind, 0.0)
        if w > 0 and xs:
            values += xs
            mass += [w / len(xs)] * len(xs)
    if not values:
        return None
    order = np.argsort(values)
    cumulative = np.cumsum(np.asarray(mass)[order])
    index = int(np.searchsorted(cumulative, q * cumulative[-1]))
    return float(np.asarray(values)[order][min(index, len(values) - 1)])


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


def _available_gb() -> float:
    return psutil.virtual_memory().available / 2**30


def _ray_processes_rss_mb() -> float:
    """RSS of this driver's descendant processes (every Ray process of the session)."""
    total = 0
    for child in psutil.Process().children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            continue
    return total / MB


def start_fleet(site: SiteConfig, clock: ClockSpec, namespace: str, *, modbus: bool,
                timeout_s: float, min_free_gb: float,
                say: Callable[[str], None] = print) -> Fleet:
    """build_fleet + Fleet.start, watched from here: a progress line every PROGRESS_S;
    FleetFailed (its actors killed) when it takes longer than ``timeout_s`` wall s,
    the machine's available memory falls below ``min_free_gb``, or the builder fails."""
    outcome: dict[str, Any] = {}

    def build() -> None:
        try:
            fleet = build_fleet(site, clock, namespace, modbus=modbus)
            outcome["fleet"] = fleet
            fleet.start()
            outcome["started"] = True
        except Exception as error:
            outcome["error"] = error

    shards = math.ceil(len(site.assets) / assets_per_shard(site))
    builder = threading.Thread(target=build, name="build_fleet", daemon=True)
    started = time.perf_counter()
    builder.start()
    next_progress = PROGRESS_S
    while True:
        builder.join(POLL_S)
        elapsed = time.perf_counter() - started
        if not builder.is_alive():
            break
        why = None
        if elapsed > timeout_s:
            why = f"did not start within {timeout_s:g} s"
        elif (available := _available_gb()) < min_free_gb:
            why = f"available memory fell to {available:.1f} GB (floor {min_free_gb:g} GB)"
        if why is not None or elapsed >= next_progress:
            progress = (f"{_assets_built(shards, namespace)} of {len(site.assets)} assets built "
                        f"after {elapsed:.0f} s, Ray processes {_ray_processes_rss_mb():,.0f} MB "
                        f"RSS, {_available_gb():.1f} GB available")
            if why is not None:
                _give_up(builder, site, shards, namespace)
                raise FleetFailed(f"{len(site.assets)}-asset fleet {why}: {progress}")
            say(f"  starting: {progress}")
            next_progress += PROGRESS_S
    if "error" in outcome:
        error = outcome["error"]
        if "fleet" in outcome:
            outcome["fleet"].shutdown()
        else:
            _kill(site, shards, namespace)
        raise FleetFailed(f"{len(site.assets)}-asset fleet failed to start after "
                          f"{time.perf_counter() - started:.0f} s: "
                          f"{type(error).__name__}: {error}") from error
    return outcome["fleet"]


def _assets_built(shards: int, namespace: str) -> str:
    """How many assets the asset shards have built, as far as they answer now."""
    built, answered = 0, 0
    for n in range(shards):
        try:
            status = ray.get(ray.get_actor(f"shard:{n}", namespace=namespace)
                             .shard_status.remote(), timeout=10)
        except Exception:  # not created yet, busy or gone: counted as not answering
            continue
        built += len(status["assets"])
        answered += 1
    if answered == shards:
        return f"{built}"
    return f"{built} (only {answered} of {shards} asset shards answering)"


def _give_up(builder: threading.Thread, site: SiteConfig, shards: int, namespace: str) -> None:
    """Kill the actors the builder made, again as long as it goes on making them, until
    it gives up (its wait for them fails) or KILL_WAIT_S passed (Ray's shutdown then
    ends whatever is left)."""
    until = time.monotonic() + KILL_WAIT_S
    while True:
        _kill(site, shards, namespace)
        builder.join(POLL_S)
        if not builder.is_alive() or time.monotonic() > until:
            return


def _kill(site: SiteConfig, shards: int, namespace: str) -> None:
    """Kill every actor build_fleet made (those it made so far), so that it gives up."""
    names = [f"safety:{site.site.name}", *(f"shard:{n}" for n in range(shards)),
             *(f"plants:{n}" for n in range(shards))]
    for name in names:
        try:
            ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
        except Exception:  # not created (yet): nothing to kill
            continue


def watch(seconds: float, min_free_gb: float) -> str | None:
    """Sleep ``seconds`` wall s, or until available memory falls below the floor: then
    say so (None if the whole time passed)."""
    until = time.perf_counter() + seconds
    while (left := until - time.perf_counter()) > 0:
        time.sleep(min(POLL_S, left))
        if (available := _available_gb()) < min_free_gb:
            return (f"available memory fell to {available:.1f} GB "
                    f"(floor {min_free_gb:g} GB; this fleet's Ray processes "
                    f"{_ray_processes_rss_mb():,.0f} MB RSS)")
    return None


def read_assets(fleet: Fleet) -> dict[str, dict[str, Any]]:
    """Every asset's ticks, overruns, errors and tick histogram, now."""
    ids = list(fleet.assets)
    statuses = ray.get([fleet.assets[i].status.remote() for i in ids], timeout=READ_TIMEOUT_S)
    snapshots = ray.get([fleet.assets[i].metrics_snapshot.remote() for i in ids],
                        timeout=READ_TIMEOUT_S)
    return {i: {"kind": status["kind"], "ticks": status["ticks"],
                "overruns": status["overruns"], "errors": status["errors"],
                "tick": snapshot["tick"][0], "tick_total_s": snapshot["tick"][1]}
            for i, status, snapshot in zip(ids, statuses, snapshots, strict=True)}


def actor_memory(fleet: Fleet) -> dict[str, Any]:
    """RSS and USS (MB) of the process of every asset shard, plant shard and the safety
    actor (by the pid each reports), and the RSS of Ray's other processes."""
    actors = {**fleet.shards, **fleet.plant_shards, "safety": fleet.safety}
    pids = dict(zip(actors, ray.get([a.pid.remote() for a in actors.values()], timeout=60),
                    strict=True))
    hosted = {name: 0 for name in actors}
    for shard in fleet.directory.values():
        hosted[shard] += 1
        hosted[shard.replace("shard:", "plants:")] += 1
    processes = []
    for name, pid in pids.items():
        info = psutil.Process(pid).memory_full_info()
        processes.append({"actor": name, "pid": pid, "assets": hosted[name],
                          "rss_mb": info.rss / MB, "uss_mb": info.uss / MB})
    ray_rss = _ray_processes_rss_mb() - sum(p["rss_mb"] for p in processes)
    return {
        "counted": "RSS (and USS) of the worker processes of the asset shards, plant "
                   "shards and safety actor, by the pid each reports; Ray's own processes "
                   "(GCS, raylet, agents, idle workers) apart, the driver not at all",
        "rss_mb_total": sum(p["rss_mb"] for p in processes),
        "uss_mb_total": sum(p["uss_mb"] for p in processes),
        "ray_system_rss_mb": ray_rss,
        "processes": processes,
    }


def after_start(first: dict[str, dict[str, Any]], last: dict[str, dict[str, Any]],
                bare: dict[str, list[float]]) -> dict[str, Any]:
    """Ticks, overruns and tick latency between two readings (``read_assets``), over
    the fleet and per kind, against the bare loops ``bare`` (seconds per kind)."""
    def delta(ids: Iterable[str]) -> dict[str, Any]:
        ids = list(ids)
        ticks = sum(last[i]["ticks"] - first[i]["ticks"] for i in ids)
        overruns = sum(last[i]["overruns"] - first[i]["overruns"] for i in ids)
        bounds = [bound for bound, _ in last[ids[0]]["tick"]]
        counts = [sum(last[i]["tick"][b][1] - first[i]["tick"][b][1] for i in ids)
                  for b in range(len(bounds))]
        hist = list(zip(bounds, counts, strict=True))
        total_s = sum(last[i]["tick_total_s"] - first[i]["tick_total_s"] for i in ids)
        return {"assets": len(ids), "ticks": ticks, "overruns": overruns,
                "overrun_ratio": overruns / (ticks + overruns) if ticks + overruns else None,
                "tick_ms": {"p50": _ms(histogram_quantile(hist, 0.5)),
                            "p99": _ms(histogram_quantile(hist, 0.99)),
                            "mean": 1e3 * total_s / ticks if ticks else None}}

    kinds = sorted({a["kind"] for a in last.values()})
    by_kind = {}
    for kind in kinds:
        figures = delta(i for i, a in last.items() if a["kind"] == kind)
        samples = bare.get(kind, [])
        figures["bare_tick_ms"] = {
            "p50": _ms(float(np.percentile(samples, 50))) if samples else None,
            "p99": _ms(float(np.percentile(samples, 99))) if samples else None}
        by_kind[kind] = figures
    fleet = delta(last)
    weights = {kind: float(figures["ticks"]) for kind, figures in by_kind.items()}
    fleet["bare_tick_ms"] = {"p50": _ms(weighted_quantile(bare, weights, 0.5)),
                             "p99": _ms(weighted_quantile(bare, weights, 0.99))}
    return {"fleet": fleet, "by_kind": by_kind}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1e3 * seconds


def run_fleet(site: SiteConfig, bare: dict[str, list[float]], *, speed: float, link: str,
              warmup_s: float, duration_s: float, start_timeout_s: float,
              min_free_gb: float, namespace: str, say: Callable[[str], None] = print
              ) -> dict[str, Any]:
    """Start ``site`` on the running Ray, warm up, measure, stop; the run's figures.
    FleetFailed if it cannot start or has to be stopped."""
    n = len(site.assets)
    started = time.perf_counter()
    fleet = start_fleet(site, ClockSpec(speed=speed), namespace, modbus=link == "modbus",
                        timeout_s=start_timeout_s, min_free_gb=min_free_gb, say=say)
    start_s = time.perf_counter() - started
    say(f"  started in {start_s:.0f} s; warm-up {warmup_s:g} s, then {duration_s:g} s measured")
    try:
        if (why := watch(warmup_s, min_free_gb)) is not None:
            raise FleetFailed(f"stopped during the warm-up: {why}")
        first = read_assets(fleet)
        measuring = time.perf_counter()
        stopped_early = watch(duration_s, min_free_gb)
        memory = actor_memory(fleet)
        last = read_assets(fleet)
        measured_s = time.perf_counter() - measuring
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError) as error:
        raise FleetFailed(f"stopped while running: the fleet did not answer "
                          f"({type(error).__name__}: {error})") from error
    finally:
        fleet.shutdown()
    figures = after_start(first, last, bare)
    errors = sorted({e for a in last.values() for e in a["errors"]})
    if stopped_early is not None:
        say(f"  measurement stopped early, after {measured_s:.0f} s: {stopped_early}")
    expected = sum(measured_s * speed / asset.resolved_period_s() for asset in site.assets)
    return {
        "started": True, "failure": None,
        "measured_s": measured_s, "stopped_early": stopped_early,
        "start_s": start_s,
        "asset_shards": len(fleet.shards), "plant_shards": len(fleet.plant_shards),
        "assets_per_shard": assets_per_shard(site),
        "overrun_ratio_after_start": figures["fleet"]["overrun_ratio"],
        "ticks_after_start": figures["fleet"]["ticks"],
        "overruns_after_start": figures["fleet"]["overruns"],
        "deadlines_expected_after_start": round(expected),
        "overruns_during_start": sum(a["overruns"] for a in first.values()),
        "tick_ms": figures["fleet"]["tick_ms"],
        "bare_tick_ms": figures["fleet"]["bare_tick_ms"],
        "by_kind": figures["by_kind"],
        "rss_mb_total": memory["rss_mb_total"],
        "rss_mb_per_asset": memory["rss_mb_total"] / n,
        "uss_mb_per_asset": memory["uss_mb_total"] / n,
        "memory": memory,
        "assets_with_errors": sum(bool(a["errors"]) for a in last.values()),
        "errors": errors[:5],
    }


def measure(counts: SiteCounts, bare: dict[str, list[float]], args: argparse.Namespace,
            workdir: Path) -> dict[str, Any]:
    """One run of ``counts`` on an embedded Ray of its own: the run object stored in
    the results (``started`` False and ``failure`` saying why if it failed)."""
    n = sum(msgspec.structs.asdict(counts).values())
    run: dict[str, Any] = {
        "assets": n, "counts": msgspec.structs.asdict(counts), **configuration(args),
        "duration_s": args.duration, "warmup_s": args.warmup,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(), "machine": _machine(),
        "overrun_ratio_after_start": None, "rss_mb_per_asset": None,
    }
    base_port = consecutive_free_ports(n) if args.link == "modbus" else None
    site = make_site(counts, seed=args.seed, speed=args.speed, audit_db=workdir / f"audit-{n}.db",
                     assets_per_shard=args.assets_per_shard, modbus_base_port=base_port)
    started = time.perf_counter()
    ray.init(address="local", include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    run["ray_init_s"] = time.perf_counter() - started
    try:
        run.update(run_fleet(site, bare, speed=args.speed, link=args.link,
                             warmup_s=args.warmup, duration_s=args.duration,
                             start_timeout_s=args.start_timeout, min_free_gb=args.min_free_gb,
                             namespace=f"bench-fleet-{n}"))
    except FleetFailed as failure:
        run.update(started=False, failure=str(failure))
    finally:
        run["machine"]["load_average_1m_after"] = os.getloadavg()[0]
        ray.shutdown()
    return run


def configuration(args: argparse.Namespace) -> dict[str, Any]:
    """What makes runs comparable: the mix, the link, the clock, the packing."""
    return {"kinds": args.kinds, "link": args.link, "speed": args.speed,
            "assets_per_shard_setting": args.assets_per_shard, "seed": args.seed}


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, cwd=Path(__file__).parent,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__,
            "memory_gb": psutil.virtual_memory().total / 2**30,
            "available_gb_before": _available_gb(),
            "load_average_1m_before": os.getloadavg()[0]}


# -- results -------------------------------------------------------------------------------

def merge(stored: dict[str, Any] | None, run: dict[str, Any]) -> dict[str, Any]:
    """The ``"fleet"`` entry with ``run`` added (replacing a stored run of the same size
    and configuration; runs of an older layout are dropped) and the summaries of the
    configuration of ``run`` recomputed."""
    keep = [r for r in (stored or {}).get("runs", [])
            if not (r["assets"] == run["assets"] and _same(r, run))]
    runs = sorted([*keep, run], key=lambda r: (r["assets"], str(r["kinds"]), r["link"]))
    alike = [r for r in runs if _same(r, run) and r["started"]]
    within = [r for r in alike if r["overrun_ratio_after_start"] is not None
              and r["overrun_ratio_after_start"] <= OVERRUN_BUDGET]
    slope = None
    if len(alike) >= 2:
        small, large = alike[-2], alike[-1]
        slope = ((large["rss_mb_total"] - small["rss_mb_total"])
                 / (large["assets"] - small["assets"]))
    return {
        "overrun_budget": OVERRUN_BUDGET,
        "largest_within_budget": {
            **{key: run[key] for key in ("kinds", "link", "speed")},
            "assets": max((r["assets"] for r in within), default=None),
            "sizes_tried": [r["assets"] for r in runs if _same(r, run)],
        },
        "rss_mb_per_extra_asset": slope,
        "runs": runs,
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(key) == b.get(key) for key in ("kinds", "link", "speed",
                                                     "assets_per_shard_setting", "seed"))


def describe(run: dict[str, Any]) -> str:
    """A few lines on one run."""
    counts = ", ".join(f"{v} {k}" for k, v in run["counts"].items() if v)
    head = (f"fleet of {run['assets']} ({counts}), link {run['link']}, speed "
            f"{run['speed']:g}, load average {run['machine']['load_average_1m_before']:.1f} "
            f"before, {run['machine']['load_average_1m_after']:.1f} after")
    if not run["started"]:
        return f"{head}\n  FAILED: {run['failure']}"

    def f(x: float | None, spec: str = ".1f") -> str:
        return "n/a" if x is None else format(x, spec)

    tick, bare = run["tick_ms"], run["bare_tick_ms"]
    lines = [head,
             f"  start {run['start_s']:.0f} s (ray.init {run['ray_init_s']:.1f} s); "
             f"{run['asset_shards']} asset shards of up to {run['assets_per_shard']}, "
             f"{run['plant_shards']} plant shards",
             f"  RSS {run['rss_mb_total']:,.0f} MB = {run['rss_mb_per_asset']:.1f} MB per asset "
             f"(USS {run['uss_mb_per_asset']:.1f}); Ray's own processes "
             f"{run['memory']['ray_system_rss_mb']:,.0f} MB",
             f"  after start-up ({run['measured_s']:.0f} s measured"
             + (f", stopped early: {run['stopped_early']}" if run["stopped_early"] else "")
             + f"): {run['ticks_after_start']} ticks, {run['overruns_after_start']} "
             f"overruns (ratio {f(run['overrun_ratio_after_start'], '.4f')}; "
             f"{run['deadlines_expected_after_start']} deadlines expected), "
             f"{run['overruns_during_start']} during start-up; assets with errors "
             f"{run['assets_with_errors']}",
             f"  tick ms p50 {f(tick['p50'])} p99 {f(tick['p99'])} | bare ControlLoop p50 "
             f"{f(bare['p50'])} p99 {f(bare['p99'])}"]
    for kind, k in run["by_kind"].items():
        lines.append(f"    {kind:<17} x{k['assets']:<4} ticks {k['ticks']:<5} overruns "
                     f"{k['overruns']:<4} tick ms p50 {f(k['tick_ms']['p50'])} p99 "
                     f"{f(k['tick_ms']['p99'])} | bare p50 {f(k['bare_tick_ms']['p50'])} "
                     f"p99 {f(k['bare_tick_ms']['p99'])}")
    for error in run["errors"]:
        lines.append(f"  error: {error}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, nargs="+", default=[100, 1000],
                        help="fleet sizes, run smallest first (default 100 1000)")
    parser.add_argument("--kinds", default=",".join(f"{k}={v:g}" for k, v in DEFAULT_MIX.items()),
                        help="kinds and weights, e.g. wells=3,pumps=1 or wells,pumps "
                             "(default: every kind, %(default)s)")
    parser.add_argument("--duration", type=float, default=180.0,
                        help="wall s measured after the warm-up (default 180)")
    parser.add_argument("--warmup", type=float, default=120.0,
                        help="wall s after start before the measurement (default 120)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="twin s per wall s (default 1: real time)")
    parser.add_argument("--link", choices=("direct", "modbus"), default="direct",
                        help="plants linked directly or through Modbus PLCs (default direct)")
    parser.add_argument("--assets-per-shard", type=int, default=None,
                        help="default: the fleet builder's, ceil(assets / CPUs)")
    parser.add_argument("--seed", type=int, default=7, help="sitegen seed (default 7)")
    parser.add_argument("--baseline-ticks", type=int, default=20,
                        help="bare ControlLoop ticks per kind (default 20; fewer, at least "
                             f"{BARE_MIN_TICKS}, once a kind's took {BARE_BUDGET_S:g} s)")
    parser.add_argument("--start-timeout", type=float, default=900.0,
                        help="wall s a fleet may take to start (default 900)")
    parser.add_argument("--min-free-gb", type=float, default=3.0,
                        help="stop a fleet when the machine's available memory falls "
                             "below this (default 3)")
    parser.add_argument("--out", type=Path, default=results_file.RESULTS,
                        help="results file, merged into (default bench/results.json)")
    args = parser.parse_args(argv)
    try:
        mix = parse_kinds(args.kinds)
        sizes = sorted(set(args.assets))
        counts = [fleet_counts(n, mix) for n in sizes]
    except ValueError as error:
        parser.error(str(error))
    args.kinds = mix
    for name in ("duration", "warmup", "speed", "start_timeout"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0")
    if args.baseline_ticks < 1:
        parser.error("--baseline-ticks must be >= 1")

    with tempfile.TemporaryDirectory(prefix="twinloop-bench-fleet-") as tmp:
        workdir = Path(tmp)
        print(f"bare ControlLoop: {args.baseline_ticks} ticks of one asset of each kind ...")
        site = make_site(counts[0], seed=args.seed, speed=args.speed,
                         audit_db=workdir / "unused.db")
        # in a process of its own, which gives its memory back before the fleets start
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            bare = pool.submit(bare_loops, site, args.baseline_ticks,
                               workdir / "bare-audit.db").result()
        for size, count in zip(sizes, counts, strict=True):
            print(f"fleet of {size}: starting ...")
            run = measure(count, bare, args, workdir)
            results_file.save("fleet", merge(results_file.load(args.out).get("fleet"), run),
                              args.out)
            print(describe(run))
            if not run["started"]:
                skipped = [s for s in sizes if s > size]
                print(f"bench/fleet.py: the {size}-asset fleet could not run"
                      + (f"; larger fleets ({', '.join(map(str, skipped))}) skipped" if skipped
                         else ""), file=sys.stderr)
                return 1
    summary = results_file.load(args.out)["fleet"]
    print(f"largest fleet with overruns <= {OVERRUN_BUDGET:.1%} after start-up: "
          f"{summary['largest_within_budget']['assets']} "
          f"(sizes tried: {summary['largest_within_budget']['sizes_tried']}); "
          f"RSS per extra asset {summary['rss_mb_per_extra_asset']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
