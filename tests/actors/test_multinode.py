"""Many nodes (issue 10): a site on a local three-node Ray cluster loses a worker node.

The cluster runs in a subprocess (tests/actors/multinode_scenario.py; this session's
embedded Ray is one node), which reports placement and the audit as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("multinode")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    run = subprocess.run([sys.executable, "-m", "tests.actors.multinode_scenario", str(workdir)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def shards(placement: dict[str, str]) -> dict[str, str]:
    return {name: node for name, node in placement.items() if name.startswith("shard:")}


def assert_plant_shards_beside_their_shards(placement: dict[str, str]) -> None:
    for name, node in shards(placement).items():
        assert placement[name.replace("shard:", "plants:")] == node


def test_shards_spread_over_the_nodes_and_the_safety_actor_stays_on_the_head(scenario):
    before = scenario["before"]
    assert len(scenario["nodes"]) == 3
    # three shards on three nodes: one on each (actors.fleet.spread_bundles)
    assert sorted(shards(before).values()) == sorted(scenario["nodes"])
    assert_plant_shards_beside_their_shards(before)
    assert before["safety"] == scenario["after"]["safety"] == "head"


def test_the_lost_nodes_shards_restart_on_the_other_nodes(scenario):
    victim, before, after = scenario["victim"], scenario["before"], scenario["after"]
    lost = [name for name, node in shards(before).items() if node == victim]
    assert lost  # a worker node that hosted asset shards
    assert victim not in after.values()
    assert set(after) == set(before)  # every shard, plant shard and the safety actor is back
    assert_plant_shards_beside_their_shards(after)
    for name in lost:
        status = scenario["shards_restarted"][name]
        assert status["restarted"] and status["resume_error"] is None
    for name, node in before.items():  # the others were not moved
        if node != victim:
            assert after[name] == node


def test_no_decision_is_lost_and_every_asset_is_decided_again_within_its_limits(scenario):
    kill = scenario["kill_time"]
    for asset, before in scenario["audit_before"].items():
        records = scenario["audit_after"][asset]
        assert before and records[:len(before)] == before
        resumed = [r for r in records[len(before):] if r["signal"] == "m_oil"]
        assert [r for r in resumed if r["time"] > kill]
        limits = scenario["limits"][asset]
        applied = [r for r in records if r["signal"] == "m_oil" and r["applied"] is not None]
        for earlier, later in pairwise(applied):
            assert limits["lower"] <= later["applied"] <= limits["upper"]
            step = abs(later["applied"] - earlier["applied"])
            assert step <= limits["max_rate"] * (later["time"] - earlier["time"]) + 1e-9
