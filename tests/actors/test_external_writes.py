"""Writes around the gate: a SCADA client writes a PLC's holding register directly
(real pymodbus client and PLC simulator on loopback), the twin reads it back at its next
tick, the safety actor records it and the asset's status shows it; by mode the gate
takes the signal back (AUTONOMOUS) or holds it (MANUAL). Two tanks in lock-step.
"""

from __future__ import annotations

import msgspec
import pytest
import ray
from pymodbus.client import ModbusTcpClient

from engine.registers import encode
from tests.conftest import admin_api
from tests.ports import consecutive_free_ports

PERIOD_S = 120.0
"""Both tanks' control period, twin seconds."""
MAX_RATE = 0.02
"""Both tanks' m_oil rate limit, kg/s per second."""
FLOAT32 = 2.0 ** -23


@pytest.fixture(scope="module")
def fleet(ray_session, tmp_path_factory):
    import plants
    from actors.fleet import build_fleet
    from engine.clock import ClockSpec
    from engine.config import load_site
    from tests.conftest import TWO_TANKS

    site = plants.resolve_site(load_site(TWO_TANKS), TWO_TANKS)
    replace = msgspec.structs.replace
    audit = tmp_path_factory.mktemp("audit") / "external-writes-audit.db"
    site = replace(site, site=replace(site.site, audit_db=str(audit)),
                   modbus=replace(site.modbus, base_port=consecutive_free_ports(2), timeout_s=2.0))
    fleet = build_fleet(site, ClockSpec(lockstep=True, epoch=1.7e9),
                        namespace="test-external-writes", modbus=True)
    fleet.run_for(4 * PERIOD_S)
    yield fleet
    fleet.shutdown()


@pytest.fixture(scope="module")
def api(fleet):
    with admin_api(fleet) as client:
        yield client


def write_around_the_gate(fleet, asset: str, value: float) -> None:
    """A SCADA write of m_oil straight to the PLC (function 16), not through the twin."""
    plc = fleet.plcs[asset]
    with ModbusTcpClient(plc.host, port=plc.port) as client:
        reply = client.write_registers(0, encode(value, "float32", plc.word_order),
                                       device_id=plc.unit_id)
    assert not reply.isError(), reply


def plant_m_oil(fleet, asset: str) -> float:
    return ray.get(fleet.plants[asset].truth.remote())["inputs"]["m_oil"]


def audit(api, asset: str, **query) -> list[dict]:
    return api.get(f"/assets/{asset}/audit", params={"limit": 100_000, **query}).json()


def test_in_manual_a_write_around_the_gate_is_on_record_shown_and_held(fleet, api):
    """The issue's case: 11.9 kg/s written at tank-01's PLC against the gate's 10 kg/s
    limit, in MANUAL. One tick later the audit has it (source plc, outcome external, the
    value, the tick's time), the status shows it and reports 11.9 as the setpoint (not
    the gate's old value), and the plant keeps it: MANUAL does not overwrite."""
    assert api.put("/assets/tank-01/mode", json={"mode": "MANUAL"}).status_code == 200
    gated = api.get("/assets/tank-01").json()["setpoints"]["m_oil"]["value"]
    write_around_the_gate(fleet, "tank-01", 11.9)
    fleet.run_for(PERIOD_S)

    status = api.get("/assets/tank-01").json()
    [record] = audit(api, "tank-01", outcome="external")
    assert record["source"] == "plc" and record["signal"] == "m_oil"
    assert record["applied"] == pytest.approx(11.9, rel=FLOAT32)
    assert record["time"] == status["time"]
    assert "held" in record["reason"] and "MANUAL" in record["reason"]
    [seen] = status["external_writes"]
    assert seen["signal"] == "m_oil" and seen["value"] == pytest.approx(11.9, rel=FLOAT32)
    assert seen["time"] == record["time"] and seen["action"] == "held"
    assert seen["gated"] == pytest.approx(gated)
    assert status["setpoints"]["m_oil"]["value"] == pytest.approx(11.9, rel=FLOAT32)
    assert plant_m_oil(fleet, "tank-01") == pytest.approx(11.9, rel=FLOAT32)

    fleet.run_for(2 * PERIOD_S)  # held and known now: not a new external write
    assert len(audit(api, "tank-01", outcome="external")) == 1
    assert plant_m_oil(fleet, "tank-01") == pytest.approx(11.9, rel=FLOAT32)


def test_in_autonomous_the_gate_takes_its_value_back_at_the_rate_limit(fleet, api):
    """tank-02, AUTONOMOUS: m_oil written 3 kg/s away from the gate's value at the PLC.
    The next tick records it and writes the gate's value back, moving at most
    max_rate x period (2.4 kg/s) from the external value, and the audit says so."""
    status = api.get("/assets/tank-02").json()
    assert status["mode"] == "AUTONOMOUS"
    gated = status["setpoints"]["m_oil"]["value"]
    external = gated + 3.0 if gated + 3.0 <= 8.0 else gated - 3.0
    write_around_the_gate(fleet, "tank-02", external)
    fleet.run_for(PERIOD_S)

    [record] = audit(api, "tank-02", outcome="external")
    assert record["source"] == "plc" and "writes its own value back" in record["reason"]
    back = [r for r in audit(api, "tank-02") if r["source"] == "restore"]
    assert len(back) == 1 and back[0]["time"] == record["time"]
    step = MAX_RATE * PERIOD_S
    expected = external - step if external > gated else external + step
    assert back[0]["applied"] == pytest.approx(expected, rel=1e-6)
    assert "rate limit" in back[0]["reason"]
    assert plant_m_oil(fleet, "tank-02") == pytest.approx(expected, rel=FLOAT32)
    [seen] = api.get("/assets/tank-02").json()["external_writes"]
    assert seen["action"] == "restored by the gate"
    assert seen["value"] == pytest.approx(external, rel=FLOAT32)

    fleet.run_for(PERIOD_S)  # the gate's own writes are not external writes, and rate-limited
    assert len(audit(api, "tank-02", outcome="external")) == 1
    assert abs(plant_m_oil(fleet, "tank-02") - expected) <= step * (1 + 1e-6)
