"""The two-tank loop over real Modbus TCP, and a rod pump: each simulated plant behind a
pymodbus PLC simulator on loopback, each asset a Modbus client of it; lock-step (SimClock).

tank-02's PLC uses the CDAB word order, to show the site file's setting reaches both ends.
well-01's PLC serves each stroke's surface card in its card buffer; its cards are stored
in a DuckDB historian.
"""

from __future__ import annotations

import time

import msgspec
import pytest
import ray
from pymodbus.client import ModbusTcpClient

from engine.registers import decode
from tests.actors.test_mqtt import wait_for
from tests.conftest import admin_api
from tests.ports import consecutive_free_ports

WELL = '[site]\nname = "s"\n[[assets]]\nid = "well-01"\nkind = "rod_pump"\n'

FLOAT32 = 2.0 ** -23
"""Relative precision of a float32 (one unit in the last place)."""


@pytest.fixture(scope="module")
def fleet(ray_session, tmp_path_factory):
    import plants
    from actors.fleet import build_fleet
    from engine.clock import ClockSpec
    from engine.config import load_site, parse_site
    from tests.conftest import TWO_TANKS

    site = plants.resolve_site(load_site(TWO_TANKS), TWO_TANKS)
    (well,) = plants.resolve_site(parse_site(WELL)).assets
    replace = msgspec.structs.replace
    var = tmp_path_factory.mktemp("var")
    tank_02 = replace(site.assets[1], modbus=replace(site.assets[1].modbus, word_order="CDAB"))
    site = replace(site, site=replace(site.site, audit_db=str(var / "modbus-audit.db")),
                   historian=replace(site.historian, path=str(var / "history.duckdb")),
                   modbus=replace(site.modbus, base_port=consecutive_free_ports(3),
                                  retry_initial_s=0.2, retry_max_s=1.0, timeout_s=0.5),
                   assets=[site.assets[0], tank_02, well])
    fleet = build_fleet(site, ClockSpec(lockstep=True, epoch=1.7e9), namespace="test-modbus",
                        modbus=True, history=True)
    fleet.run_for(1800.0)
    yield fleet
    fleet.shutdown()


@pytest.fixture(scope="module")
def api(fleet):
    with admin_api(fleet) as client:
        yield client


def read_plc(plc):
    """Input and holding registers of one PLC, read by a plain pymodbus client."""
    with ModbusTcpClient(plc.host, port=plc.port) as client:
        inputs = client.read_input_registers(0, count=plc.input_count, device_id=plc.unit_id)
        holding = client.read_holding_registers(0, count=plc.holding_count,
                                                device_id=plc.unit_id)
    assert not inputs.isError() and not holding.isError(), (inputs, holding)
    return inputs.registers, holding.registers


@pytest.mark.parametrize("asset", ["tank-01", "tank-02"])
def test_registers_equal_what_the_http_api_reports(fleet, api, asset):
    """Every value of the register map, decoded in the PLC's word order, equals the
    measurement and setpoint GET /assets/{id} reports, within float32 precision."""
    plc = fleet.plcs[asset]
    inputs, holding = read_plc(plc)
    status = api.get(f"/assets/{asset}").json()
    assert status["link"]["connected"] and status["healthy"], status["errors"]
    for register in plc.inputs:
        value = decode(inputs[register.address:register.address + register.count],
                       register.kind, plc.word_order)
        if register.signal == "sample_time":
            assert value == status["measurement"]["T_bulk"]["time"]
        else:
            assert value == pytest.approx(status["measurement"][register.signal]["value"],
                                          rel=FLOAT32)
    for register in plc.holding:
        value = decode(holding[register.address:register.address + register.count],
                       register.kind, plc.word_order)
        assert value == pytest.approx(status["setpoints"][register.signal]["value"], rel=FLOAT32)
    assert status["setpoints"]["m_oil"]["value"] != pytest.approx(0.6)  # the MPC moved it


def test_a_well_behind_its_plc_gets_measured_cards(fleet, api):
    """well-01's cards come over Modbus: one per tick is stored and shown as measured, and
    the card buffer, read by a plain client, decodes to the newest stored surface card."""
    plc = fleet.plcs["well-01"]
    start, order = plc.card.address, plc.word_order
    with ModbusTcpClient(plc.host, port=plc.port) as client:
        header = client.read_input_registers(start, count=8, device_id=plc.unit_id).registers
        points = []
        for offset in range(0, 4 * header[1], 125):
            points += client.read_input_registers(
                start + 8 + offset, count=min(125, 4 * header[1] - offset),
                device_id=plc.unit_id).registers
    values = [decode(points[i:i + 2], "float32", order) for i in range(0, len(points), 2)]
    time_ = decode(header[2:6], "float64", order)
    stored = wait_for(lambda: (found := api.get("/assets/well-01/cards").json())
                      and found[-1]["time"] == time_ and found, "the newest card stored")
    assert len(stored) >= 1800.0 / 120.0 and all(c["source"] == "measured" for c in stored)
    assert [c["time"] for c in stored] == sorted({c["time"] for c in stored})
    assert stored[-1]["surface_position"] == pytest.approx(values[0::2], rel=1e-12)
    assert stored[-1]["surface_load"] == pytest.approx(values[1::2], rel=1e-12)
    assert stored[-1]["period"] == pytest.approx(decode(header[6:8], "float32", order),
                                                 rel=1e-12)
    assert 0.0 < stored[-1]["fillage"] <= 1.0 and len(stored[-1]["downhole_load"]) == 400
    view = api.get("/assets/well-01/view").json()
    assert view["card_source"] == "measured" and view["card_time"] == time_
    link = api.get("/assets/well-01").json()["link"]
    assert link["kind"] == "modbus" and link["cards_read"] >= len(stored)
    assert link["cards_refused"] == 0


def test_word_order_is_the_configured_one(fleet):
    """tank-02's setpoint reads right only in CDAB, not in the default ABCD."""
    plc = fleet.plcs["tank-02"]
    _, holding = read_plc(plc)
    truth = ray.get(fleet.plants["tank-02"].truth.remote())["inputs"]["m_oil"]
    assert plc.word_order == "CDAB"
    assert decode(holding[0:2], "float32", "CDAB") == pytest.approx(truth, rel=FLOAT32)
    assert decode(holding[0:2], "float32", "ABCD") != pytest.approx(truth, rel=1e-3)


def test_the_plc_applies_the_gated_setpoints_to_the_plant(fleet):
    """The plant runs on the holding registers' value, and every applied write in the
    audit log respects the safety limits."""
    for asset in ("tank-01", "tank-02"):
        plc = fleet.plcs[asset]
        _, holding = read_plc(plc)
        truth = ray.get(fleet.plants[asset].truth.remote())["inputs"]["m_oil"]
        assert decode(holding[0:2], "float32", plc.word_order) == pytest.approx(truth, rel=FLOAT32)
    records = ray.get(fleet.safety.audit_records.remote("tank-01", limit=10_000))
    applied = [r["applied"] for r in records if r["signal"] == "m_oil" and r["applied"] is not None]
    assert len(applied) >= 10 and all(0.1 <= value <= 10.0 for value in applied)


def test_a_write_outside_the_bounds_is_refused_by_the_plc(fleet):
    """A SCADA write of 1e6 kg/s gets Modbus exception 3 and the plant keeps its input."""
    from engine.registers import encode

    plc = fleet.plcs["tank-01"]
    before = ray.get(fleet.plants["tank-01"].truth.remote())["inputs"]["m_oil"]
    with ModbusTcpClient(plc.host, port=plc.port) as client:
        reply = client.write_registers(0, encode(1e6, "float32", plc.word_order),
                                       device_id=plc.unit_id)
    assert reply.isError() and reply.exception_code == 3
    assert ray.get(fleet.plants["tank-01"].truth.remote())["inputs"]["m_oil"] == before


def test_a_lost_plc_makes_measurements_stale_until_it_returns(fleet, api):
    """Stop tank-01's PLC: its status says the link is down, the measurement ages past
    the 600 s watchdog and the safety actor refuses controller writes, while tank-02
    carries on. Restart it: the link reconnects (with backoff) and writes resume."""
    plant = fleet.plants["tank-01"]
    ray.get(plant.stop_plc.remote())
    before = api.get("/assets/tank-01").json()["measurement"]["T_bulk"]["time"]
    fleet.run_for(900.0)
    down = api.get("/assets/tank-01").json()
    assert not down["healthy"] and not down["link"]["connected"]
    assert "stale" in down["errors"][0] and "retrying in" in down["errors"][0]
    assert down["measurement"]["T_bulk"]["time"] == before
    assert down["measurement_age_s"] > 600.0
    refused = api.get("/assets/tank-01/audit", params={"outcome": "rejected"}).json()
    assert refused and "measurement" in refused[-1]["reason"]
    other = api.get("/assets/tank-02").json()
    assert other["healthy"] and other["measurement"]["T_bulk"]["time"] > before + 800.0

    ray.get(plant.start_plc.remote())
    deadline = time.monotonic() + 30.0
    while not api.get("/assets/tank-01").json()["link"]["connected"]:
        assert time.monotonic() < deadline, "the link did not reconnect within 30 s"
        fleet.run_for(120.0)
    fleet.run_for(240.0)
    back = api.get("/assets/tank-01").json()
    assert back["healthy"], back["errors"]
    assert back["measurement_age_s"] < 120.0
    latest = api.get("/assets/tank-01/audit", params={"limit": 100_000}).json()[-1]
    assert latest["outcome"] in ("accepted", "clamped") and latest["time"] > refused[-1]["time"]
