"""Register map and IEEE 754 word orders (engine.registers), reconnection backoff, and
the Modbus settings of a site file."""

from __future__ import annotations

import itertools
import math

import pytest

import plants
from engine.backoff import Backoff
from engine.config import ConfigError, parse_site
from engine.registers import decode, encode, format_map, site_map

SITE = """
[site]
name = "s"
[modbus]
base_port = 6000
word_order = "CDAB"
[[assets]]
id = "tank-01"
kind = "asphalt_tank"
[[assets]]
id = "pump-01"
kind = "centrifugal_pump"
modbus = { word_order = "DCBA", unit_id = 7 }
"""


@pytest.mark.parametrize(("order", "registers"), [
    ("ABCD", [0x3F80, 0x0000]), ("CDAB", [0x0000, 0x3F80]),
    ("BADC", [0x803F, 0x0000]), ("DCBA", [0x0000, 0x803F]),
])
def test_one_as_float32_in_each_word_order(order, registers):
    """1.0f is 0x3F800000: bytes A=3F B=80 C=00 D=00."""
    assert encode(1.0, "float32", order) == registers
    assert decode(registers, "float32", order) == 1.0


@pytest.mark.parametrize("order", ["ABCD", "CDAB", "BADC", "DCBA"])
@pytest.mark.parametrize("value", [433.15, -2.5e-7, 1.7e9 + 0.125])
def test_round_trip_keeps_float32_and_float64_precision(order, value):
    assert decode(encode(value, "float64", order), "float64", order) == value
    assert decode(encode(value, "float32", order), "float32", order) == pytest.approx(
        value, rel=2.0 ** -24)


def test_float64_word_swap_reverses_all_four_words():
    assert encode(1.0, "float64", "CDAB") == encode(1.0, "float64", "ABCD")[::-1]


def site():
    resolved = plants.resolve_site(parse_site(SITE))
    return resolved, {a.id: plants.model_of(a) for a in resolved.assets}


def test_site_map_gives_each_asset_a_port_and_packed_registers():
    resolved, models = site()
    tank, pump = site_map(resolved, models)
    assert (tank.port, tank.unit_id, tank.word_order) == (6000, 1, "CDAB")
    assert (pump.port, pump.unit_id, pump.word_order) == (6001, 7, "DCBA")
    for plc in (tank, pump):
        model = models[plc.asset]
        assert [r.signal for r in plc.inputs] == ["sample_time", *model.outputs.names]
        assert [r.signal for r in plc.holding] == list(model.inputs.names)
        for block in (plc.inputs, plc.holding):
            assert block[0].address == 0
            for before, after in itertools.pairwise(block):
                assert after.address == before.address + before.count
    values = {name: 400.0 + i for i, name in enumerate(models["tank-01"].outputs.names)}
    assert tank.decode_inputs(tank.encode_inputs(1.7e9, values)) == (1.7e9, values)


def test_setpoint_image_needs_every_input():
    resolved, models = site()
    pump = site_map(resolved, models)[1]
    with pytest.raises(ValueError, match="no value for setpoint"):
        pump.encode_setpoints({})


def test_printed_map_names_signal_direction_address_type_unit_order_and_unit_id():
    resolved, models = site()
    lines = format_map(site_map(resolved, models)).splitlines()
    assert lines[0].split()[:6] == ["asset", "signal", "direction", "table", "address", "type"]
    row = next(line for line in lines if line.startswith("tank-01") and " m_oil " in line)
    assert row.split() == ["tank-01", "m_oil", "setpoint", "holding", "0-1", "float32", "kg/s",
                           "CDAB", "1", "modbus://127.0.0.1:6000"]


def test_a_wells_card_buffer_follows_its_outputs_and_round_trips_a_card():
    """A rod pump's PLC map: the card buffer starts right after the measured outputs, the
    printed map lists its parts, and a card encoded in DCBA decodes to itself within
    float32; a card longer than the buffer is refused naming the bound."""
    from engine.cards import SurfaceCard

    resolved = plants.resolve_site(parse_site(
        '[site]\nname = "s"\n[[assets]]\nid = "well-01"\nkind = "rod_pump"\n'
        'modbus = { word_order = "DCBA" }\n'))
    (well,) = resolved.assets
    (plc,) = site_map(resolved, {well.id: plants.model_of(well)}, {well.id: 400})
    assert plc.card.address == plc.input_count and plc.scan_count == plc.input_count + 8
    assert plc.input_table_size == plc.input_count + 8 + 4 * 400
    lines = format_map([plc]).splitlines()
    last = plc.input_table_size - 1
    assert [line.split()[1:5] for line in lines if " card " in line] == [
        ["card_count", "card", "input", "18"], ["card_points", "card", "input", "19"],
        ["card_time", "card", "input", "20-23"], ["card_period", "card", "input", "24-25"],
        ["card_point[0..399]", "card", "input", f"26-{last}"]]
    n = 30
    card = SurfaceCard(time=1.7e9 + 0.25, position=[0.1 * i for i in range(n)],
                       load=[5e4 + 100.0 * i for i in range(n)],
                       sample_time=[0.2 * i for i in range(n)])
    registers = plc.encode_card(9, card)
    assert len(registers) == plc.card.count and registers[:2] == [9, n]
    header = plc.decode_card_header(registers)
    assert (header.count, header.points, header.time) == (9, n, card.time)
    decoded = plc.decode_card(header, registers[8:])
    for name in ("position", "load", "sample_time"):
        assert getattr(decoded, name) == pytest.approx(getattr(card, name), rel=2.0 ** -23)
    long = SurfaceCard(time=0.0, position=[0.0] * 401, load=[0.0] * 401,
                       sample_time=[float(i) for i in range(401)])
    with pytest.raises(ValueError, match="card of 401 samples, the card buffer holds 1..400"):
        plc.encode_card(10, long)


@pytest.mark.parametrize(("change", "message"), [
    ('word_order = "ABDC"', "modbus.word_order"),
    ("unit_id = 300", "modbus.unit_id: must be in 1..247, got 300"),
    ("scan_period_s = 0", "modbus.scan_period_s: must be positive"),
    ("base_port = 65535", "modbus.base_port"),
])
def test_bad_modbus_settings_name_the_key(change, message):
    text = SITE.replace('base_port = 6000\nword_order = "CDAB"', change)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        parse_site(text)


def test_backoff_doubles_up_to_its_cap_and_resets():
    backoff = Backoff(0.5, 3.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    with pytest.raises(ValueError, match="initial"):
        Backoff(0.0, math.inf)
