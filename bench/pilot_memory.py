"""Resident memory of the pilot demo, every process of it (issue 10: "The 12-asset pilot
runs in under 3 GB resident in all").

    python bench/pilot_memory.py [--settle 60] [--site examples/pilot.toml]

Starts ``twinloop demo`` as ``make demo`` does (``python -m serve.cli demo``, embedded Ray,
the site's HTTP API, OPC UA and Modbus PLCs, on free loopback ports, in a temporary
working folder), waits until every asset of the site has ticked, then ``--settle`` wall
seconds more, and measures each process of the demo's tree (the demo itself, Ray's GCS,
raylet, dashboard, agents and idle workers, Serve's controller, proxy and replica, every
TwinLoop actor) from ``/proc/<pid>/smaps_rollup`` (psutil ``memory_full_info``):

- RSS: pages resident in the process; a page shared with others (the Python, Ray and
  library code every process maps from the same files, copy-on-write pages after fork)
  counts in each of them, so the RSS summed over processes counts shared pages many times;
- PSS (proportional set size): each resident page divided by the number of processes
  mapping it, so the PSS summed over the tree is the memory the tree really holds;
- USS: pages of this process alone, what ending it gives back.

MB are 2^20 bytes. The issue's 3 GB is taken as 3 x 10^9 bytes = 2,861 MB. Results are
merged into ``bench/results.json`` under ``"pilot_memory"`` (one object, the last run).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import results_file
from ports import consecutive_free_ports, free_port

ROOT = Path(__file__).resolve().parents[1]
PILOT = ROOT / "examples" / "pilot.toml"
MB = 2**20
LIMIT_MB = 3e9 / MB
COUNTER = r'^twinloop_{}_total\{{asset="([^"]+)"[^}}]*\}} (\S+)$'
TICKS = re.compile(COUNTER.format("ticks"), re.MULTILINE)
OVERRUNS = re.compile(COUNTER.format("deadline_overruns"), re.MULTILINE)


def role(process: psutil.Process, demo_pid: int) -> str:
    """What a process of the demo's tree is: ``ray::<actor class>`` for Ray workers
    (``ray::IDLE`` for an idle one), Ray's own daemons by their program's name."""
    if process.pid == demo_pid:
        return "twinloop demo (driver)"
    cmdline = process.cmdline()
    if cmdline and cmdline[0].startswith("ray::"):
        return cmdline[0].split(".")[0].strip()  # ray::StatusBoard.changes: a method runs
    for arg in cmdline[:2]:
        name = Path(arg).name
        if name in ("gcs_server", "raylet"):
            return name
    script = next((Path(a).name for a in cmdline[1:3] if a.endswith(".py")), process.name())
    return {"dashboard.py": "Ray dashboard (head)", "monitor.py": "Ray autoscaler monitor",
            "log_monitor.py": "Ray log monitor"}.get(script, script)


def process_memory(processes: list[psutil.Process], demo_pid: int) -> list[dict[str, Any]]:
    """RSS, PSS and USS (MB) of each process still alive, largest PSS first."""
    rows = []
    for process in processes:
        try:
            info = process.memory_full_info()
            rows.append({"process": role(process, demo_pid), "pid": process.pid,
                         "rss_mb": info.rss / MB, "pss_mb": info.pss / MB,
                         "uss_mb": info.uss / MB})
        except psutil.Error:  # ended since it was listed
            continue
    return sorted(rows, key=lambda row: -row["pss_mb"])


def counted(url: str, token: str, counter: re.Pattern) -> dict[str, float]:
    """A per-asset counter (ticks, deadline overruns) from the demo's Prometheus exposition."""
    try:
        text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"},
                         timeout=30).text
    except httpx.HTTPError:
        return {}
    return {asset: float(value) for asset, value in counter.findall(text)}


def measure(site: Path, settle_s: float, timeout_s: float) -> dict[str, Any]:
    token = secrets.token_urlsafe(32)
    port = free_port()
    command = [sys.executable, "-m", "serve.cli", "demo", "--site", str(site),
               "--port", str(port), "--opcua-port", str(free_port()),
               "--modbus-port", str(consecutive_free_ports(12)), "--duration", "3600"]
    env = {**os.environ, "TWINLOOP_ADMIN_TOKEN": token,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as folder:
        demo = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            assert demo.stdout is not None
            banner = []
            for line in demo.stdout:
                banner.append(line)
                if "Stopping in" in line:
                    break
            else:
                log = Path(folder, "var", f"{site.stem}.log")
                tail = log.read_text()[-3000:] if log.exists() else ""
                raise RuntimeError("the demo ended before it started:\n"
                                   + "".join(banner) + tail)
            url = f"http://127.0.0.1:{port}"
            assets = int(re.findall(r"\((\d+) assets\)", banner[0])[0])
            started = time.monotonic()
            while True:
                ticks = counted(url, token, TICKS)
                if len(ticks) == assets and all(n > 0 for n in ticks.values()):
                    break
                if time.monotonic() - started > timeout_s:
                    raise RuntimeError(f"not every asset ticked within {timeout_s} s: {ticks}")
                time.sleep(2)
            first_tick_s = time.monotonic() - started
            overruns = counted(url, token, OVERRUNS)
            time.sleep(settle_s)
            root = psutil.Process(demo.pid)
            rows = process_memory([root, *root.children(recursive=True)], demo.pid)
            settled = counted(url, token, TICKS)
            overruns_settled = counted(url, token, OVERRUNS)
        finally:
            demo.terminate()
            demo.communicate(timeout=120)
    totals = {key: sum(row[key] for row in rows) for key in ("rss_mb", "pss_mb", "uss_mb")}
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "site": os.path.relpath(site, ROOT), "machine": platform.machine(),
        "cpus": os.cpu_count(), "load_average": os.getloadavg(),
        "counted": "every process of the `twinloop demo` tree (driver, Ray's daemons and "
                   "workers, Serve, TwinLoop's actors), from smaps_rollup; MB = 2^20 bytes",
        "every_asset_ticked_after_s": first_tick_s, "settle_s": settle_s,
        "ticks_while_settling": sum(settled.values()) - sum(ticks.values()),
        "overruns_while_settling": sum(overruns_settled.values()) - sum(overruns.values()),
        "processes": len(rows), **{f"{key}_total": value for key, value in totals.items()},
        "limit_mb": LIMIT_MB, "table": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", type=Path, default=PILOT)
    parser.add_argument("--settle", type=float, default=60.0,
                        help="wall seconds to wait after every asset ticked")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="wall seconds within which every asset must tick")
    parser.add_argument("--out", help="store under this key of bench/results.json "
                        "(default pilot_memory; '-' stores nothing)", default="pilot_memory")
    args = parser.parse_args()
    result = measure(args.site.resolve(), args.settle, args.timeout)
    print(f"{'process':<40} {'pid':>7} {'RSS MB':>8} {'PSS MB':>8} {'USS MB':>8}")
    for row in result["table"]:
        print(f"{row['process']:<40} {row['pid']:>7} {row['rss_mb']:>8,.0f} "
              f"{row['pss_mb']:>8,.0f} {row['uss_mb']:>8,.0f}")
    print(f"{'total (' + str(result['processes']) + ' processes)':<40} {'':>7} "
          f"{result['rss_mb_total']:>8,.0f} {result['pss_mb_total']:>8,.0f} "
          f"{result['uss_mb_total']:>8,.0f}")
    print(f"while settling: {result['ticks_while_settling']:.0f} ticks, "
          f"{result['overruns_while_settling']:.0f} deadline overruns")
    print(f"issue 10's 3 GB = {LIMIT_MB:,.0f} MB; load average "
          f"{', '.join(f'{x:.1f}' for x in result['load_average'])}")
    if args.out != "-":
        results_file.save(args.out, result)


if __name__ == "__main__":
    main()
