"""An asset's status as one typed message: what HTTP, OPC UA and a live console read.

A hosted asset (actors.asset.HostedAsset) builds its ``AssetStatus`` once per tick and
once after each operator command; its shard pushes the statuses built during a tick
instant as ONE ``StatusBatch`` to the site's status board (actors.status_board), which
keeps the latest of every asset and hands them on (``StatusUpdate``) to its readers: the
HTTP replica answers ``GET /assets/{id}`` from it, the OPC UA gateway writes its nodes
from it. ``GET /assets/{id}`` answers exactly this Struct as JSON (``encode_json``), and
its OpenAPI schema is this Struct's own (serve.schemas.struct_answer), so the HTTP answer,
its documentation and the Struct cannot differ.

Values are SI, each with its unit; times are twin seconds (UNIX seconds of the twin's
clock). A number that may be absent or unbounded is ``None`` (JSON ``null``); a NaN or
infinite float is encoded as ``null`` too.

Extending: add a field WITH a default anywhere (the Structs are keyword-only), e.g.
``plc_writes: list[PlcWrite] = []``; a reader built before the field was added ignores it,
and a status pushed by an older shard decodes with the default. Declared here once: the
OpenAPI document follows by itself.
"""

from __future__ import annotations

import math

import msgspec

from engine.alarm_states import AlarmState
from engine.alarms import AlarmStatus
from engine.messages import Mode


class Quantity(msgspec.Struct, frozen=True, kw_only=True):
    """A value in its unit (SI)."""

    value: float | None
    unit: str


class EstimatedQuantity(Quantity, frozen=True, kw_only=True):
    """An estimated value and its standard deviation, same unit."""

    std: float | None


class TimedQuantity(Quantity, frozen=True, kw_only=True):
    """A value with the twin time it was measured or applied, s."""

    time: float | None


class DirectLinkStatus(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
                       tag="direct"):
    """The simulated plant, called directly (lock-step)."""

    connected: bool = True
    error: str | None = None


class ModbusLinkStatus(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
                       tag="modbus"):
    """The plant's PLC over Modbus TCP."""

    address: str
    unit_id: int
    word_order: str
    connected: bool
    error: str | None
    reconnect_attempts: int
    cards_read: int
    """Surface cards read whole from the PLC's card buffer."""
    cards_refused: int
    """Cards read whole but refused (engine.cards.check_card)."""
    cards_torn: int
    """Card reads discarded because the PLC recorded another card meanwhile."""


class MqttLinkStatus(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="mqtt"):
    """Measurements pushed in from an MQTT broker."""

    connected: bool | None = None
    """Not known: the gateway, not the asset, holds the broker connection."""
    error: str | None
    received: int
    latest_time: float | None


LinkStatus = DirectLinkStatus | ModbusLinkStatus | MqttLinkStatus
"""How the asset reaches its plant; ``kind`` tells which."""


class ControllerStatus(msgspec.Struct, frozen=True, kw_only=True):
    backend: str
    status: str | None
    """The last solve's status; None before the first."""
    solve_time_s: float | None
    reason: str | None
    """The controller's explanation of its last proposal."""
    predicted: dict[str, list[float]] = {}
    """Its last prediction of each output over the horizon, one value per period from
    the proposal's time (output units); empty for a controller that predicts nothing."""
    forecast: str | None = None
    """What the controller sees of the future (engine.forecast): ``site`` (the site
    file's tariff, nomination and forecast series), ``plan v<n>`` (approved plan version
    n, over its hours); None: the current values only."""


class EstimatorStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Kind, estimated parameters, and the last innovation with its chi-square test."""

    kind: str
    parameters: dict[str, EstimatedQuantity]
    innovation: dict[str, Quantity]
    nis: float | None
    dof: int
    nis_threshold: float | None
    significance: float
    anomaly: bool
    anomalies: int
    persistent_anomaly: bool
    recent_anomalies: str


class AssetSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One line of ``GET /assets``."""

    id: str
    kind: str
    mode: Mode
    healthy: bool
    built_at: float | None = None
    """Wall-clock UNIX time of the asset's latest status, s (None before its first)."""
    alarms: dict[str, int] = {}
    """Annunciated alarms (unacknowledged, acknowledged or returned unacknowledged) by
    priority, e.g. {"HIGH": 1}; priorities with none are left out."""


class ExternalWriteSeen(msgspec.Struct, frozen=True, kw_only=True):
    """The latest value of one signal found in the PLC's registers that the gate did not
    write there (a write around the gate), read back at twin time ``time``: ``value``
    (None: not a finite number) against ``gated``, the gate's last write, in ``unit``;
    ``action``: 'restored by the gate' (AUTONOMOUS: its own value, at the rate limit),
    'held' (other modes), or 'unrecorded: ...' (the safety actor did not answer)."""

    signal: str
    value: float | None
    unit: str
    time: float
    gated: float
    action: str


class SignalHealth(msgspec.Struct, frozen=True, kw_only=True):
    """One degradation signal of a health assessment: its fitted ``value`` now against
    its alarm ``limit`` (both in ``unit``), and ``index``, the share of its allowance from
    new to the limit still unused (1 new, 0 at the limit)."""

    signal: str
    unit: str
    value: float
    limit: float
    index: float


class HealthStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Health index and remaining useful life of an asset whose kind assesses them (a
    centrifugal pump: plants.pump_health), from its degradation signals' trends.

    ``health_index`` min over ``signals`` of their indices, 1 new, 0 at an alarm limit;
    ``limiting_signal`` the signal whose limit comes first; ``remaining_life_s`` its
    median remaining life (s from the newest sample) and ``remaining_life_low_s`` /
    ``remaining_life_high_s`` its 10th and 90th percentiles (None: no degradation trend,
    or unbounded); ``reason`` the finding in words."""

    health_index: float
    limiting_signal: str
    remaining_life_s: float | None
    remaining_life_low_s: float | None
    remaining_life_high_s: float | None
    reason: str
    signals: list[SignalHealth]


class AssetStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the twin knows of one asset, as of twin time ``time`` (its last tick)
    and ``revision`` (counted up at every tick and operator action of the asset, so a
    reader can tell a newer snapshot from an older one). ``measurement_age_s`` is the
    newest measurement's age when the status was built."""

    id: str
    kind: str
    mode: Mode
    time: float
    revision: int
    healthy: bool
    link: LinkStatus
    measurement_age_s: float | None
    estimate: dict[str, EstimatedQuantity]
    measurement: dict[str, TimedQuantity]
    setpoints: dict[str, TimedQuantity]
    reference: dict[str, Quantity]
    controller: ControllerStatus
    nis: float | None
    estimator: EstimatorStatus
    period_s: float
    ticks: int
    overruns: int
    errors: list[str]
    outputs_held: bool
    restarted: bool
    external_writes: list[ExternalWriteSeen] = []
    """Writes around the gate read back from the PLC, one per signal, oldest first."""
    alarms: list[AlarmStatus] = []
    """Every alarm of the asset (engine.alarms), in settings order."""
    alarm_flood: bool = False
    """10 or more alarms annunciated in the last 10 minutes (ISA-18.2 flood)."""
    built_at: float | None = None
    """Wall-clock UNIX time the status was built, s (right after the tick's decision or
    the operator command): how old a pushed copy is, e.g. on a live console."""
    kpis: dict[str, Quantity] = {}
    """The kind's KPIs at the last tick's estimate (plants.kpis_of), e.g. a rod pump's
    fillage and Goodman loading (of its newest measured card when there is one);
    recorded as history signals ``kpi.<name>``."""
    health: HealthStatus | None = None
    """Health index and remaining life (kinds that assess them; None before enough
    samples or for other kinds)."""

    def summary(self) -> AssetSummary:
        return AssetSummary(id=self.id, kind=self.kind, mode=self.mode, healthy=self.healthy,
                            built_at=self.built_at, alarms=annunciated(self.alarms))

    def newer_than(self, other: AssetStatus) -> bool:
        """This snapshot supersedes ``other``: a later revision, or a later tick (a
        restarted shard counts revisions from 0 again)."""
        return self.revision > other.revision or self.time > other.time


class StatusBatch(msgspec.Struct, frozen=True, kw_only=True):
    """What one shard pushes after a tick instant (or an operator command): the statuses
    its assets built since its last push, at most ``actors.shard.PUSH_CHUNK`` of them."""

    shard: str
    statuses: list[AssetStatus]


class StatusUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """What the status board hands a reader: every status that changed after the
    reader's ``since``, and the board's ``version`` to ask from next time."""

    version: int
    statuses: list[AssetStatus]


ANNUNCIATED = frozenset({AlarmState.UNACKNOWLEDGED, AlarmState.ACKNOWLEDGED, AlarmState.RTNUN})
"""Alarm states an operator is shown in the alarm list (ISA-18.2's annunciated states)."""


def annunciated(alarms: list[AlarmStatus]) -> dict[str, int]:
    """How many of ``alarms`` are annunciated, by priority (none: left out)."""
    counts: dict[str, int] = {}
    for alarm in alarms:
        if alarm.state in ANNUNCIATED:
            counts[alarm.priority.value] = counts.get(alarm.priority.value, 0) + 1
    return counts


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


_json = msgspec.json.Encoder()


def encode_json(value: msgspec.Struct | list) -> bytes:
    """The HTTP body of a status or summary (NaN and infinities as null)."""
    return _json.encode(value)
