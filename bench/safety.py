"""What the safety gate costs, against baselines measured in the same run.

    python bench/safety.py

- Policy: ``engine.safety.decide`` on a three-signal proposal with the site's checks
  (operator bands, a trip interlock watching three measurements and a count interlock
  over ten signals, as in examples/pilot.toml) against the same call with limits and
  rates only (the baseline). Median of 5 repeats of 20,000 calls each; reported as
  microseconds per decision and the ratio.
- Durable commit: ``AuditLog.append`` of three records together with the safety
  actor's state entry of the asset (one SQLite transaction, WAL, synchronous=FULL, as
  the SafetyActor commits every decision) against appending the three records alone
  (the baseline: the audit log before this issue). Median of 200 commits each, in a
  temporary directory on the same disk as this file; milliseconds and the ratio.
- Group commit: ``SafetyAuthority.decide_batch`` (the SafetyActor's code without Ray)
  of one tick instant of a shard of 100 assets (each a measurement and a three-signal
  proposal; a trip interlock per asset) against the same 100 requests decided one by
  one (``decide``, one transaction each, as the per-asset actors did), alternating, on
  the same disk. Median milliseconds per 100 decisions and the ratio; and the fsync
  and fdatasync calls per 100 decisions, counted with ``strace -f -c`` in a child
  process that runs 10 tick instants (less one that runs none: the set-up's own syncs).
- Token check: ``serve.auth.TokenTable.identify`` of the last of 10 tokens (10 salted
  SHA-256 hashes, the worst case of a 10-token file) against one SHA-256 of the token
  (the baseline). Microseconds and the ratio.

Results are merged into ``bench/results.json`` under the key ``"safety"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import results_file

from actors.safety import SafetyAuthority
from engine.audit import AuditLog
from engine.config import (
    AssetConfig,
    CountInterlock,
    SetpointLimit,
    SiteConfig,
    SiteSettings,
    TripInterlock,
)
from engine.messages import AuditRecord, GateRequest, Measurement, Mode, Outcome, Proposal
from engine.safety import Applied, SiteView, decide, operator_limit
from serve.auth import Token, TokenTable, hash_token

CALLS = 20_000
REPEATS = 5
COMMITS = 200
SHARD = 100
"""Assets of one shard at one tick instant: one decide_batch."""
INSTANTS = 30
FSYNC_INSTANTS = 10

LIMITS = {"T_supply": SetpointLimit(lower=473.15, upper=573.15, max_rate=0.05),
          "m_loop": SetpointLimit(lower=2.0, upper=25.0, max_rate=0.05),
          "valve_01": SetpointLimit(lower=0.0, upper=1.0, max_rate=0.01)}
LAST = {name: Applied(limit.lower, 0.0) for name, limit in LIMITS.items()}
PROPOSAL = Proposal(asset="terminal", time=300.0, reason="mpc",
                    setpoints={"T_supply": 520.0, "m_loop": 12.0, "valve_01": 0.4})


def per_call(function, calls: int) -> float:
    """Median seconds per call over REPEATS runs of ``calls`` calls."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def bench_policy() -> dict:
    interlocks = [
        TripInterlock(name="MAOP", when=[f"line.discharge_pressure_{i}" for i in (1, 2, 3)],
                      above=9.6e6, hold=["terminal.m_loop"]),
        CountInterlock(name="pumps", signals=[f"terminal.draw_{i:02d}" for i in range(1, 11)],
                       max_active=3),
    ]
    site = SiteView(measured={f"line.discharge_pressure_{i}": 3.2e6 for i in (1, 2, 3)},
                    applied={f"terminal.draw_{i:02d}": 0.0 for i in range(1, 11)})
    bands = {"m_loop": operator_limit("m_loop", 5.0, 20.0, LIMITS["m_loop"])}

    def bare():
        decide(PROPOSAL, mode=Mode.AUTONOMOUS, limits=LIMITS, last_applied=LAST,
               measurement_age=0.0)

    def full():
        decide(PROPOSAL, mode=Mode.AUTONOMOUS, limits=LIMITS, last_applied=LAST,
               measurement_age=0.0, max_measurement_age=600.0, operator_limits=bands,
               interlocks=interlocks, site=site)

    baseline, checked = per_call(bare, CALLS), per_call(full, CALLS)
    return {"decisions": CALLS * REPEATS, "limits_and_rates_us": baseline * 1e6,
            "all_checks_us": checked * 1e6, "ratio_all_checks_to_limits_and_rates":
            checked / baseline}


def bench_commit() -> dict:
    records = [AuditRecord(time=300.0, asset="terminal", user="controller",
                           source="controller", signal=name, requested=1.0, applied=1.0,
                           outcome=Outcome.ACCEPTED, reason="within limits | mpc")
               for name in LIMITS]
    state = {"gate:terminal": {"mode": "AUTONOMOUS", "operator_limits": {},
                               "last_applied": {n: [1.0, 300.0] for n in LIMITS},
                               "measured": {f"level_{i:02d}": 9.0 for i in range(1, 11)},
                               "queue": [], "next_proposal": 1}}
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as folder:
        log = AuditLog(Path(folder) / "bench.db")

        times: dict[str, list[float]] = {"records": [], "state": []}
        for _ in range(COMMITS):  # alternating, so that both see the same disk and cache
            for kind, write in (("records", lambda: log.append(records)),
                                ("state", lambda: log.append(records, state))):
                start = time.perf_counter()
                write()
                times[kind].append(time.perf_counter() - start)
        log.close()
        baseline, with_state = (statistics.median(times[k]) * 1e3 for k in ("records", "state"))
    return {"commits": COMMITS, "records_only_ms": baseline, "records_and_state_ms": with_state,
            "ratio_with_state_to_records_only": with_state / baseline}


def shard_site(folder: Path) -> SiteConfig:
    assets = [AssetConfig(id=f"a{i:03d}", kind="asphalt_terminal", limits=LIMITS,
                          max_measurement_age_s=3600.0) for i in range(SHARD)]
    locks = [TripInterlock(name=f"{a.id} high", when=[f"{a.id}.level"], above=13.3,
                           close=[f"{a.id}.valve_01"]) for a in assets]
    return SiteConfig(site=SiteSettings(name="bench", audit_db=str(folder / "audit.db")),
                      assets=assets, interlocks=locks)


def shard_requests(t: float) -> list[GateRequest]:
    return [GateRequest(asset=f"a{i:03d}", time=t,
                        measurement=Measurement(f"a{i:03d}", t, {"level": 9.0, "T": 433.0}),
                        measurement_age=0.0,
                        proposal=Proposal(asset=f"a{i:03d}", time=t, reason="mpc",
                                          setpoints={"T_supply": 520.0, "m_loop": 12.0,
                                                     "valve_01": 0.4}))
            for i in range(SHARD)]


def authority(folder: Path) -> SafetyAuthority:
    site = shard_site(folder)
    return SafetyAuthority(site, {a.id: {n: lim.lower for n, lim in LIMITS.items()}
                                  for a in site.assets}, 0.0)


def run_instants(gate: SafetyAuthority, how: str, instants: int, start: int = 0) -> list[float]:
    """Decide ``instants`` tick instants of the shard, batched or one by one; wall s each."""
    times = []
    for k in range(start, start + instants):
        requests = shard_requests(300.0 * (k + 1))
        began = time.perf_counter()
        if how == "batch":
            gate.decide_batch(requests)
        else:
            for r in requests:
                gate.decide(r.proposal, r.measurement_age, r.measurement)
        times.append(time.perf_counter() - began)
    return times


def count_fsyncs(how: str) -> float | None:
    """fsync + fdatasync calls per tick instant of the shard, or None without strace."""
    if shutil.which("strace") is None:
        return None
    counts = []
    for instants in (0, FSYNC_INSTANTS):
        with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as folder:
            out = Path(folder) / "strace.txt"
            subprocess.run(["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", str(out),
                            sys.executable, __file__, "--instants", how, str(instants)],
                           check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
            calls = re.findall(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?f(?:data)?sync$",
                               out.read_text(), flags=re.M)
            counts.append(sum(int(c) for c in calls))
    return (counts[1] - counts[0]) / FSYNC_INSTANTS


def bench_group_commit() -> dict:
    with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as folder:
        batched = authority(Path(folder) / "batch")
        single = authority(Path(folder) / "single")
        times: dict[str, list[float]] = {"batch": [], "single": []}
        for k in range(INSTANTS):  # alternating, so that both see the same disk and cache
            times["batch"] += run_instants(batched, "batch", 1, k)
            times["single"] += run_instants(single, "single", 1, k)
        batch_ms, single_ms = (statistics.median(times[k]) * 1e3 for k in ("batch", "single"))
    fsyncs = {how: count_fsyncs(how) for how in ("batch", "single")}
    return {"decisions_per_instant": SHARD, "instants": INSTANTS,
            "batch_ms": batch_ms, "one_by_one_ms": single_ms,
            "ratio_batch_to_one_by_one": batch_ms / single_ms,
            "fsyncs_batch": fsyncs["batch"], "fsyncs_one_by_one": fsyncs["single"],
            "ratio_fsyncs_batch_to_one_by_one": (
                None if fsyncs["batch"] is None else fsyncs["batch"] / fsyncs["single"])}


def bench_tokens() -> dict:
    tokens = [secrets.token_urlsafe(32) for _ in range(10)]
    table = TokenTable([Token(f"user{i}", "viewer", hash_token(t)) for i, t in enumerate(tokens)])
    last = tokens[-1]
    baseline = per_call(lambda: hashlib.sha256(last.encode()).hexdigest(), CALLS // 10)
    check = per_call(lambda: table.identify(last), CALLS // 10)
    return {"tokens": len(tokens), "sha256_us": baseline * 1e6, "identify_last_us": check * 1e6,
            "ratio_identify_to_one_sha256": check / baseline}


def main() -> None:
    if sys.argv[1:2] == ["--instants"]:  # the child whose syncs count_fsyncs counts
        how, instants = sys.argv[2], int(sys.argv[3])
        with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as folder:
            run_instants(authority(Path(folder)), how, instants)
        return
    results = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "load_average_1m_before": os.getloadavg()[0]},
        "policy": bench_policy(),
        "durable_commit": bench_commit(),
        "group_commit": bench_group_commit(),
        "token_check": bench_tokens(),
    }
    print(json.dumps(results, indent=2))
    results_file.save("safety", results)


if __name__ == "__main__":
    main()
