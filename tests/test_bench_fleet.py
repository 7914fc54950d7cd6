"""bench/fleet.py's own code paths: the fleet's composition, the merge into the results
file, a two-asset run on the session's Ray, and a start that is given up loudly.
Nothing here asserts a timing."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # the bench imports results_file from its folder
    try:
        spec = importlib.util.spec_from_file_location("bench_fleet", BENCH / "fleet.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


def test_counts_follow_the_mix_and_keep_every_kind(bench):
    mix = bench.parse_kinds(",".join(f"{k}={v}" for k, v in bench.DEFAULT_MIX.items()))
    thousand = bench.fleet_counts(1000, mix)
    assert (thousand.wells, thousand.cells, thousand.pumps, thousand.tanks,
            thousand.terminals, thousand.pipelines) == (600, 250, 100, 45, 2, 3)
    hundred = bench.fleet_counts(100, mix)
    counts = [getattr(hundred, kind) for kind in mix]
    assert sum(counts) == 100 and min(counts) == 1  # 0.2 % of 100 terminals is still one
    assert bench.parse_kinds("wells,pumps") == {"wells": 60.0, "pumps": 10.0}


@pytest.mark.parametrize(("kinds", "message"), [
    ("wells=3,boats=1", "unknown kind 'boats'"),
    ("wells=x", "weight of 'wells' must be a number"),
    ("wells=0", "weight of 'wells' must be > 0"),
])
def test_bad_kinds_are_refused_by_name(bench, kinds, message):
    with pytest.raises(ValueError, match=message):
        bench.parse_kinds(kinds)


def test_too_few_assets_for_the_kinds_is_refused(bench):
    with pytest.raises(ValueError, match="2 assets cannot hold one of each of the 3 kinds"):
        bench.fleet_counts(2, {"wells": 1.0, "cells": 1.0, "pumps": 1.0})


def test_weighted_quantile_weighs_kinds_by_their_ticks(bench):
    samples = {"fast": [0.001] * 10, "slow": [1.0] * 2}
    assert bench.weighted_quantile(samples, {"fast": 99.0, "slow": 1.0}, 0.5) == 0.001
    assert bench.weighted_quantile(samples, {"fast": 1.0, "slow": 99.0}, 0.5) == 1.0
    assert bench.weighted_quantile(samples, {}, 0.5) is None


def _run(assets: int, ratio: float | None, rss_total: float, *, kinds=None, started=True):
    return {"assets": assets, "kinds": kinds or {"wells": 1.0}, "link": "direct", "speed": 1.0,
            "assets_per_shard_setting": None, "seed": 7, "started": started,
            "overrun_ratio_after_start": ratio, "rss_mb_total": rss_total,
            "rss_mb_per_asset": rss_total / assets}


def test_merge_keeps_other_benchmarks_and_other_sizes(bench, tmp_path):
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"mpc": {"kept": True}, "fleet": {"assets": 20}}))  # old layout
    for run in (_run(100, 0.0, 1000.0), _run(1000, 0.01, 5500.0),
                _run(100, 0.0005, 1100.0),                     # replaces the first 100
                _run(100, 0.5, 9.0, kinds={"pumps": 1.0})):    # another configuration
        stored = bench.results_file.load(out).get("fleet")
        bench.results_file.save("fleet", bench.merge(stored, run), out)
    data = json.loads(out.read_text())
    assert data["mpc"] == {"kept": True}
    runs = data["fleet"]["runs"]
    assert [(r["assets"], r["kinds"]) for r in runs] == [
        (100, {"pumps": 1.0}), (100, {"wells": 1.0}), (1000, {"wells": 1.0})]
    wells = bench.merge(data["fleet"], _run(1000, 0.01, 5500.0))
    assert wells["largest_within_budget"]["assets"] == 100  # 1000 overran 1 %
    assert wells["rss_mb_per_extra_asset"] == pytest.approx((5500.0 - 1100.0) / 900)


def _reading(ticks: int, overruns: int, counts: list[int], kind: str = "rod_pump"):
    bounds = ["0.1", "1.0", "+Inf"]
    cumulative = list(zip(bounds, counts, strict=True))
    return {"kind": kind, "ticks": ticks, "overruns": overruns, "errors": [],
            "tick": cumulative, "tick_total_s": 0.05 * ticks}


def test_figures_after_start_up_count_only_what_came_after_the_warm_up(bench):
    first = {"well-1": _reading(3, 2, [1, 3, 3]), "well-2": _reading(1, 0, [1, 1, 1]),
             "cell-1": _reading(5, 0, [5, 5, 5], "smelter_cell")}
    last = {"well-1": _reading(13, 3, [11, 13, 13]), "well-2": _reading(11, 0, [11, 11, 11]),
            "cell-1": _reading(5, 0, [5, 5, 5], "smelter_cell")}
    figures = bench.after_start(first, last, {"rod_pump": [0.01, 0.02, 0.03],
                                              "smelter_cell": [5.0]})
    fleet = figures["fleet"]
    assert (fleet["ticks"], fleet["overruns"]) == (20, 1)  # the warm-up's 2 overruns are not
    assert fleet["overrun_ratio"] == pytest.approx(1 / 21)
    assert fleet["tick_ms"]["p50"] == pytest.approx(50.0)  # 20 ticks in the 0-100 ms bucket
    assert fleet["tick_ms"]["mean"] == pytest.approx(50.0)
    assert figures["by_kind"]["smelter_cell"]["overrun_ratio"] is None  # it did not tick
    # the cell made no tick after the warm-up: the bare loops weigh the wells only
    assert fleet["bare_tick_ms"]["p99"] == pytest.approx(30.0)


def test_a_small_fleet_runs_and_is_measured(bench, ray_session, tmp_path):
    counts = bench.fleet_counts(2, bench.parse_kinds("wells,cells"))
    site = bench.make_site(counts, seed=3, speed=60.0, audit_db=tmp_path / "audit.db")
    bare = bench.bare_loops(site, 2, tmp_path / "bare.db", say=lambda line: None)
    assert {kind: len(s) for kind, s in bare.items()} == {"rod_pump": 2, "smelter_cell": 2}
    run = bench.run_fleet(site, bare, speed=60.0, link="direct", warmup_s=1.0, duration_s=4.0,
                          start_timeout_s=600.0, min_free_gb=0.0,
                          namespace="test-bench-fleet", say=lambda line: None)
    assert run["started"] and run["failure"] is None
    # how many ticks fit in 4 s depends on the machine's load: only their accounting is checked
    ticks, overruns = run["ticks_after_start"], run["overruns_after_start"]
    assert run["overrun_ratio_after_start"] == (overruns / (ticks + overruns)
                                                if ticks + overruns else None)
    assert set(run["by_kind"]) == {"rod_pump", "smelter_cell"}
    assert sum(k["ticks"] for k in run["by_kind"].values()) == ticks
    processes = {p["actor"]: p for p in run["memory"]["processes"]}
    assert set(processes) == {"shard:0", "shard:1", "plants:0", "plants:1", "safety"}
    assert sum(p["assets"] for name, p in processes.items() if name.startswith("shard")) == 2
    assert run["rss_mb_per_asset"] == pytest.approx(run["rss_mb_total"] / 2)
    assert all(p["rss_mb"] > 0 for p in processes.values())


def test_a_fleet_that_does_not_start_in_time_fails_loudly(bench, ray_session, tmp_path):
    import ray

    counts = bench.fleet_counts(1, bench.parse_kinds("cells"))
    site = bench.make_site(counts, seed=3, speed=60.0, audit_db=tmp_path / "audit.db")
    namespace = "test-bench-fleet-timeout"
    with pytest.raises(bench.FleetFailed, match=r"1-asset fleet did not start within 0\.1 s: "
                                                r"\d+ .*of 1 assets built"):
        bench.start_fleet(site, bench.ClockSpec(speed=60.0), namespace, modbus=False,
                          timeout_s=0.1, min_free_gb=0.0, say=lambda line: None)
    for name in ("shard:0", "plants:0", "safety:bench"):  # killed, not left running
        assert _gone(ray, name, namespace), f"{name} still runs"


def _gone(ray, name: str, namespace: str) -> bool:
    """Whether the named actor is dead (its name is released a moment after ray.kill)."""
    for _ in range(60):
        try:
            ray.get_actor(name, namespace=namespace)
        except ValueError:
            return True
        time.sleep(0.5)
    return False
