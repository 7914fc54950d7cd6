"""Surface cards at the edges (engine.cards, engine.mqtt_codec): a card the diagnostic
cannot use is refused with a message naming the field and the bound."""

from __future__ import annotations

import math

import msgspec
import pytest

from engine.cards import MAX_CARD_SAMPLES, MIN_CARD_SAMPLES, SurfaceCard, check_card
from engine.mqtt_codec import MalformedPayload, decode_card


def _card(n: int = 200, **changes) -> SurfaceCard:
    fields = {"time": 1.7e9, "position": [2.54 / 2 * (1 - math.cos(2 * math.pi * k / n))
                                          for k in range(n)],
              "load": [50e3 + 20e3 * math.sin(2 * math.pi * k / n) for k in range(n)],
              "sample_time": [7.5 * k / n for k in range(n)]}
    return SurfaceCard(**{**fields, **changes})


def test_a_good_card_passes_and_knows_its_period():
    """n samples uniform over a stroke, the first not repeated: period = n/(n-1) t[n-1]."""
    card = check_card(_card())
    assert card.period == pytest.approx(7.5, rel=1e-12)


@pytest.mark.parametrize("changes, message", [
    ({"load": [1.0] * 199}, r"card load: 199 samples, must match position's 200"),
    ({"sample_time": [0.1 * k for k in range(201)]}, r"card sample_time: 201 samples"),
    ({"position": [0.0] * 10, "load": [0.0] * 10, "sample_time": list(range(10))},
     rf"card position: 10 samples, must be within {MIN_CARD_SAMPLES}\.\.{MAX_CARD_SAMPLES}"),
    ({"position": [0.0] * (MAX_CARD_SAMPLES + 1), "load": [0.0] * (MAX_CARD_SAMPLES + 1),
      "sample_time": list(range(MAX_CARD_SAMPLES + 1))}, rf"within .*\.\.{MAX_CARD_SAMPLES}"),
    ({"load": [math.nan] + [1.0] * 199}, r"card load\[0\]: nan must be finite"),
    ({"position": [0.0] * 50 + [math.inf] + [0.0] * 149}, r"card position\[50\]: inf"),
    ({"sample_time": [0.0, 0.0] + [float(k) for k in range(2, 200)]},
     r"card sample_time\[1\]: 0.0 must be finite and greater than the sample before"),
    ({"time": math.nan}, r"card time: nan is not finite"),
    ({"sample_time": [1e-3 * k for k in range(200)]},
     r"card sample_time: stroke period 0.2 s must be within 1..600 s"),
])
def test_a_bad_card_is_refused_naming_the_field_and_bound(changes, message):
    with pytest.raises(ValueError, match=message):
        check_card(_card(**changes))


def test_mqtt_card_payloads_are_decoded_strictly():
    """Over MQTT: a good card decodes; an unknown field is a schema error; NaN (which some
    encoders write) is non_finite; a card that breaks a bound is bad_card, naming it."""
    good = msgspec.json.encode(_card())
    assert decode_card("well-01", good) == _card()
    with pytest.raises(MalformedPayload) as refused:
        decode_card("well-01", good[:-1] + b',"spm":8}')
    assert refused.value.reason == "schema"
    with pytest.raises(MalformedPayload) as refused:
        decode_card("well-01", good.replace(b'"load":[', b'"load":[NaN,', 1))
    assert refused.value.reason == "non_finite"
    with pytest.raises(MalformedPayload, match=r"card load: 199 samples") as refused:
        decode_card("well-01", msgspec.json.encode(_card(load=[1.0] * 199)))
    assert refused.value.reason == "bad_card"
