"""The historian and the alarms in a running fleet, over real HTTP: one tank in lock-step
on the session's Ray, its history in a real DuckDB file (and the historian actor on a real
PostgreSQL server), a HI alarm on T_bulk set below the tank's temperature. olga is an
operator, vera a viewer."""

from __future__ import annotations

import asyncio
import csv
import io
import math
import secrets

import httpx
import msgspec
import pytest

from serve.auth import Token, hash_token
from tests.conftest import TWO_TANKS, free_port

TOKENS = {"operator": secrets.token_urlsafe(32), "viewer": secrets.token_urlsafe(32)}
USERS = {"operator": "olga", "viewer": "vera"}
PERIOD_S = 120.0
TICKS = 10
HI_LIMIT_K = 400.0
"""Below the tank's 423 K: the alarm T_bulk.HI raises at the first tick."""
ALARM = "tank-01:T_bulk.HI"


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


@pytest.fixture(scope="module")
def fleet(site_fleet):
    """tank-01 alone, recording into a DuckDB file, with a HIGH HI alarm at 400 K."""
    from engine.config import AlarmSettings

    def tank_01_alarmed(site):
        tank = msgspec.structs.replace(site.assets[0], alarms=[AlarmSettings(
            signal="T_bulk", kind="HI", limit=HI_LIMIT_K, deadband=1.0, priority="HIGH",
            message="bulk too hot")])
        return msgspec.structs.replace(site, assets=[tank])

    with site_fleet(TWO_TANKS, "test-history-alarms", history=True,
                    edit=tank_01_alarmed) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def api(fleet):
    from ray import serve

    from serve.app import start_http

    tokens = [Token(USERS[role], role, hash_token(token)) for role, token in TOKENS.items()]
    url = start_http(fleet, "127.0.0.1", free_port(), tokens)
    with httpx.Client(base_url=url, timeout=60.0, headers=bearer("operator")) as client:
        yield client
    serve.shutdown()


@pytest.fixture(scope="module")
def ran(fleet, api):
    """The tank after TICKS ticks, every record stored."""
    import ray

    fleet.run_for(TICKS * PERIOD_S)
    assert ray.get(fleet.historian.flush.remote(60.0))
    return fleet


def history(api, **params) -> httpx.Response:
    return api.get("/assets/tank-01/history", params={"since": 1.7e9, **params})


def test_every_ticks_measurement_is_in_the_history_with_its_unit(api, ran):
    status = api.get("/assets/tank-01").json()
    reply = history(api, signals="T_bulk,estimate.T_bulk,applied.m_oil,mode")
    assert reply.status_code == 200, reply.text
    series = {s["signal"]: s for s in reply.json()}
    measured = series["T_bulk"]
    assert measured["unit"] == "K" and series["applied.m_oil"]["unit"] == "kg/s"
    assert len(measured["time"]) == status["ticks"] == TICKS
    assert measured["time"][-1] == status["measurement"]["T_bulk"]["time"]
    assert measured["value"][-1] == status["measurement"]["T_bulk"]["value"]
    estimate = series["estimate.T_bulk"]
    assert estimate["value"][-1] == pytest.approx(status["estimate"]["T_bulk"]["value"])
    assert estimate["std"][-1] == pytest.approx(status["estimate"]["T_bulk"]["std"])
    assert set(series["mode"]["value"]) == {3.0}  # AUTONOMOUS every tick


def test_interpolated_and_aggregate_answers_agree_with_the_raw_points(api, ran):
    raw = history(api, signals="T_bulk").json()[0]
    t0, t1 = raw["time"][0], raw["time"][-1]
    interpolated = history(api, signals="T_bulk", since=t0, until=t1, mode="interpolated",
                           step=PERIOD_S).json()[0]
    assert interpolated["time"] == pytest.approx(raw["time"])
    assert interpolated["value"] == pytest.approx(raw["value"])
    aggregate = history(api, signals="T_bulk", since=t0, until=t1 + PERIOD_S,
                        mode="aggregate", step=5 * PERIOD_S).json()[0]
    assert aggregate["unit"] == "K"
    assert sum(aggregate["count"]) == len(raw["time"])
    assert aggregate["max"][0] == max(raw["value"][:5])
    assert aggregate["last"][-1] == raw["value"][-1]


def test_history_as_csv(api, ran):
    reply = history(api, signals="T_bulk", format="csv")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    raw = history(api, signals="T_bulk").json()[0]
    assert [float(r["value"]) for r in rows] == raw["value"]
    assert {r["unit"] for r in rows} == {"K"}


def test_bad_history_queries_name_what_is_wrong(api, ran):
    unknown = history(api, signals="T_nothing")
    assert unknown.status_code == 422 and "T_nothing" in unknown.json()["detail"]
    backwards = history(api, signals="T_bulk", until=1.6e9)
    assert backwards.status_code == 422 and "before since" in backwards.json()["detail"]
    assert api.get("/assets/tank-99/history", params={"signals": "T_bulk"}).status_code == 404


def test_a_high_measurement_raises_an_alarm_an_operator_acknowledges(api, ran):
    listed = api.get("/alarms").json()
    raised = next(a for a in listed if a["alarm"] == ALARM)
    assert raised["state"] == "UNACKNOWLEDGED" and raised["priority"] == "HIGH"
    assert raised["value"] > HI_LIMIT_K and raised["limit"] == HI_LIMIT_K
    assert [a["alarm"] for a in api.get("/alarms", params={"priority": "LOW"}).json()] == []
    assert ALARM in {a["alarm"] for a in api.get("/assets/tank-01/alarms").json()}
    metrics = api.get("/metrics").text
    assert ('twinloop_alarms_active{asset="tank-01",kind="asphalt_tank",priority="HIGH"} 1.0'
            in metrics)

    refused = api.post(f"/alarms/{ALARM}/acknowledge", headers=bearer("viewer"))
    assert refused.status_code == 403
    acked = api.post(f"/alarms/{ALARM}/acknowledge", json={"reason": "seen, cooling"})
    assert acked.status_code == 200, acked.text
    assert acked.json()["state"] == "ACKNOWLEDGED"
    again = api.post(f"/alarms/{ALARM}/acknowledge")
    assert again.status_code == 409 and "ACKNOWLEDGED" in again.json()["detail"]
    audit = api.get("/assets/tank-01/audit", params={"since": 0}).json()
    records = [r for r in audit if r["source"] == "alarm" and r["signal"] == "T_bulk.HI"]
    assert [(r["user"], r["reason"].split(" (")[0]) for r in records] == [
        ("system", "NORMAL -> UNACKNOWLEDGED"), ("olga", "UNACKNOWLEDGED -> ACKNOWLEDGED")]
    assert "seen, cooling" in records[-1]["reason"]


def test_a_shelved_alarm_comes_back_when_its_time_is_up(api, ran):
    too_long = api.post(f"/alarms/{ALARM}/shelve", json={"duration_s": 1e9})
    assert too_long.status_code == 422 and "max_shelve_s" in too_long.json()["detail"]
    shelved = api.post(f"/alarms/{ALARM}/shelve", json={"duration_s": 3 * PERIOD_S})
    assert shelved.status_code == 200 and shelved.json()["state"] == "SHELVED"
    assert api.get("/alarms", params={"state": "SHELVED"}).json()[0]["alarm"] == ALARM
    ran.run_for(4 * PERIOD_S)
    back = next(a for a in api.get("/alarms").json() if a["alarm"] == ALARM)
    assert back["state"] == "UNACKNOWLEDGED"  # still too hot: the operator must look again
    assert api.post(f"/alarms/{ALARM}/unshelve").status_code == 409
    assert api.post(f"/alarms/{ALARM}/shelve", json={"duration_s": 60.0}).status_code == 200
    assert api.post(f"/alarms/{ALARM}/unshelve").json()["state"] == "UNACKNOWLEDGED"
    assert api.post("/alarms/tank-01:nothing/acknowledge").status_code == 404


def test_openapi_declares_the_history_and_alarm_answers(api):
    paths = api.get("/openapi.json").json()["paths"]
    history_get = paths["/assets/{asset_id}/history"]["get"]
    assert {"application/json", "text/csv"} <= set(history_get["responses"]["200"]["content"])
    assert {"404", "422", "503"} <= set(history_get["responses"])
    assert {"403", "409"} <= set(paths["/alarms/{alarm}/acknowledge"]["post"]["responses"])


def test_alarm_state_outlives_a_restart_of_the_shard(api, ran):
    """Acknowledged, then the shard is killed (SIGKILL): the restarted asset shows the
    alarm acknowledged, not raised afresh."""
    import os
    import signal

    import ray

    from tests.actors.test_fault_tolerance import wait_until_restarted

    assert api.post(f"/alarms/{ALARM}/acknowledge").json()["state"] == "ACKNOWLEDGED"
    pid = ray.get(ran.assets["tank-01"].pid.remote())
    os.kill(pid, signal.SIGKILL)
    wait_until_restarted(ran.assets["tank-01"], pid)
    alarm = next(a for a in api.get("/assets/tank-01/alarms").json() if a["alarm"] == ALARM)
    assert alarm["state"] == "ACKNOWLEDGED" and alarm["active"]
    ran.run_for(PERIOD_S)
    alarm = next(a for a in api.get("/assets/tank-01/alarms").json() if a["alarm"] == ALARM)
    assert alarm["state"] == "ACKNOWLEDGED"


def test_a_dead_historian_never_stops_a_tick_and_its_losses_are_counted(api, ran):
    """Last in the module: it kills the historian."""
    import ray

    ticks = api.get("/assets/tank-01").json()["ticks"]
    ray.kill(ran.historian, no_restart=True)
    ran.run_for(3 * PERIOD_S)
    assert api.get("/assets/tank-01").json()["ticks"] == ticks + 3
    metrics = api.get("/metrics").text
    line = next(m for m in metrics.splitlines()
                if m.startswith('twinloop_history_dropped_records_total{asset="tank-01"'))
    assert float(line.split()[-1]) == 3.0
    assert history(api, signals="T_bulk").status_code == 503


def test_the_historian_actor_on_postgres_stores_what_a_feed_sends(ray_session):
    """The scale-out backend behind the same actor and feed, on a real PostgreSQL."""
    import ray

    from actors.historian import HistoryFeed, start_historian
    from engine.config import HistorianSettings
    from engine.history import SeriesSpec, TickRecord
    from engine.messages import Measurement, Mode
    from tests.pg_server import postgres_bin, temporary_postgres

    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    with temporary_postgres() as dsn:
        historian = start_historian(HistorianSettings(backend="postgres", dsn=dsn))
        records = [TickRecord(asset="p-1", time=1.7e9 + k, mode=Mode.MANUAL,
                              measurement=Measurement("p-1", 1.7e9 + k, {"head": 10.0 + k}))
                   for k in range(5)]

        async def feed() -> None:
            sender = HistoryFeed(historian)
            sender.declare([SeriesSpec("p-1", "head", "m")])
            sender.send(records[:3])
            sender.send(records[3:])
            await sender.drain()
            assert sender.stats().dropped_batches == 0

        asyncio.run(feed())
        assert ray.get(historian.flush.remote(60.0))
        (head,) = ray.get(historian.query_json.remote(["p-1"], ["head"], 1.7e9, 1.7e9 + 10))
        assert head["unit"] == "m" and head["value"] == [10.0, 11.0, 12.0, 13.0, 14.0]
        assert ray.get(historian.stats.remote()).written_records == 5
        assert math.isclose(head["time"][-1], 1.7e9 + 4)
        ray.get(historian.close.remote())
        ray.kill(historian, no_restart=True)
