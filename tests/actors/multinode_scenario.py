"""A site on a local three-node Ray cluster, one worker node killed: run as a script by
tests/actors/test_multinode.py (the test session's own embedded Ray cannot be a cluster).

    python -m tests.actors.multinode_scenario WORKDIR  ->  one JSON object on stdout

The cluster (ray.cluster_utils.Cluster, every node on loopback, one CPU each): the head,
which hosts the driver and so the safety actor and its audit database (actors.fleet pins
the safety actor to the driver's node), and two worker nodes. The site is the two tanks
of tests/sites/two_tanks.toml plus a copy of tank-01, one asset per shard, in real time
at SPEED (one 120 s tick every half second of wall time). Once every asset ticks, the
worker node hosting the most asset shards is removed (its raylet and every worker process
on it killed); the scenario then waits until every asset has ticks audited after the kill.

Placement is read from the processes: a Ray worker process is a child of its node's
raylet, so the parent pid of an actor's process names its node.

The JSON: ``nodes`` (labels: head, worker-1, worker-2), ``victim`` (the removed node's
label), ``before``/``after`` (actor name -> node label: asset shards, plant shards, the
safety actor), ``kill_time`` (twin s), ``shards_restarted`` (shard name -> shard_status
after), ``audit_before``/``audit_after`` (asset id -> its audit records, oldest first),
and ``limits`` (asset id -> m_oil lower, upper, max_rate).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

SPEED = 240.0
"""Twin seconds per wall second: a tank's 120 s period is half a second of wall time."""
TICKS_BEFORE_KILL = 3
"""Ticks every asset makes before a node is killed."""
RECORDS_AFTER_KILL = 3
"""Audited ticks every asset makes after the kill before the scenario ends."""
TIMEOUT_S = 60.0
"""Wall seconds each phase may take."""
SITE = Path(__file__).resolve().parents[1] / "sites" / "two_tanks.toml"


def wait_for(what: str, check, timeout: float = TIMEOUT_S):
    """Poll ``check`` until it returns a true value; RuntimeError naming ``what`` if not."""
    from ray.exceptions import RayError

    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        try:
            value = check()
        except RayError:  # an actor restarting, a node going: ask again
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not within {timeout} s")


def main(workdir: Path) -> dict:
    # Ray would turn 127.0.0.1 into the machine's address (unreachable in a sandbox);
    # read when Ray is imported (see serve/cli.py)
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    import msgspec
    import psutil
    import ray
    from ray.cluster_utils import Cluster

    import plants
    from actors.fleet import build_fleet
    from engine.clock import ClockSpec
    from engine.config import FleetSettings, load_site

    loopback = {"node_ip_address": "127.0.0.1", "num_cpus": 1}
    cluster = Cluster(initialize_head=True,
                      head_node_args={**loopback, "include_dashboard": False})
    workers = [cluster.add_node(**loopback) for _ in range(2)]
    cluster.wait_for_nodes()
    raylets = {cluster.head_node.all_processes["raylet"][0].process.pid: "head"}
    for n, node in enumerate(workers, start=1):
        raylets[node.all_processes["raylet"][0].process.pid] = f"worker-{n}"
    by_label = {f"worker-{n}": node for n, node in enumerate(workers, start=1)}
    ray.init(address=cluster.address, namespace="multinode", log_to_driver=False,
             logging_level="WARNING")
    # a node is placeable once its resources have reached the scheduler's view
    wait_for("every node's CPU available", lambda: ray.available_resources().get("CPU") == 3)

    site = load_site(SITE)
    third = msgspec.structs.replace(site.assets[0], id="tank-03")
    site = msgspec.structs.replace(
        site, assets=[*site.assets, third], fleet=FleetSettings(assets_per_shard=1),
        site=msgspec.structs.replace(site.site, audit_db=str(workdir / "audit.db")))
    site = plants.resolve_site(site, SITE)
    ids = [asset.id for asset in site.assets]
    fleet = build_fleet(site, ClockSpec(speed=SPEED), namespace="multinode")
    fleet.start()

    def node_of(pid: int) -> str:
        return raylets[psutil.Process(pid).ppid()]

    def placement() -> dict[str, str]:
        pids = {name: ray.get(shard.shard_status.remote())["pid"]
                for name, shard in fleet.shards.items()}
        pids |= {name: ray.get(shard.pid.remote()) for name, shard in fleet.plant_shards.items()}
        pids["safety"] = ray.get(fleet.safety.pid.remote())
        return {name: node_of(pid) for name, pid in pids.items()}

    def ticks() -> dict[str, int]:
        return {i: ray.get(fleet.assets[i].status.remote(), timeout=10)["ticks"] for i in ids}

    wait_for("every asset ticking", lambda: min(ticks().values()) >= TICKS_BEFORE_KILL)
    before = placement()
    hosted = {label: sum(1 for name, node in before.items()
                         if name.startswith("shard:") and node == label) for label in by_label}
    victim = max(hosted, key=lambda label: hosted[label])
    lost = [name for name, node in before.items() if name.startswith("shard:") and node == victim]
    old_pids = {name: ray.get(fleet.shards[name].shard_status.remote())["pid"] for name in lost}

    audit_before = {i: ray.get(fleet.safety.audit_records.remote(i, limit=100_000)) for i in ids}
    kill_time = max(ray.get(fleet.assets[i].status.remote())["time"] for i in ids)
    cluster.remove_node(by_label[victim])

    def restarted():
        statuses = {name: ray.get(fleet.shards[name].shard_status.remote(), timeout=10)
                    for name in lost}
        return statuses if all(s["pid"] != old_pids[n] and s["restarted"]
                               for n, s in statuses.items()) else None

    shards_restarted = wait_for("the lost shards restarted", restarted)

    def audited_after_kill():
        records = {i: ray.get(fleet.safety.audit_records.remote(i, limit=100_000)) for i in ids}
        done = all(sum(1 for r in rs if r["time"] > kill_time and r["signal"] == "m_oil")
                   >= RECORDS_AFTER_KILL for rs in records.values())
        return records if done else None

    audit_after = wait_for("every asset audited after the kill", audited_after_kill)
    after = placement()
    limits = {a.id: {"lower": a.limits["m_oil"].lower, "upper": a.limits["m_oil"].upper,
                     "max_rate": a.limits["m_oil"].max_rate} for a in site.assets}
    fleet.shutdown()
    ray.shutdown()
    cluster.shutdown()
    return {"nodes": ["head", *by_label], "victim": victim, "before": before, "after": after,
            "kill_time": kill_time, "shards_restarted": shards_restarted,
            "audit_before": audit_before, "audit_after": audit_after, "limits": limits}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
