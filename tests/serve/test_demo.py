"""`twinloop demo` as a user runs it: its own embedded Ray, real time, real HTTP and
OPC UA, the loop closed over real Modbus TCP.

The acceptance path of the foundation, on the two-tank site: both tanks are listed, a new bulk
temperature reference moves the estimate towards it within a minute at --speed 600,
and every applied setpoint in the audit respects the configured limits and rates. The
printed OPC UA address answers a standard client with the same values as HTTP.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from asyncua import Client

from tests.conftest import free_port
from tests.ports import consecutive_free_ports

LIMITS = {"tank-01": (0.1, 10.0, 0.02), "tank-02": (0.1, 8.0, 0.02)}
"""m_oil lower, upper (kg/s) and max rate (kg/s per s) from tests/sites/two_tanks.toml."""
SITE = Path(__file__).resolve().parents[1] / "sites" / "two_tanks.toml"


@pytest.fixture(scope="module")
def demo(tmp_path_factory, mqtt_broker):
    port, opcua_port, modbus_port = free_port(), free_port(), consecutive_free_ports(2)
    workdir = tmp_path_factory.mktemp("demo")
    twinloop = Path(sys.executable).with_name("twinloop")
    command = [str(twinloop) if twinloop.exists() else shutil.which("twinloop"),
               "demo", "--site", str(SITE), "--speed", "600", "--duration", "240",
               "--port", str(port), "--modbus-port", str(modbus_port), "--mqtt", mqtt_broker.url,
               "--opcua-port", str(opcua_port)]
    token = secrets.token_urlsafe(32)
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "TWINLOOP_ADMIN_TOKEN": token})
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Stopping in" in line or process.poll() is not None:
            break
    assert any(f"http://127.0.0.1:{port}/assets" in line for line in lines), "".join(lines)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        yield client, lines, workdir, modbus_port, mqtt_broker.url, process.pid
    process.terminate()
    process.wait(timeout=60)


def test_demo_prints_where_it_listens(demo):
    client, lines, workdir, modbus_port, mqtt_broker, _ = demo
    text = "".join(lines)
    [console] = [line.split()[1] for line in lines if line.strip().startswith("console")]
    page = httpx.get(console, timeout=30.0)
    assert page.status_code == 200 and "TwinLoop console" in page.text
    assert "metrics" in text and "/metrics" in text
    assert f"Modbus TCP   127.0.0.1:{modbus_port}-{modbus_port + 1}" in text
    assert f"MQTT         {mqtt_broker}   (twinloop/two-tanks/<asset id>/" in text
    assert str(workdir / "var" / "two-tanks-audit.db") in text
    assert "admin token  from TWINLOOP_ADMIN_TOKEN" in text


def test_demo_refuses_requests_without_the_admin_token(demo):
    client, *_ = demo
    assert httpx.get(client.base_url.join("/assets"), timeout=30.0).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    reply = httpx.get(client.base_url.join("/assets"), headers=wrong, timeout=30.0)
    assert reply.status_code == 401


def test_the_printed_opc_ua_address_serves_the_assets(demo):
    client, lines, *_ = demo
    [line] = [line for line in lines if line.strip().startswith("OPC UA")]
    url = line.split()[2]
    assert url.startswith("opc.tcp://127.0.0.1:") and url.endswith("/twinloop")

    async def read():
        async with Client(url) as opcua:
            ns = await opcua.get_namespace_index("urn:twinloop:two-tanks")
            path = [f"{ns}:Assets", f"{ns}:tank-02", f"{ns}:Status", f"{ns}:mode"]
            return await (await opcua.nodes.objects.get_child(path)).read_value()

    assert asyncio.run(read()) == client.get("/assets/tank-02").json()["mode"]


def test_every_listener_of_the_demo_binds_to_loopback(demo):
    """The HTTP API, and Ray's own GCS, raylet and worker ports, of the demo's process tree.
    One exception, Ray's: Ray Serve 2.60 binds each replica's inter-deployment gRPC
    server to [::]:0 with no setting to change it (ray/serve/_private/replica.py)."""
    process = psutil.Process(demo[-1])
    listening = []
    for child in [process, *process.children(recursive=True)]:
        try:
            connections = child.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        listening += [(child.name(), c.laddr) for c in connections
                      if c.status == psutil.CONN_LISTEN]
    assert len(listening) >= 4
    exposed = [(name, address) for name, address in listening
               if not ipaddress.ip_address(address.ip.removeprefix("::ffff:")).is_loopback]
    assert [name for name, _ in exposed] in ([], ["ray::ServeReplica:twinloop:TwinLoopAPI"])


def test_new_reference_moves_the_estimate_and_the_audit_respects_limits(demo):
    client, *_ = demo
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
    change = [r for r in client.get("/assets/tank-01/audit").json() if r["signal"] == "T_bulk"]
    assert change[-1]["user"] == "admin"

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
    address reads a bulk temperature within 1.2 K (the noise of two samples) of the twin's
    measurements around it and a sample time a few twin-seconds old at most (the PLC
    scans every 0.25 wall s)."""
    from pymodbus.client import ModbusTcpClient

    from engine.registers import decode

    client, _, _, modbus_port, _, _ = demo
    status = client.get("/assets/tank-02").json()
    assert status["link"] == {**status["link"], "kind": "modbus", "connected": True,
                              "address": f"127.0.0.1:{modbus_port + 1}"}
    with ModbusTcpClient("127.0.0.1", port=modbus_port + 1) as plc:
        reply = plc.read_input_registers(0, count=6, device_id=1)
    assert not reply.isError(), reply
    after = client.get("/assets/tank-02").json()
    sample_time = decode(reply.registers[0:4], "float64", "ABCD")
    t_bulk = decode(reply.registers[4:6], "float32", "ABCD")
    # the PLC scans between the twin's reads: its value lies between theirs, give or take
    # the probe's noise (0.2 K a sample: a later scan differs by up to 4 std of a
    # difference, 1.1 K) and the drift of a tick (a wrong register is off by tens of K)
    seen = [s["measurement"]["T_bulk"]["value"] for s in (status, after)]
    assert min(seen) - 1.2 <= t_bulk <= max(seen) + 1.2
    assert abs(sample_time - status["measurement"]["T_bulk"]["time"]) < 600 * 4.0


def test_the_demo_publishes_estimates_over_mqtt(demo):
    """A plain paho subscriber receives tank-02's estimates, with its units' SI values."""
    import json

    import paho.mqtt.client as mqtt

    client, _, _, _, mqtt_broker, _ = demo
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
