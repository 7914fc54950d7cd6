"""Setpoint latency to an OPC UA subscriber: TwinLoop's gated path against plain asyncua.

    python bench/opcua.py [--samples N]

- TwinLoop: one asphalt tank on an embedded Ray (lock-step clock, MANUAL mode, no rate
  limit), its OPC UA gateway actor serving on loopback, and an asyncua client in this
  process subscribed to ``tank-01/Setpoints/m_oil`` (publishing interval 0: publish
  as soon as a value changes). Each sample proposes a new setpoint through
  ``AssetActor.write_setpoints`` (the path an HTTP or OPC UA operator write takes):
  proposal -> SafetyActor decision and audit record -> simulated plant -> status push to
  the gateway -> node write -> subscription notification. The latency runs from the
  wall time the proposal is sent to the wall time the client's handler sees the
  notification, so it bounds the decision-to-notification latency from above by the
  proposal's trip to the safety actor (also reported: the full write_setpoints round trip).
- Its OPC UA share, same run: a status snapshot pushed straight to the gateway actor (as
  an asset pushes it after a decision), to the subscriber's notification; the rest of
  the latency is the proposal's trip through the asset and safety actors, the audit
  record's durable commit and the simulated plant's write. The durable commit (SQLite
  WAL, synchronous=FULL: an fsync per decision) is timed on its own in the same run.
- Baseline, same run: a plain asyncua server and a client subscribed the same way, in
  this process; the server writes a variable and the client waits for its notification.

Median and p99 of each, and their ratios. Target: p99 <= 50 ms. A SCADA client's own
publishing interval (typically 100-1000 ms) adds up to one interval on top of both.

Results are merged into ``bench/results.json`` under the key ``"opcua"``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncua
import ray
import results_file
from asyncua import Client, Server, ua
from ports import free_port

import plants
from actors import NAMESPACE
from actors.fleet import build_fleet
from engine.audit import AuditLog
from engine.clock import ClockSpec
from engine.config import OpcUaSettings, parse_site
from engine.messages import AuditRecord, Outcome

TARGET_P99_MS = 50.0
SITE = """
[site]
name = "bench-opcua"
audit_db = "{audit}"

[[assets]]
id = "tank-01"
kind = "asphalt_tank"
mode = "MANUAL"
[assets.limits.m_oil]
lower = 0.1
upper = 10.0
"""


class Arrivals:
    """Subscription handler: wall time and value of each notification."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[float, float]] = asyncio.Queue()

    def datachange_notification(self, node, value, data) -> None:
        self.queue.put_nowait((time.time(), value))

    async def value(self, expected: float) -> float:
        """Wall time at which ``expected`` arrived (skipping anything else)."""
        while True:
            arrived, value = await asyncio.wait_for(self.queue.get(), 10.0)
            if value == expected:
                return arrived



def values(samples: int) -> list[float]:
    return [2.0 + (i % 2) for i in range(samples)]


async def baseline(samples: int) -> list[float]:
    """Plain asyncua: server write -> subscriber notification, one process, seconds."""
    server = Server()
    await server.init()
    url = f"opc.tcp://127.0.0.1:{free_port()}/baseline"
    server.set_endpoint(url)
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    server.set_identity_tokens([ua.AnonymousIdentityToken])
    ns = await server.register_namespace("urn:bench")
    variable = await server.nodes.objects.add_variable(ns, "m_oil", 0.0)
    latencies = []
    async with server, Client(url) as client:
        arrivals = Arrivals()
        subscription = await client.create_subscription(0, arrivals)
        await subscription.subscribe_data_change(client.get_node(variable.nodeid))
        await arrivals.value(0.0)
        for value in values(samples):
            sent = time.time()
            await server.write_attribute_value(variable.nodeid, ua.DataValue(ua.Variant(value)))
            latencies.append(await arrivals.value(value) - sent)
    return latencies


async def twinloop(samples: int, fleet, url: str) -> dict[str, list[float]]:
    """Seconds: gated setpoint -> subscriber notification, the write_setpoints round trip,
    and a status push to the gateway -> subscriber notification."""
    asset = fleet.assets["tank-01"]
    latencies, round_trips, pushes = [], [], []
    async with Client(url) as client:
        ns = await client.get_namespace_index("urn:twinloop:bench-opcua")
        node = await client.nodes.objects.get_child(
            [f"{ns}:Assets", f"{ns}:tank-01", f"{ns}:Setpoints", f"{ns}:m_oil"])
        arrivals = Arrivals()
        subscription = await client.create_subscription(0, arrivals)
        await subscription.subscribe_data_change(node)
        await asyncio.wait_for(arrivals.queue.get(), 10.0)
        for value in values(samples):
            sent = time.time()
            result = await asset.write_setpoints.remote({"m_oil": value}, "bench")
            round_trips.append(time.time() - sent)
            if result["applied"].get("m_oil") != value:
                raise RuntimeError(f"bench setpoint {value} not applied: {result['records']}")
            latencies.append(await arrivals.value(value) - sent)
        status = await asset.status.remote()
        for value in values(samples):
            status["setpoints"]["m_oil"]["value"] = value + 10.0  # shown, never applied
            sent = time.time()
            fleet.opcua.publish.remote(status)
            pushes.append(await arrivals.value(value + 10.0) - sent)
    return {"gated": latencies, "round_trips": round_trips, "pushes": pushes}


def audit_commits(samples: int, directory: Path) -> list[float]:
    """Seconds per durable audit append of one record, as the safety actor makes them."""
    log = AuditLog(directory / "commit-timing.db")
    seconds = []
    for i in range(samples):
        record = AuditRecord(time=float(i), asset="tank-01", user="bench", source="operator",
                             signal="m_oil", requested=2.0, applied=2.0,
                             outcome=Outcome.ACCEPTED, reason="bench")
        started = time.perf_counter()
        log.append([record])
        seconds.append(time.perf_counter() - started)
    return seconds


def summary_ms(seconds: list[float]) -> dict:
    ms = sorted(s * 1e3 for s in seconds)
    return {"median": statistics.median(ms),
            "p99": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
            "mean": statistics.fmean(ms), "max": ms[-1]}


def save(result: dict) -> None:
    results_file.save("opcua", result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    base = asyncio.run(baseline(args.samples))
    ray.init(address="local", num_cpus=2, namespace=NAMESPACE, include_dashboard=False,
             logging_level="WARNING", log_to_driver=False, _node_ip_address="127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="twinloop-bench-") as tmp:
        site = plants.resolve_site(parse_site(SITE.format(audit=Path(tmp) / "audit.db")), "bench")
        fleet = build_fleet(site, ClockSpec(lockstep=True, epoch=1.7e9))
        try:
            url = fleet.serve_opcua(OpcUaSettings(port=free_port(),
                                                  certificate_dir=str(Path(tmp) / "pki")))
            fleet.run_for(site.assets[0].period_s)
            measured = asyncio.run(twinloop(args.samples, fleet, url))
            commits = audit_commits(args.samples, Path(tmp))
        finally:
            fleet.shutdown()
            ray.shutdown()

    twin, plain = summary_ms(measured["gated"]), summary_ms(base)
    result = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "ray": ray.__version__, "asyncua": asyncua.__version__
                    if hasattr(asyncua, "__version__") else None,
                    "platform": platform.platform(), "load_average_1m_before": load_before},
        "samples": args.samples,
        "publishing_interval_ms": 0,
        "setpoint_to_subscriber_ms": twin,
        "write_setpoints_round_trip_ms": summary_ms(measured["round_trips"]),
        "status_push_to_subscriber_ms": summary_ms(measured["pushes"]),
        "audit_commit_ms": summary_ms(commits),
        "baseline_asyncua_write_to_subscriber_ms": plain,
        "ratios": {"median": twin["median"] / plain["median"], "p99": twin["p99"] / plain["p99"]},
        "target_p99_ms": TARGET_P99_MS,
        "target_met": twin["p99"] <= TARGET_P99_MS,
    }
    push, commit = result["status_push_to_subscriber_ms"], result["audit_commit_ms"]
    result["note"] = (
        f"The OPC UA share (status push -> gateway -> subscriber) is median {push['median']:.1f} "
        f"/ p99 {push['p99']:.1f} ms; the rest is the gate: Ray calls driver -> asset -> safety "
        f"-> plant and the durable audit commit (alone: median {commit['median']:.1f} / p99 "
        f"{commit['p99']:.1f} ms, an fsync per decision). Tails follow the machine's load "
        f"(1-min load average {load_before:.1f} on {os.cpu_count()} cores before the run).")
    save(result)
    print(f"OPC UA setpoint latency over {args.samples} samples (publishing interval 0):")
    print(f"  TwinLoop proposal -> safety -> gateway -> subscriber: "
          f"median {twin['median']:.2f} ms, "
          f"p99 {twin['p99']:.2f} ms (target p99 <= {TARGET_P99_MS:g} ms: "
          f"{'met' if result['target_met'] else 'NOT met'})")
    push = result["status_push_to_subscriber_ms"]
    print(f"  of which status push -> gateway -> subscriber: median {push['median']:.2f} ms, "
          f"p99 {push['p99']:.2f} ms")
    commit = result["audit_commit_ms"]
    print(f"  durable audit commit alone: median {commit['median']:.2f} ms, "
          f"p99 {commit['p99']:.2f} ms")
    print(f"  baseline asyncua write -> subscriber (same process): "
          f"median {plain['median']:.2f} ms, "
          f"p99 {plain['p99']:.2f} ms")
    print(f"  {result['note']}")
    print(f"  ratio: median x{result['ratios']['median']:.1f}, p99 x{result['ratios']['p99']:.1f}")


if __name__ == "__main__":
    main()
