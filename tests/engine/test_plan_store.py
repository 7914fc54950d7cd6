"""Stored plans (engine.plan_store): versions survive a new store on the same folder,
approval is once, and unknown versions or unusable asset ids are named."""

from __future__ import annotations

import stat

import pytest

from engine.plan_store import PlanStore


def test_versions_count_up_and_outlive_the_store(tmp_path):
    store = PlanStore(tmp_path / "plans")
    first = store.add("dra-line", {"cost": 3.0}, created=10.0, user="olga")
    second = store.add("dra-line", {"cost": 2.0}, created=20.0, user="olga")
    assert (first["version"], second["version"]) == (1, 2)
    reopened = PlanStore(tmp_path / "plans")
    assert reopened.get("dra-line") == second
    assert reopened.get("dra-line", 1)["plan"] == {"cost": 3.0}
    assert reopened.approved("dra-line") is None
    path = tmp_path / "plans" / "dra-line" / "v000002.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list((tmp_path / "plans" / "dra-line").glob("*.tmp"))


def test_a_version_is_approved_once_and_stays_approved(tmp_path):
    store = PlanStore(tmp_path)
    store.add("dra-line", {"cost": 3.0}, created=10.0, user="olga")
    store.add("dra-line", {"cost": 2.0}, created=20.0, user="olga")
    entry = store.approve("dra-line", 1, user="otto", time=30.0)
    assert (entry["status"], entry["approved_by"], entry["approved_at"]) == (
        "approved", "otto", 30.0)
    assert PlanStore(tmp_path).approved("dra-line")["version"] == 1
    assert store.get("dra-line")["status"] == "proposed"        # version 2, the latest
    with pytest.raises(ValueError, match="approved already by otto"):
        store.approve("dra-line", 1, user="olga", time=40.0)


def test_missing_plans_and_bad_ids_are_named(tmp_path):
    store = PlanStore(tmp_path)
    with pytest.raises(LookupError, match="'dra-line' has no plan yet"):
        store.get("dra-line")
    store.add("dra-line", {}, created=0.0, user="olga")
    with pytest.raises(LookupError, match="no plan version 5"):
        store.approve("dra-line", 5, user="olga", time=0.0)
    with pytest.raises(ValueError, match="cannot name a plan folder"):
        store.add("../etc", {}, created=0.0, user="olga")
