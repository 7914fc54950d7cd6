"""`twinloop demo` as a user runs it: its own embedded Ray, real time, real HTTP, the
loop closed over real Modbus TCP.

The acceptance path of the foundation, on the two-tank site: both tanks are listed, a new bulk
temperature reference moves the estimate towards it within a minute at --speed 600,
and every applied setpoint in the audit respects the configured limits and rates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.actors.test_modbus import free_ports
from tests.serve.test_http import free_port

LIMITS = {"tank-01": (0.1, 10.0, 0.02), "tank-02": (0.1, 8.0, 0.02)}
"""m_oil lower, upper (kg/s) and max rate (kg/s per s) from tests/sites/two_tanks.toml."""
SITE = Path(__file__).resolve().parents[1] / "sites" / "two_tanks.toml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory, mqtt_broker):
    port, modbus_port = free_port(), free_ports(2)
    workdir = tmp_path_factory.mktemp("demo")
    twinloop = Path(sys.executable).with_name("twinloop")
    command = [str(twinloop) if twinloop.exists() else shutil.which("twinloop"),
               "demo", "--site", str(SITE), "--speed", "600", "--duration", "240",
               "--port", str(port), "--modbus-port", str(modbus_port), "--mqtt", mqtt_broker.url]
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**os.environ})
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Stopping in" in line or process.poll() is not None:
            break
    assert any(f"http://127.0.0.1:{port}/assets" in line for line in lines), "".join(lines)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:
        yield client, lines, workdir, modbus_port, mqtt_broker.url
    process.terminate()
    process.wait(timeout=60)


def test_demo_prints_where_it_listens(demo):
    _, lines, workdir, modbus_port, mqtt_broker = demo
    text = "".join(lines)
    assert "metrics" in text and "/metrics" in text
    assert f"Modbus TCP   127.0.0.1:{modbus_port}-{modbus_port + 1}" in text
    assert f"MQTT         {mqtt_broker}   (twinloop/two-tanks/<asset id>/" in text
    assert str(workdir / "var" / "two-tanks-audit.db") in text


def test_new_reference_moves_the_estimate_and_the_audit_respects_limits(demo):
    client, _, _, _, _ = demo
    assert [a["id"] for a in client.get("/assets").json()] == ["tank-01", "tank-02"]
    start = client.get("/assets/tank-01").json()["estimate"]["T_bulk"]["value"]
    target = start + 10.0
    assert client.put("/assets/tank-01/reference", json={"T_bulk": target}).status_code == 200
    deadline = time.monotonic() + 60.0
    now = start
    while time.monotonic() < deadline and now < start + 1.0:
        time.sleep(2.0)
        now = client.get("/assets/tank-01").json()["estimate"]["T_bulk"]["value"]
    assert now >= start + 1.0, f"estimate {start:.2f} K -> {now:.2f} K, target {target:.2f} K"

    for asset, (lower, upper, rate) in LIMITS.items():
        records = client.get(f"/assets/{asset}/audit", params={"limit": 100_000}).json()
        applied = [r for r in records if r["signal"] == "m_oil" and r["applied"] is not None]
        assert applied
        previous = None
        for record in applied:
            assert lower <= record["applied"] <= upper
            if previous is not None:
                step = abs(record["applied"] - previous["applied"])
                assert step <= rate * (record["time"] - previous["time"]) + 1e-9
            previous = record


def test_the_loop_runs_over_modbus_and_a_plain_client_reads_the_plc(demo):
    """Each tank's twin reads its PLC over Modbus; a pymodbus client at the printed
    address reads a bulk temperature within 0.5 K of the twin's last measurement and a
    sample time a few twin-seconds old at most (the PLC scans every 0.25 wall s)."""
    from pymodbus.client import ModbusTcpClient

    from engine.registers import decode

    client, _, _, modbus_port, _ = demo
    status = client.get("/assets/tank-02").json()
    assert status["link"] == {**status["link"], "kind": "modbus", "connected": True,
                              "address": f"127.0.0.1:{modbus_port + 1}"}
    with ModbusTcpClient("127.0.0.1", port=modbus_port + 1) as plc:
        reply = plc.read_input_registers(0, count=6, device_id=1)
    assert not reply.isError(), reply
    sample_time = decode(reply.registers[0:4], "float64", "ABCD")
    t_bulk = decode(reply.registers[4:6], "float32", "ABCD")
    assert t_bulk == pytest.approx(status["measurement"]["T_bulk"]["value"], abs=0.5)
    assert abs(sample_time - status["measurement"]["T_bulk"]["time"]) < 600 * 4.0


def test_the_demo_publishes_estimates_over_mqtt(demo):
    """A plain paho subscriber receives tank-02's estimates, with its units' SI values."""
    import json

    import paho.mqtt.client as mqtt

    client, _, _, _, mqtt_broker = demo
    _, host, port = mqtt_broker.replace("/", "").split(":")
    received = []
    subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    subscriber.on_message = lambda c, u, m: received.append(json.loads(m.payload))
    subscriber.connect(host, int(port))
    subscriber.subscribe("twinloop/two-tanks/tank-02/estimates", qos=1)
    subscriber.loop_start()
    try:
        deadline = time.monotonic() + 30.0
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    assert received, "no estimate published within 30 s"
    assert set(received[-1]) == {"ts", "values", "std", "nis"}
    assert 400.0 < received[-1]["values"]["T_bulk"] < 473.15
