"""Safe state over HTTP (issue 9 item 0): an operator drives an asset, or the whole site,
to its safe values through the gate, in any mode, on record. The two-tank site; m_oil's
safe value is its lower limit, 0.1 kg/s (tests/sites/two_tanks.toml)."""

from __future__ import annotations

import pytest
import ray

from tests.conftest import admin_api

PERIOD = 120.0
SAFE = 0.1  # kg/s: tank-01's and tank-02's m_oil lower limit, their default safe value


@pytest.fixture(scope="module")
def api(two_tanks):
    two_tanks.run_for(6 * PERIOD)
    with admin_api(two_tanks) as client:
        yield client


def m_oil(fleet, asset_id: str) -> float:
    return ray.get(fleet.plants[asset_id].truth.remote())["inputs"]["m_oil"]


def test_safe_state_of_an_off_asset_writes_its_safe_value_at_once_on_record(api, two_tanks):
    assert api.put("/assets/tank-01/mode", json={"mode": "OFF"}).status_code == 200
    # written at the instant of the last tick: a rate-limited move could not move at all
    assert m_oil(two_tanks, "tank-01") > SAFE
    answer = api.post("/assets/tank-01/safe-state")
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] == {"m_oil": SAFE}
    assert m_oil(two_tanks, "tank-01") == SAFE
    record = api.get("/assets/tank-01/audit").json()[-1]
    assert (record["source"], record["user"], record["signal"], record["applied"]) == (
        "safe-state", "tester", "m_oil", SAFE)
    two_tanks.run_for(2 * PERIOD)  # OFF: nothing else is written afterwards
    assert m_oil(two_tanks, "tank-01") == SAFE


def test_site_safe_state_answers_for_every_asset(api, two_tanks):
    answer = api.post("/safe-state")
    assert answer.status_code == 200, answer.text
    assert {asset: a["applied"] for asset, a in answer.json().items()} == {
        "tank-01": {"m_oil": SAFE}, "tank-02": {"m_oil": SAFE}}
    assert m_oil(two_tanks, "tank-02") == SAFE

