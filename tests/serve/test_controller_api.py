"""Runtime controller tuning over real HTTP on the two-tank site: GET/PUT
/assets/{id}/controller rebuild the controller live, reach the safety actor's limits,
and refuse invalid tunings with 422 while the old controller keeps running."""

from __future__ import annotations

import itertools
import json

import pytest
import ray

from tests.conftest import admin_api, assert_promtool_accepts


@pytest.fixture(scope="module")
def api(two_tanks):
    with admin_api(two_tanks) as client:
        yield client


def test_get_controller_shows_the_site_tuning_limits_and_backends(api):
    tuning = api.get("/assets/tank-01/controller").json()
    assert tuning["backend"] == "do-mpc"
    assert tuning["horizon"] == 30
    assert tuning["tracking"] == {"T_bulk": 100.0, "T_return": 0.0}
    assert tuning["limits"]["m_oil"] == {
        "lower": 0.1, "upper": 10.0, "max_rate": 0.02, "unit": "kg/s",
        "engineering_lower": 0.1, "engineering_upper": 12.0}
    assert tuning["backends"] == ["do-mpc", "fast"]  # not the rod pumps' fillage rule
    assert api.get("/assets/tank-99/controller").status_code == 404


def test_a_new_tuning_is_used_live_and_its_rate_limit_reaches_the_safety_gate(api, two_tanks):
    """tank-02 gets a short horizon and a rate limit of 1e-4 kg/s per s, then a reference
    8 K below its temperature: the controller asks for the least hot oil at once, but
    every applied m_oil moves at most 0.012 kg/s per 120 s tick (the safety actor
    clamps the moves), and the asset keeps ticking healthily on the new controller."""
    two_tanks.run_for(600.0)
    before = api.get("/assets/tank-02").json()
    reply = api.put("/assets/tank-02/controller", json={
        "horizon": 12, "tracking": {"T_bulk": 50.0},
        "limits": {"m_oil": {"upper": 6.0, "max_rate": 1e-4}}})
    assert reply.status_code == 200, reply.text
    tuning = reply.json()
    assert tuning["horizon"] == 12
    assert tuning["tracking"] == {"T_bulk": 50.0, "T_return": 0.0}
    assert tuning["limits"]["m_oil"]["upper"] == 6.0
    assert tuning["limits"]["m_oil"]["max_rate"] == 1e-4
    assert api.get("/assets/tank-02/controller").json() == tuning
    gate = ray.get(two_tanks.safety.limits.remote("tank-02"))["m_oil"]
    assert (gate["lower"], gate["upper"], gate["max_rate"]) == (0.1, 6.0, 1e-4)

    cooler = before["estimate"]["T_bulk"]["value"] - 8.0
    assert api.put("/assets/tank-02/reference", json={"T_bulk": cooler}).status_code == 200
    since = before["time"]
    two_tanks.run_for(3600.0)
    after = api.get("/assets/tank-02").json()
    assert after["ticks"] > before["ticks"] and after["healthy"], after["errors"]
    assert after["controller"]["status"] == "Solve_Succeeded"
    assert len(after["controller"]["reason"]) > 0
    records = api.get("/assets/tank-02/audit", params={"since": since}).json()
    tuned_at = next(r["time"] for r in records if r["signal"] == "controller")
    applied = [r for r in records if r["signal"] == "m_oil" and r["applied"] is not None
               and r["time"] > tuned_at]
    assert len(applied) >= 25
    # the first write obeys the new upper bound at once (bounds win over the rate
    # limit); every later one moves at most max_rate x 120 s
    assert all(r["applied"] <= 6.0 for r in applied)
    for previous, record in itertools.pairwise(applied):
        assert abs(record["applied"] - previous["applied"]) <= 1e-4 * 120.0 + 1e-9
    assert any("rate limit 0.0001/s" in r["reason"] for r in applied if r["outcome"] == "clamped")
    tuning_records = [r["reason"] for r in records if r["signal"] == "controller"]
    assert tuning_records and "horizon 30 -> 12" in tuning_records[-1]
    limit_records = [r["reason"] for r in records
                     if r["signal"] == "m_oil" and r["reason"].startswith("engineering limits")]
    assert limit_records == [
        "engineering limits m_oil [0.1, 8] at most 0.02/s -> [0.1, 6] at most 0.0001/s"]


@pytest.mark.parametrize(("body", "message"), [
    ({"horizon": 0}, "horizon: 0 is outside [1, 500] controller steps"),
    ({"horizon": "long"}, "horizon: Expected `int`, got `str`"),
    ({"backend": "turbo"}, "backend: unknown backend 'turbo'; known backends: do-mpc"),
    ({"tracking": {"T_bulk": -1.0}}, "tracking.T_bulk: weight -1 must be finite and >= 0"),
    ({"move_suppression": {"T_top": 1.0}}, "move_suppression.T_top: unknown input"),
    ({"limits": {"m_oil": {"upper": 50.0}}},
     "limits.m_oil.upper: 50 kg/s is above the engineering upper bound 12 kg/s"),
    ({"limits": {"m_oil": {"lower": 0.0}}},
     "limits.m_oil.lower: 0 kg/s is below the engineering lower bound 0.1 kg/s"),
    ({"limits": {"m_oil": {"max_rate": 0.0}}}, "limits.m_oil.max_rate: 0 kg/s/s must be > 0"),
    ({"limits": {"m_oil": {"lower": 5.0, "upper": 2.0}}},
     "limits.m_oil: lower 5 kg/s is above upper 2 kg/s"),
    ({"backend": "fillage-rule"},
     "backend: 'fillage-rule' does not fit plant kind 'asphalt_tank'"),
    ({"tolerance": -1}, "tolerance: -1 must be finite and > 0"),
    ({"max_iterations": 0}, "max_iterations: 0 is below 1"),
    ({"max_iterations": -3}, "max_iterations: -3 is below 1"),
    ({"max_iterations": 2.5}, "max_iterations: Expected `int`, got `float`"),
    ({"qp_solver": "nope"}, "qp_solver: 'nope' is not one of qrqp, osqp, qpoases"),
    ({"tolerance": "tight"}, "tolerance: Expected `float`, got `str`"),
    ('{"tolerance": NaN}', "tolerance: nan must be finite and > 0"),
    ('{"tolerance": Infinity}', "tolerance: inf must be finite and > 0"),
    ('{"tracking": {"T_bulk": NaN}}', "tracking.T_bulk: weight nan must be finite and >= 0"),
    ('{"limits": {"m_oil": {"max_rate": NaN}}}',
     "limits.m_oil.max_rate: nan is not a finite number"),
    ('{"horizon": NaN}', "horizon: Expected `int`, got `float`"),
])
def test_an_invalid_tuning_is_422_naming_the_field_and_the_old_one_keeps_running(
        api, two_tanks, body, message):
    before = api.get("/assets/tank-01/controller").json()
    gate = ray.get(two_tanks.safety.limits.remote("tank-01"))
    ticks = api.get("/assets/tank-01").json()["ticks"]
    """A body given as text is sent as it is (JSON with NaN or Infinity, which Python's
    json module reads and writes but the standard does not allow)."""
    text = body if isinstance(body, str) else json.dumps(body)
    reply = api.put("/assets/tank-01/controller", content=text,
                    headers={"content-type": "application/json"})
    assert reply.status_code == 422, reply.text
    assert message in reply.json()["detail"]
    assert api.get("/assets/tank-01/controller").json() == before
    assert ray.get(two_tanks.safety.limits.remote("tank-01")) == gate
    two_tanks.run_for(240.0)
    status = api.get("/assets/tank-01").json()
    assert status["ticks"] == ticks + 2 and status["healthy"], status["errors"]
    assert status["controller"]["backend"] == "do-mpc"


def test_status_and_metrics_carry_the_innovation_and_its_chi_square_test(api, two_tanks):
    """GET /assets/{id} reports the estimator kind, its estimated parameters, the last
    innovation per output with its unit, the NIS against chi2.ppf(1 - 0.001, 2), and the
    anomaly count that /metrics exports as twinloop_estimator_anomalies_total (promtool-clean),
    and whether the anomalies persist (the HTTP answer once dropped these two fields)."""
    from scipy.stats import chi2

    two_tanks.run_for(240.0)
    estimator = api.get("/assets/tank-01").json()["estimator"]
    assert estimator["kind"] == "ekf"
    assert set(estimator["parameters"]) == {"k_foul", "k_loss"}  # the tank's default
    assert estimator["parameters"]["k_foul"]["unit"] == "1"
    assert estimator["innovation"]["T_bulk"]["unit"] == "K"
    assert estimator["dof"] == 2 and estimator["significance"] == 0.001
    assert estimator["nis_threshold"] == pytest.approx(chi2.ppf(0.999, 2))
    assert estimator["anomaly"] == (estimator["nis"] > estimator["nis_threshold"])
    assert estimator["persistent_anomaly"] is False
    assert estimator["recent_anomalies"].endswith("of the last 10")
    text = api.get("/metrics").text
    line = next(x for x in text.splitlines()
                if x.startswith('twinloop_estimator_anomalies_total{asset="tank-01"'))
    assert float(line.split()[-1]) == estimator["anomalies"]
    assert_promtool_accepts(text)


def test_engineering_limits_may_not_cut_through_an_operator_band(api, two_tanks):
    """Operator limits lie inside engineering limits: a retune whose limits would leave an
    operator band outside them is 422 naming both, and neither the tuning nor the safety
    actor's limits change; once the band is widened to the whole range, it goes through."""
    assert api.put("/assets/tank-01/limits",
                   json={"m_oil": {"lower": 0.5, "upper": 5.0}}).status_code == 200
    before = api.get("/assets/tank-01/controller").json()
    gate = ray.get(two_tanks.safety.limits.remote("tank-01"))
    reply = api.put("/assets/tank-01/controller", json={"limits": {"m_oil": {"upper": 4.0}}})
    assert reply.status_code == 422
    assert "would not contain the operator limits [0.5, 5]" in reply.json()["detail"]
    assert api.get("/assets/tank-01/controller").json() == before
    assert ray.get(two_tanks.safety.limits.remote("tank-01")) == gate
    wide = {"lower": gate["m_oil"]["lower"], "upper": 4.0}
    assert api.put("/assets/tank-01/limits", json={"m_oil": wide}).status_code == 200
    reply = api.put("/assets/tank-01/controller", json={"limits": {"m_oil": {"upper": 4.0}}})
    assert reply.status_code == 200, reply.text
    assert ray.get(two_tanks.safety.limits.remote("tank-01"))["m_oil"]["upper"] == 4.0
