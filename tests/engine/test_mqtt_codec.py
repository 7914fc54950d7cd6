"""MQTT topics and payload decoding (engine.mqtt_codec), without a broker."""

from __future__ import annotations

import pytest

from engine.mqtt_codec import MalformedPayload, MeasurementDecoder, asset_of, parse_broker, topic
from engine.signals import Signal, SignalSet

OUTPUTS = SignalSet([Signal("T_bulk", "K", 433.15, lower=273.15, upper=523.15),
                     Signal("level", "m", 5.0, lower=0.0, upper=20.0)])


DECODE = MeasurementDecoder("tank-01", OUTPUTS)


def test_one_sample_decodes_to_a_typed_message():
    [m] = DECODE(b'{"ts": 1.7e9, "values": {"T_bulk": 433, "level": 4.5}}')
    assert (m.ts, m.values) == (1.7e9, {"T_bulk": 433.0, "level": 4.5})


def test_a_batch_of_samples_decodes_in_order():
    batch = b'[{"ts": 1, "values": {"T_bulk": 400}}, {"ts": 2, "values": {"level": 3}}]'
    assert [m.ts for m in DECODE(batch)] == [1.0, 2.0]


@pytest.mark.parametrize(("payload", "reason", "message"), [
    (b"{", "json", "not valid JSON"),
    (b'{"ts": 1}', "schema", "missing required field `values`"),
    (b'{"ts": 1, "values": {"T_bulk": 400}, "extra": 1}', "schema", "extra"),
    (b'{"ts": 1, "values": {"T_bulk": null}}', "schema", "Expected `float`, got `null`"),
    (b'{"ts": 1, "values": {"T_top": 400}}', "unknown_tag",
     "unknown tag 'T_top'; known tags: T_bulk, level"),
    (b'{"ts": 1, "values": {"T_bulk": NaN}}', "non_finite", "not valid JSON"),
    (b'{"ts": 1, "values": {"level": -Infinity}}', "non_finite", "not valid JSON"),
    (b'{"ts": 1, "values": {"T_bulk": 1e999}}', "non_finite", "out of range"),
    (b'{"ts": 1e999, "values": {}}', "non_finite", "out of range"),
    (b'{"ts": 1, "values": {"T_bulk": 600}}', "out_of_range",
     "'T_bulk': 600 K is above its upper bound 523.15 K"),
    (b'[{"ts": 1, "values": {"T_bulk": 400}}, {"ts": 2, "values": {"level": -1}}]', "out_of_range",
     "'level': -1 m is below its lower bound 0 m"),
])
def test_a_malformed_payload_names_its_reason_and_the_problem(payload, reason, message):
    with pytest.raises(MalformedPayload, match="^asset 'tank-01': ") as error:
        DECODE(payload)
    assert error.value.reason == reason
    assert message in str(error.value)


def test_topics_and_broker_urls():
    assert topic("pilot", "tank-01", "estimates") == "twinloop/pilot/tank-01/estimates"
    assert asset_of("twinloop/pilot/tank-01/measurements") == "tank-01"
    assert asset_of("twinloop/pilot/measurements") == ""
    assert parse_broker("mqtt://127.0.0.1:1884") == ("127.0.0.1", 1884)
    assert parse_broker("mqtt://broker") == ("broker", 1883)
    for bad in ("http://broker:1883", "mqtt://:1883", "mqtt://broker:port"):
        with pytest.raises(ValueError, match="expected mqtt://host:port"):
            parse_broker(bad)
