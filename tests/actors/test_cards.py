"""Rod-pump surface cards in a running fleet, over real HTTP and a real MQTT broker: two
wells in lock-step on the session's Ray, the cards stored in a real DuckDB file. well-01's
cards come over MQTT or HTTP; well-02's simulated plant hands its card over with each
measurement (the plant link)."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from tests.actors.test_mqtt import publish, wait_for
from tests.conftest import admin_api
from tests.serve.test_openapi import check

SITE_FILE = "tests/sites/mqtt_wells.toml"
EPOCH = 1.7e9
PERIOD_S = 120.0
TOPIC = "twinloop/wells-site/well-01/cards"


@pytest.fixture(scope="module")
def fleet(ray_session, mqtt_broker, tmp_path_factory):
    import ray

    import plants
    from actors.fleet import build_fleet
    from engine.clock import ClockSpec
    from engine.config import load_site

    site = load_site(SITE_FILE)
    var = tmp_path_factory.mktemp("var")
    site = msgspec.structs.replace(
        site, site=msgspec.structs.replace(site.site, audit_db=str(var / "audit.db")),
        historian=msgspec.structs.replace(site.historian, path=str(var / "history.duckdb")))
    site = plants.resolve_site(site, SITE_FILE)
    fleet = build_fleet(site, ClockSpec(lockstep=True, epoch=EPOCH), namespace="test-cards",
                        mqtt=mqtt_broker.url, history=True)
    assert ray.get(fleet.mqtt.wait_connected.remote(20.0)), ray.get(fleet.mqtt.status.remote())
    yield fleet
    fleet.shutdown()


@pytest.fixture(scope="module")
def api(fleet):
    with admin_api(fleet, timeout=60.0) as client:
        yield client


def surface_card(time: float, noise: float = 1.0, productivity: float = 1.0) -> dict:
    """A noisy surface card of the nominal well, as its controller would send it; with
    ``productivity`` below 1, of the well whose inflow fell to that share of the model's."""
    from plants import rod_pump

    model = rod_pump.build_model()
    x, u, d, p = model.steady_input_vectors()
    x = {**model.states.mapping(x), "productivity_multiplier": productivity}
    _, card = rod_pump.synthesize_measurement(x, u, d, p, np.random.default_rng(7), noise)
    return msgspec.to_builtins(msgspec.structs.replace(card, time=time))


def cards(api, asset: str, **params) -> list[dict]:
    reply = api.get(f"/assets/{asset}/cards", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_simulated_plant_delivers_a_measured_card_each_stroke(fleet, api):
    """well-02's plant hands its surface card over with each measurement: each tick's card
    pair is stored, its diagnosed fillage is the one the plant measured (same card, same
    wave equation), and the screen shows it labelled "measured"."""
    fleet.run_for(2 * PERIOD_S)
    stored = wait_for(lambda: len(found := cards(api, "well-02")) == 2 and found, "2 cards")
    assert [c["time"] for c in stored] == [EPOCH + PERIOD_S, EPOCH + 2 * PERIOD_S]
    assert all(c["source"] == "measured" and len(c["surface_load"]) == 400 for c in stored)
    status = api.get("/assets/well-02").json()
    assert stored[-1]["fillage"] == pytest.approx(status["measurement"]["fillage"]["value"],
                                                  abs=1e-9)
    assert stored[-1]["confidence"] == pytest.approx(
        status["measurement"]["card_confidence"]["value"], abs=1e-9)
    view = api.get("/assets/well-02/view").json()
    assert view["card_source"] == "measured" and view["card_time"] == stored[-1]["time"]
    assert view["surface"]["y"][:-1] == stored[-1]["surface_load"]
    assert view["downhole"]["y"][:-1] == stored[-1]["downhole_load"]


def test_without_a_card_the_screen_shows_the_predicted_one(api):
    """well-01 has received no card yet (first test of the MQTT well): predicted."""
    view = api.get("/assets/well-01/view").json()
    assert view["card_source"] == "predicted" and view["card_time"] is None


def test_a_card_posted_over_http_is_diagnosed_stored_and_shown(api):
    document = api.get("/openapi.json").json()
    card = surface_card(EPOCH + 10.0)
    reply = api.post("/assets/well-01/cards", json=card)
    assert reply.status_code == 200, reply.text
    check(document, reply, "POST", "/assets/{asset_id}/cards")
    record = reply.json()
    assert record["asset"] == "well-01" and record["time"] == EPOCH + 10.0
    assert record["surface_load"] == pytest.approx(card["load"], rel=1e-12)
    assert len(record["downhole_load"]) == 400 and 0.8 < record["fillage"] <= 1.0
    assert record["confidence"] > 0.9 and not record["fluid_pound"]
    answer = api.get("/assets/well-01/cards", params={"since": EPOCH, "until": EPOCH + 20.0})
    check(document, answer, "GET", "/assets/{asset_id}/cards")
    (stored,) = answer.json()
    assert stored == record
    view = api.get("/assets/well-01/view").json()
    assert view["card_source"] == "measured" and view["card_time"] == EPOCH + 10.0


def test_a_bad_card_is_refused_naming_the_field_and_nothing_is_lost(api):
    before = cards(api, "well-01")
    bad = surface_card(EPOCH + 20.0)
    bad["load"] = bad["load"][:-1]
    reply = api.post("/assets/well-01/cards", json=bad)
    assert reply.status_code == 422
    check(api.get("/openapi.json").json(), reply, "POST", "/assets/{asset_id}/cards")
    assert "card load: 399 samples, must match position's 400" in reply.json()["detail"]
    nan = surface_card(EPOCH + 20.0)
    reply = api.post("/assets/well-01/cards", content=msgspec.json.encode(nan).replace(
        b'"position":[', b'"position":[NaN,', 1), headers={"Content-Type": "application/json"})
    assert reply.status_code == 422
    assert cards(api, "well-01") == before
    assert api.get("/assets/well-01/view").json()["card_time"] == before[-1]["time"]
    audit = api.get("/assets/well-01/audit", params={"outcome": "refused"}).json()
    assert [a["signal"] for a in audit][-2:] == ["card"] * 2


def test_cards_over_mqtt_are_stored_and_a_bad_one_is_counted(fleet, api, mqtt_broker):
    """A NaN card and one with too few samples are refused by the gateway (counted by
    reason); the good card published after them is stored."""
    import ray

    malformed = ray.get(fleet.mqtt.status.remote())["malformed"]
    good = surface_card(EPOCH + 30.0)
    short = {**good, **{k: good[k][:10] for k in ("position", "load", "sample_time")}}
    publish(mqtt_broker.url, TOPIC, msgspec.json.encode(short).decode())
    publish(mqtt_broker.url, TOPIC, msgspec.json.encode(good).decode().replace(
        '"load":[', '"load":[NaN,', 1))
    publish(mqtt_broker.url, TOPIC, msgspec.json.encode(good).decode())
    stored = wait_for(lambda: [c for c in cards(api, "well-01") if c["time"] == EPOCH + 30.0],
                      "the MQTT card")
    assert stored[0]["surface_position"] == pytest.approx(good["position"], rel=1e-12)
    after = ray.get(fleet.mqtt.status.remote())["malformed"]
    assert after["bad_card"] == malformed["bad_card"] + 1
    assert after["non_finite"] == malformed["non_finite"] + 1


def test_card_queries_answer_404_and_422(api):
    assert api.get("/assets/nowhere/cards").status_code == 404
    reply = api.get("/assets/well-01/cards", params={"since": EPOCH + 1, "until": EPOCH})
    assert reply.status_code == 422 and "since" in reply.json()["detail"]
    assert api.get("/assets/well-01/cards", params={"limit": 0}).status_code == 422
    latest = cards(api, "well-01", limit=1)
    assert len(latest) == 1 and latest[0]["time"] == max(c["time"] for c in cards(api, "well-01"))
    assert api.post("/assets/nowhere/cards", json=surface_card(EPOCH)).status_code == 404


def test_openapi_declares_the_card_routes(api):
    document = api.get("/openapi.json").json()
    post = document["paths"]["/assets/{asset_id}/cards"]["post"]
    assert {"413", "422", "404"} <= set(post["responses"])
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/SurfaceCard")
    surface = document["components"]["schemas"]["SurfaceCard"]
    assert set(surface["required"]) == {"time", "position", "load", "sample_time"}
    get = document["paths"]["/assets/{asset_id}/cards"]["get"]
    assert get["responses"]["200"]["content"]["application/json"]["schema"]["items"][
        "$ref"].endswith("/CardRecord")
    assert math.isfinite(len(get["parameters"]))


def test_the_kpis_follow_the_measured_card_not_the_models_prediction(fleet, api):
    """well-01's inflow has halved but its twin, without a measurement to tell it, still
    predicts a nearly full pump (about 90 %); its controller's card shows the pump half
    full. From the next tick the status's ``kpis`` and the history's ``kpi.fillage`` are
    the measured card's fillage (what an alarm on kpi.fillage watches),
    and its Goodman loading is the one the screen shows for that card."""
    import ray

    reply = api.post("/assets/well-01/cards", json=surface_card(EPOCH + 40.0, productivity=0.5))
    assert reply.status_code == 200, reply.text
    measured = reply.json()["fillage"]
    assert measured < 0.6
    fleet.run_for(PERIOD_S)
    status = api.get("/assets/well-01").json()
    assert status["kpis"]["fillage"]["value"] == pytest.approx(measured, abs=1e-12)
    view = api.get("/assets/well-01/view").json()
    assert view["card_time"] == EPOCH + 40.0
    assert view["fillage"] == status["kpis"]["fillage"]["value"]
    assert status["kpis"]["goodman_loading"]["value"] == pytest.approx(
        max(taper["loading"] for taper in view["goodman"]), rel=1e-12)
    assert ray.get(fleet.historian.flush.remote(60.0))
    reply = api.get("/assets/well-01/history", params={"signals": "kpi.fillage", "since": EPOCH})
    assert reply.status_code == 200, reply.text
    (series,) = reply.json()
    assert series["value"][-1] == pytest.approx(measured, abs=1e-12)
