"""MQTT topics and payloads of a site, without a client (actors.mqtt is the gateway).

Topics, per asset:

    twinloop/<site>/<asset id>/measurements   in   {"ts": t, "values": {"<tag>": value}}
                                                   or a JSON array of such samples
    twinloop/<site>/<asset id>/cards          in   one stroke's surface card (rod pumps,
                                                   engine.cards.SurfaceCard): {"time",
                                                   "position", "load", "sample_time"}
    twinloop/<site>/<asset id>/estimates      out  {"ts", "values", "std", "nis"}
    twinloop/<site>/<asset id>/setpoints      out  {"ts", "values"}
    twinloop/<site>/<asset id>/alarms         out  one alarm transition (AlarmEvent):
                                                   {"alarm", "asset", "time", "from_state",
                                                    "to_state", "user", "reason", "priority"}

Tags are the asset's output (measured signal) names; values are SI and must be finite
and within the signal's engineering bounds. A payload that breaks any rule is refused
whole with a :class:`MalformedPayload` naming one of a few reasons, the Prometheus
label of ``twinloop_mqtt_malformed_total``.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from typing import Any

import msgspec

from engine.cards import SurfaceCard, check_card
from engine.messages import MeasurementPayload
from engine.metrics import MALFORMED_REASONS
from engine.signals import SignalSet

PREFIX = "twinloop"

REASONS = MALFORMED_REASONS
"""Why a payload was refused: not JSON; wrong shape or types; a topic naming no MQTT
asset; a tag that is not one of the asset's outputs; NaN or infinity; outside the
output's engineering bounds; a surface card that breaks engine.cards.check_card or cannot
be diagnosed."""


class MalformedPayload(ValueError):
    """A refused payload: ``reason`` is one of REASONS, the message says what and where."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def topic(site: str, asset: str, stream: str) -> str:
    """``twinloop/<site>/<asset>/<stream>`` (stream: measurements, estimates, setpoints)."""
    return f"{PREFIX}/{site}/{asset}/{stream}"


def asset_of(topic_name: str) -> str:
    """The asset id of a ``twinloop/<site>/<asset>/<stream>`` topic."""
    parts = topic_name.split("/")
    return parts[2] if len(parts) == 4 else ""


def stream_of(topic_name: str) -> str:
    """The stream (``measurements``, ``cards``, ...) of a ``twinloop/<site>/<asset>/<stream>``
    topic."""
    parts = topic_name.split("/")
    return parts[3] if len(parts) == 4 else ""


_card_decoder = msgspec.json.Decoder(SurfaceCard)


def decode_card(asset: str, payload: bytes | bytearray) -> SurfaceCard:
    """One surface card of ``asset``, decoded strictly and checked (engine.cards.check_card);
    raises MalformedPayload naming the field and the bound."""
    card = _strictly(_card_decoder, payload, f"asset {asset!r}: card")
    try:
        return check_card(card)
    except ValueError as error:
        raise MalformedPayload("bad_card", f"asset {asset!r}: {error}") from None


_NON_FINITE = re.compile(rb"[:\[,]\s*-?(NaN|Infinity)\s*[,}\]]")


def _strictly(decoder: msgspec.json.Decoder, payload: bytes | bytearray, what: str) -> Any:
    """``payload`` decoded by ``decoder``; MalformedPayload naming ``what`` and why: a
    JSON number beyond float64's range (1e999, which decodes to infinity) or NaN and
    Infinity (not JSON, but some encoders write them, Python's json) are ``non_finite``,
    a wrong shape ``schema``, anything else that is not JSON ``json``."""
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as error:
        reason = "non_finite" if "Number out of range" in str(error) else "schema"
        raise MalformedPayload(reason, f"{what}: {error}") from None
    except msgspec.DecodeError as error:
        reason = "non_finite" if _NON_FINITE.search(payload) else "json"
        raise MalformedPayload(reason, f"{what}: not valid JSON: {error}") from None
_decoder = msgspec.json.Decoder(MeasurementPayload | list[MeasurementPayload])


class MeasurementDecoder:
    """Decodes and checks one asset's measurement payloads against its output signals."""

    def __init__(self, asset: str, outputs: SignalSet) -> None:
        self.asset = asset
        self.outputs = outputs
        self._bounds = {s.name: (s.lower, s.upper) for s in outputs}

    def __call__(self, payload: bytes | bytearray) -> list[MeasurementPayload]:
        """The checked samples of one message; raises MalformedPayload."""
        asset = self.asset
        decoded = _strictly(_decoder, payload, f"asset {asset!r}")
        samples = decoded if isinstance(decoded, list) else [decoded]
        bounds = self._bounds
        for sample in samples:
            if not math.isfinite(sample.ts):
                raise MalformedPayload("non_finite",
                                       f"asset {asset!r}: ts {sample.ts} is not finite")
            for tag, value in sample.values.items():
                bound = bounds.get(tag)
                if bound is None or not bound[0] <= value <= bound[1]:  # NaN fails too
                    self._refuse(tag, value)
        return samples

    def _refuse(self, tag: str, value: float) -> None:
        asset = self.asset
        if tag not in self._bounds:
            raise MalformedPayload("unknown_tag", f"asset {asset!r}: unknown tag {tag!r}; "
                                   f"known tags: {', '.join(self.outputs.names)}")
        if not math.isfinite(value):
            raise MalformedPayload("non_finite", f"asset {asset!r}: tag {tag!r}: {value} is not "
                                   "finite")
        try:
            self.outputs[tag].check(value)
        except ValueError as error:
            raise MalformedPayload("out_of_range", f"asset {asset!r}: {error}") from None


def parse_broker(url: str) -> tuple[str, int]:
    """``mqtt://host:port`` (port 1883 if left out) -> (host, port); raises ValueError."""
    parsed = urllib.parse.urlsplit(url)
    try:
        port = parsed.port or 1883
    except ValueError:
        port = None
    if parsed.scheme != "mqtt" or not parsed.hostname or port is None:
        raise ValueError(f"MQTT broker {url!r}: expected mqtt://host:port")
    return parsed.hostname, port
