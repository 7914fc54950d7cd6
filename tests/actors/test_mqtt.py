"""MQTT ingestion through a real broker (mosquitto, else amqtt) on loopback: the real
``mosquitto_pub`` CLI publishes, the gateway actor feeds the asset actor, and estimates
and applied setpoints come back on their topics. Lock-step (SimClock) for the twin.

tank-01's measurements come over MQTT; tank-02 is a simulated plant, untouched by it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import pytest

from tests.conftest import MQTT_TANK, admin_api, assert_promtool_accepts

SITE = MQTT_TANK
EPOCH = 1.7e9
TOPIC = "twinloop/mqtt-site/tank-01"


def publish(broker: str, topic: str, payload: str) -> None:
    """Publish at QoS 1 with the mosquitto_pub CLI (amqtt_pub where mosquitto is absent)."""
    _, host, port = broker.replace("/", "").split(":")
    if shutil.which("mosquitto_pub"):
        command = ["mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", topic, "-m", payload]
    else:
        command = [str(Path(sys.executable).with_name("amqtt_pub")), "--url", broker, "-q", "1",
                   "-t", topic, "-m", payload]
    subprocess.run(command, check=True, timeout=30, capture_output=True)


def wait_for(condition, what: str, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


@pytest.fixture(scope="module")
def fleet(ray_session, mqtt_broker, tmp_path_factory):
    import ray

    import plants
    from actors.fleet import build_fleet
    from engine.clock import ClockSpec
    from engine.config import load_site

    site = plants.resolve_site(load_site(SITE), SITE)
    audit = tmp_path_factory.mktemp("audit") / "mqtt-audit.db"
    site = msgspec.structs.replace(site,
                                   site=msgspec.structs.replace(site.site, audit_db=str(audit)))
    fleet = build_fleet(site, ClockSpec(lockstep=True, epoch=EPOCH), namespace="test-mqtt",
                        mqtt=mqtt_broker.url)
    assert ray.get(fleet.mqtt.wait_connected.remote(20.0)), ray.get(fleet.mqtt.status.remote())
    yield fleet
    fleet.shutdown()


@pytest.fixture(scope="module")
def api(fleet):
    with admin_api(fleet) as client:
        yield client


@pytest.fixture(scope="module")
def subscriber(mqtt_broker):
    """A plain paho client recording what the gateway publishes for tank-01."""
    received: dict[str, list[dict]] = {"estimates": [], "setpoints": [], "alarms": []}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: received[m.topic.rsplit("/", 1)[1]].append(
        json.loads(m.payload))
    client.connect("127.0.0.1", mqtt_broker.port)
    client.subscribe([(f"{TOPIC}/estimates", 1), (f"{TOPIC}/setpoints", 1),
                      (f"{TOPIC}/alarms", 1)])
    client.loop_start()
    yield received
    client.loop_stop()
    client.disconnect()


def malformed_counts(api) -> dict[str, float]:
    text = api.get("/metrics").text
    return {m["reason"]: float(m["value"]) for m in re.finditer(
        r'^twinloop_mqtt_malformed_total\{reason="(?P<reason>\w+)"\} (?P<value>\S+)$', text, re.M)}


def test_a_published_measurement_moves_the_estimate(fleet, api, subscriber, mqtt_broker):
    """Before any message the twin has no measurement and its writes are refused; after
    mosquitto_pub of T_bulk = 440 K the next tick corrects the estimate towards it, the
    write goes through, and estimate and setpoint are published back."""
    fleet.run_for(240.0)
    before = api.get("/assets/tank-01").json()
    assert before["measurement"] == {} and before["link"]["kind"] == "mqtt"
    assert "no MQTT measurement" in before["errors"][0]

    now = EPOCH + 240.0
    publish(mqtt_broker.url, f"{TOPIC}/measurements",
            json.dumps({"ts": now, "values": {"T_bulk": 440.0, "T_return": 445.0}}))
    wait_for(lambda: api.get("/assets/tank-01").json()["link"]["received"] == 1, "ingestion")
    fleet.run_for(120.0)

    after = api.get("/assets/tank-01").json()
    assert after["measurement"]["T_bulk"] == {"value": 440.0, "unit": "K", "time": now}
    assert after["estimate"]["T_bulk"]["value"] > before["estimate"]["T_bulk"]["value"] + 5.0
    assert after["healthy"], after["errors"]
    latest = [r for r in api.get("/assets/tank-01/audit").json() if r["signal"] == "m_oil"][-1]
    assert latest["outcome"] in ("accepted", "clamped") and latest["time"] == now + 120.0

    setpoint = wait_for(lambda: subscriber["setpoints"], "a published setpoint")[-1]
    assert setpoint == {"ts": now + 120.0, "values": {"m_oil": latest["applied"]}}
    estimate = wait_for(lambda: [e for e in subscriber["estimates"] if e["ts"] == now],
                        "the published estimate")[-1]
    assert estimate["values"]["T_bulk"] == after["estimate"]["T_bulk"]["value"]
    # no measurement at first: the stale-measurement alarm was raised, then returned to
    # normal with the first one, each transition published on the alarms topic
    def stale_transitions():
        found = [a for a in subscriber["alarms"] if a["alarm"] == "tank-01:measurement_stale"]
        return found[:2] if len(found) >= 2 else None

    stale = wait_for(stale_transitions, "the published alarm transitions")
    assert [(a["from_state"], a["to_state"], a["priority"]) for a in stale] == [
        ("NORMAL", "UNACKNOWLEDGED", "HIGH"), ("UNACKNOWLEDGED", "RTNUN", "HIGH")]
    assert stale[1]["time"] == now + 120.0


@pytest.mark.parametrize(("reason", "topic", "payload"), [
    ("json", f"{TOPIC}/measurements", '{"ts": 1.7e9, "values": {"T_bulk": 43'),
    ("schema", f"{TOPIC}/measurements", '{"ts": "yesterday", "values": {"T_bulk": 430.0}}'),
    ("schema", f"{TOPIC}/measurements", '{"ts": 1.7e9, "values": {"T_bulk": "hot"}}'),
    ("unknown_tag", f"{TOPIC}/measurements", '{"ts": 1.7e9, "values": {"T_top": 430.0}}'),
    ("non_finite", f"{TOPIC}/measurements", '{"ts": 1.7e9, "values": {"T_bulk": NaN}}'),
    ("non_finite", f"{TOPIC}/measurements", '{"ts": 1.7e9, "values": {"T_bulk": 1e999}}'),
    ("out_of_range", f"{TOPIC}/measurements", '{"ts": 1.7e9, "values": {"T_bulk": 5000.0}}'),
    ("unknown_asset", "twinloop/mqtt-site/tank-02/measurements",
     '{"ts": 1.7e9, "values": {"T_bulk": 430.0}}'),
])
def test_a_malformed_payload_is_counted_and_changes_nothing(api, mqtt_broker, reason, topic,
                                                           payload):
    """The refusal shows in /metrics under its reason (and passes promtool); tank-01's
    measurement and estimate and tank-02 stay as they were, and the gateway carries on."""
    counts = malformed_counts(api)
    tank_01 = api.get("/assets/tank-01").json()
    tank_02 = api.get("/assets/tank-02").json()
    publish(mqtt_broker.url, topic, payload)
    wait_for(lambda: malformed_counts(api)[reason] == counts[reason] + 1, f"{reason} counted")
    assert {r: c for r, c in malformed_counts(api).items() if r != reason} == {
        r: c for r, c in counts.items() if r != reason}
    for before in (tank_01, tank_02):
        after = api.get(f"/assets/{before['id']}").json()
        for key in ("measurement", "estimate", "setpoints", "link"):
            assert after[key] == before[key]


def test_metrics_with_the_gateway_pass_promtool(api):
    text = api.get("/metrics").text
    assert "twinloop_mqtt_messages_total 1.0" in text
    assert 'twinloop_mqtt_malformed_total{reason="out_of_range"} 1.0' in text
    assert_promtool_accepts(text)


def test_the_gateway_survived_and_still_ingests(api, mqtt_broker):
    received = api.get("/assets/tank-01").json()["link"]["received"]
    now = EPOCH + 360.0
    publish(mqtt_broker.url, f"{TOPIC}/measurements",
            json.dumps([{"ts": now, "values": {"T_bulk": 438.0}},
                        {"ts": now + 1.0, "values": {"T_bulk": 438.5, "T_return": 444.0}}]))
    wait_for(lambda: api.get("/assets/tank-01").json()["link"]["received"] == received + 2,
             "a batch of two samples ingested")


def test_the_gateway_reconnects_after_the_broker_restarts(fleet, api, mqtt_broker):
    """Broker down: /metrics shows the gateway disconnected. Broker back on the same
    port: the gateway reconnects by itself (paho's backoff), subscribes again and ingests."""
    import ray

    mqtt_broker.stop()
    wait_for(lambda: "twinloop_mqtt_connected 0.0" in api.get("/metrics").text, "disconnection")
    assert "reconnecting" in ray.get(fleet.mqtt.status.remote())["error"]
    mqtt_broker.start()
    wait_for(lambda: ray.get(fleet.mqtt.status.remote())["connected"], "reconnection", 60.0)
    received = api.get("/assets/tank-01").json()["link"]["received"]
    publish(mqtt_broker.url, f"{TOPIC}/measurements",
            json.dumps({"ts": EPOCH + 400.0, "values": {"T_bulk": 437.0}}))
    wait_for(lambda: api.get("/assets/tank-01").json()["link"]["received"] == received + 1,
             "ingestion after the reconnection")
