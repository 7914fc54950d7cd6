"""What one more asset of a kind costs a process: resident memory and build time.

    python bench/asset_memory.py [--assets 4] [--kinds asphalt_tank,rod_pump] [--label after]
        [--site examples/pilot.toml]

For each plant kind, in a fresh Python process of its own (so one kind's models do not
count against another's): a generated site (``plants.sitegen``, seed 7) with ``--assets``
assets of that kind, varied as a real field is (parameters, limits, references; the
rod pumps' few rod-string designs), resolved; then ``actors.asset.build_loop`` for each
asset in turn, as a shard hosts them: its estimator and controller. Measured around
each build:

- resident memory (VmRSS of /proc/self/status, MB = 2^20 bytes) after the imports and
  before any asset (``process_mb``), then its growth for the first asset
  (``first_mb``) and the mean growth per asset after the first (``extra_mb``, with the
  largest, ``extra_max_mb``);
- wall time of ``build_loop`` for the first asset and the median of the others (s).

With ``--site``, the assets of that site file are built in one process too, in file
order (as one shard hosts them, or a restarted shard rebuilds them): each asset's
growth and build time, and the totals (``site``).

The acceptance figure of issue 10 is ``extra_mb`` <= 10 MB for every kind. Results are
merged into ``bench/results.json`` under ``"asset_memory"``, one object per ``--label``
(e.g. "before" and "after" a change), keeping the other labels and benchmarks' keys.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime

import results_file

KINDS = ("asphalt_tank", "centrifugal_pump", "rod_pump", "smelter_cell", "dra_pipeline",
         "asphalt_terminal")
FIELD = {"asphalt_tank": "tanks", "centrifugal_pump": "pumps", "rod_pump": "wells",
         "smelter_cell": "cells", "dra_pipeline": "pipelines", "asphalt_terminal": "terminals"}
"""Plant kind -> plants.sitegen.SiteCounts field."""


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def measure_kind(kind: str, assets: int) -> dict:
    """Build ``assets`` assets of ``kind`` in this process; the figures of the docstring."""
    import plants
    from actors.asset import build_loop
    from engine.config import parse_site
    from plants.sitegen import SiteCounts, generate_site

    text = generate_site(SiteCounts(**{FIELD[kind]: assets}), seed=7)
    site = plants.resolve_site(parse_site(text))
    process = resident_mb()
    sizes, times, loops = [], [], []
    for asset in site.assets:
        before, start = resident_mb(), time.perf_counter()
        loops.append(build_loop(asset, 0.0))  # kept: the shard holds every asset's loop
        times.append(time.perf_counter() - start)
        sizes.append(resident_mb() - before)
    extra = sizes[1:] or [0.0]
    return {"assets": assets, "process_mb": round(process, 1), "first_mb": round(sizes[0], 1),
            "extra_mb": round(statistics.fmean(extra), 2), "extra_max_mb": round(max(extra), 1),
            "first_build_s": round(times[0], 3),
            "extra_build_s": round(statistics.median(times[1:] or [0.0]), 4),
            "structures": len({(a.period_s, json.dumps(a.structure, sort_keys=True))
                               for a in site.assets})}


def measure_site(path: str) -> dict:
    """Build every asset of the site file ``path`` in this process, in file order."""
    import plants
    from actors.asset import build_loop
    from engine.config import load_site

    site = plants.resolve_site(load_site(path), path)
    process, start_all = resident_mb(), time.perf_counter()
    assets, loops = {}, []
    for asset in site.assets:
        before, start = resident_mb(), time.perf_counter()
        loops.append(build_loop(asset, 0.0))
        assets[asset.id] = {"kind": asset.kind, "mb": round(resident_mb() - before, 1),
                            "build_s": round(time.perf_counter() - start, 3)}
    return {"site": path, "process_mb": round(process, 1),
            "assets_mb": round(resident_mb() - process, 1),
            "build_s": round(time.perf_counter() - start_all, 2), "assets": assets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=4, help="assets per kind (>= 2)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds")
    parser.add_argument("--label", default="current", help="key of this run in the results")
    parser.add_argument("--site", help="also build this site file's assets in one process")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one kind
    parser.add_argument("--one-site", help=argparse.SUPPRESS)  # the child process: the site
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_kind(args.one, args.assets)))
        return
    if args.one_site:
        print(json.dumps(measure_site(args.one_site)))
        return
    if args.assets < 2:
        parser.error("--assets must be at least 2 (the figure is the cost of the second)")
    kinds = [kind for kind in args.kinds.split(",") if kind]
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown kinds {unknown}; known: {', '.join(KINDS)}")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        root, os.environ.get("PYTHONPATH")]))}
    per_kind = {}
    for kind in kinds:
        child = subprocess.run([sys.executable, __file__, "--one", kind, "--assets",
                                str(args.assets)], env=env, capture_output=True, text=True,
                               check=True)
        per_kind[kind] = json.loads(child.stdout.strip().splitlines()[-1])
        figures = per_kind[kind]
        print(f"{kind:18s} process {figures['process_mb']:6.1f} MB  first "
              f"{figures['first_mb']:6.1f} MB  extra {figures['extra_mb']:6.2f} MB (max "
              f"{figures['extra_max_mb']:.1f})  build first {figures['first_build_s']:.3f} s, "
              f"extra {figures['extra_build_s']:.4f} s  ({figures['structures']} structures)",
              flush=True)
    site = None
    if args.site:
        child = subprocess.run([sys.executable, __file__, "--one-site", args.site], env=env,
                               capture_output=True, text=True, check=True)
        site = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"site {args.site}: process {site['process_mb']:.1f} MB, assets "
              f"{site['assets_mb']:.1f} MB, built in {site['build_s']:.1f} s", flush=True)
        for asset_id, figures in site["assets"].items():
            print(f"  {asset_id:12s} {figures['kind']:18s} {figures['mb']:7.1f} MB  "
                  f"{figures['build_s']:7.3f} s", flush=True)
    previous = {}
    if results_file.RESULTS.exists():
        previous = json.loads(results_file.RESULTS.read_text()).get("asset_memory", {})
    run = previous.get(args.label, {})
    run.update(date=datetime.now(UTC).isoformat(timespec="seconds"),
               machine=f"{platform.machine()}, {os.cpu_count()} cores",
               kinds={**run.get("kinds", {}), **per_kind})
    if site is not None:
        run["site"] = site
    previous[args.label] = run
    results_file.save("asset_memory", previous)


if __name__ == "__main__":
    main()
