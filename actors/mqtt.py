"""MqttGateway: measurements in from an MQTT broker, estimates and setpoints out.

paho-mqtt 2.x (VERSION2 callbacks) runs its network loop on its own thread:

    twinloop/<site>/<id>/measurements --> decode + check (engine.mqtt_codec) --> pending
    twinloop/<site>/<id>/cards        --> decode + check (engine.cards) --> pending cards
    every flush_period_s: pending --> asset.ingest(batch), one call per asset (on its
                                      shard), the batch msgpack-encoded (cheaper than
                                      pickling); each card --> asset.receive_card(card)
    asset's tick --> publish_estimate / publish_setpoints --> .../estimates, .../setpoints
    alarm transitions --> publish_alarms --> .../alarms (one message per transition)

Measurements of every asset (``twinloop/<site>/+/measurements``) are subscribed at
QoS 1 with a persistent session (clean_session False), so the broker keeps them while
the gateway reconnects (paho's exponential backoff, 1 s doubling to 30 s). A refused
payload is counted by reason (``twinloop_mqtt_malformed_total``; a topic naming an
asset whose measurements do not come over MQTT counts as ``unknown_asset``) and
logged; it never reaches an asset and never stops the gateway. A card the asset cannot
diagnose (no fluid load, an asset that takes no cards) is counted as ``bad_card`` too.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
import ray

from engine.alarm_states import AlarmEvent
from engine.cards import SurfaceCard
from engine.messages import (
    Estimate,
    EstimatePayload,
    MeasurementPayload,
    Setpoint,
    SetpointPayload,
)
from engine.metrics import MqttMetrics
from engine.mqtt_codec import (
    MalformedPayload,
    MeasurementDecoder,
    asset_of,
    decode_card,
    parse_broker,
    stream_of,
    topic,
)
from engine.signals import SignalSet

log = logging.getLogger(__name__)

QOS = 1
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30


@ray.remote(num_cpus=0)
class MqttGateway:
    """One site's MQTT client.

    Args:
        site: site name, the second topic level.
        broker: ``mqtt://host:port``.
        assets: per-asset handles (actors.directory.AssetHandle) by id, for those whose
            measurements come over MQTT.
        outputs: each of those assets' output signals (the tags it accepts, with bounds).
        flush_period_s: wall seconds between batched hand-overs to the assets.
    """

    def __init__(self, site: str, broker: str, assets: dict[str, Any],
                 outputs: dict[str, SignalSet], flush_period_s: float = 0.02) -> None:
        self.site = site
        self.broker = broker
        self.host, self.port = parse_broker(broker)
        self.assets = assets
        self.decoders = {asset: MeasurementDecoder(asset, signals)
                         for asset, signals in outputs.items()}
        self.flush_period_s = flush_period_s
        self.metrics = MqttMetrics()
        self.ingested = 0
        self.last_error: str | None = None
        self._pending: dict[str, list[MeasurementPayload]] = {}
        self._pending_cards: list[tuple[str, SurfaceCard]] = []
        self.cards_ingested = 0
        self._lock = threading.Lock()
        self._encoder = msgspec.json.Encoder()
        self._packer = msgspec.msgpack.Encoder()
        self._flusher: asyncio.Task | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"twinloop-{site}-gateway", clean_session=False)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)

    async def start(self) -> None:
        """Connect in the background (retrying with backoff) and start handing over."""
        if self._flusher is None:
            self.client.connect_async(self.host, self.port)
            self.client.loop_start()
            self._flusher = asyncio.create_task(self._flush_every())

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
            self.client.disconnect()
            self.client.loop_stop()

    async def wait_connected(self, timeout_s: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self.metrics.connected and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        return self.metrics.connected

    # -- paho callbacks (paho's network thread) ----------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker {self.broker} refused the connection: {reason_code}"
            return
        self.metrics.connected = True
        self.last_error = None
        client.subscribe([(topic(self.site, "+", "measurements"), QOS),
                          (topic(self.site, "+", "cards"), QOS)])

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.metrics.connected = False
        self.last_error = f"disconnected from {self.broker} ({reason_code}); reconnecting"

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        asset = asset_of(message.topic)
        try:
            decode = self.decoders.get(asset)
            if decode is None:
                raise MalformedPayload("unknown_asset", f"topic {message.topic!r} names no asset "
                                       "whose measurements come over MQTT")
            if stream_of(message.topic) == "cards":
                card = decode_card(asset, message.payload)
                with self._lock:
                    self._pending_cards.append((asset, card))
                    self.metrics.messages += 1
                return
            samples = decode(message.payload)
        except MalformedPayload as error:
            self.metrics.malformed[error.reason] += 1
            log.warning("MQTT %s: payload refused (%s): %s", message.topic, error.reason, error)
            return
        with self._lock:
            self._pending.setdefault(asset, []).extend(samples)
            self.metrics.messages += 1
            self.metrics.points += sum(len(sample.values) for sample in samples)

    # -- hand-over and publishing (the actor's event loop) ------------------------------

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self.flush_period_s)
            await self.flush()

    async def flush(self) -> None:
        """Hand every pending measurement to its asset."""
        with self._lock:
            pending, self._pending = self._pending, {}
            cards, self._pending_cards = self._pending_cards, []
        if cards:
            await self._hand_over_cards(cards)
        if not pending:
            return
        results = await asyncio.gather(
            *(self.assets[asset].ingest.remote(self._packer.encode(batch))
              for asset, batch in pending.items()),
            return_exceptions=True)
        for (asset, batch), result in zip(pending.items(), results, strict=True):
            if isinstance(result, Exception):
                log.error("MQTT: asset %s did not take %d samples: %s", asset, len(batch),
                          result)
            else:
                self.ingested += len(batch)

    async def _hand_over_cards(self, cards: list[tuple[str, SurfaceCard]]) -> None:
        """Each card to its asset, in arrival order per asset; one the asset refuses
        (ValueError: it cannot be diagnosed) is counted as ``bad_card``."""
        results = await asyncio.gather(
            *(self.assets[asset].receive_card.remote(card) for asset, card in cards),
            return_exceptions=True)
        for (asset, card), result in zip(cards, results, strict=True):
            if isinstance(result, ValueError):
                self.metrics.malformed["bad_card"] += 1
                log.warning("MQTT: asset %s refused the card of %s: %s", asset, card.time,
                            result)
            elif isinstance(result, Exception):
                log.error("MQTT: asset %s did not take the card of %s: %s", asset, card.time,
                          result)
            else:
                self.cards_ingested += 1

    def publish_estimate(self, estimate: Estimate) -> None:
        payload = EstimatePayload(ts=estimate.time, values=estimate.values, std=estimate.std,
                                  nis=estimate.nis)
        self.client.publish(topic(self.site, estimate.asset, "estimates"),
                            self._encoder.encode(payload), qos=QOS)

    def publish_alarms(self, events: list[AlarmEvent]) -> None:
        """Each transition as one message on its asset's ``alarms`` topic, in order."""
        for event in events:
            self.client.publish(topic(self.site, event.asset, "alarms"),
                                self._encoder.encode(event), qos=QOS)

    def publish_setpoints(self, setpoint: Setpoint) -> None:
        payload = SetpointPayload(ts=setpoint.time, values=setpoint.values)
        self.client.publish(topic(self.site, setpoint.asset, "setpoints"),
                            self._encoder.encode(payload), qos=QOS)

    # -- queries ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"broker": self.broker, "connected": self.metrics.connected,
                "error": self.last_error, "ingested": self.ingested,
                "cards_ingested": self.cards_ingested,
                "subscribed": topic(self.site, "+", "measurements"),
                **self.metrics.snapshot()}

    def metrics_snapshot(self) -> dict[str, Any]:
        return self.metrics.snapshot()
