"""Metric definitions for the whole fleet, rendered on one Prometheus scrape endpoint.

Each asset keeps an :class:`AssetMetrics` of plain numbers (no registry, no global
state), ships a snapshot on request, and the HTTP ingress renders every asset's
snapshot with :func:`render`. Names follow Prometheus conventions: ``twinloop_``
prefix, base units, counters ending in ``_total``, labels of low cardinality.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from engine.alarm_states import Priority
from engine.messages import Outcome

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)
"""Seconds; fine enough below a millisecond for estimator and fast-MPC steps."""

OUTCOMES = tuple(outcome.value for outcome in Outcome)
"""Every outcome of a safety decision, interlock writes included (engine.messages.Outcome)."""
MALFORMED_REASONS = ("json", "schema", "unknown_asset", "unknown_tag", "non_finite",
                     "out_of_range", "bad_card")
"""Why the MQTT gateway refused a payload (engine.mqtt_codec.REASONS)."""
ALARM_PRIORITIES = tuple(priority.value for priority in Priority)
"""Every alarm priority (engine.alarm_states.Priority)."""


@dataclass
class Histogram:
    """Cumulative-bucket histogram of observations, in seconds."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        running, out = 0, []
        for bound, count in zip((*map(str, self.buckets), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


@dataclass
class AssetMetrics:
    """Counters, gauges and histograms of one asset."""

    tick_seconds: Histogram = field(default_factory=Histogram)
    solve_seconds: Histogram = field(default_factory=Histogram)
    ticks: int = 0
    overruns: int = 0
    decisions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    estimates: dict[str, float] = field(default_factory=dict)
    nis: float = 0.0
    anomalies: int = 0
    alarm_transitions: int = 0
    alarms_active: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(ALARM_PRIORITIES, 0))

    def snapshot(self, asset: str, kind: str) -> dict[str, Any]:
        return {
            "asset": asset, "kind": kind,
            "tick": (self.tick_seconds.cumulative(), self.tick_seconds.total),
            "solve": (self.solve_seconds.cumulative(), self.solve_seconds.total),
            "ticks": self.ticks, "overruns": self.overruns, "decisions": dict(self.decisions),
            "estimates": dict(self.estimates), "nis": self.nis, "anomalies": self.anomalies,
            "alarm_transitions": self.alarm_transitions,
            "alarms_active": dict(self.alarms_active),
        }


@dataclass
class MqttMetrics:
    """Counters of the MQTT gateway: accepted messages and values, refused payloads."""

    messages: int = 0
    points: int = 0
    malformed: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(MALFORMED_REASONS, 0))
    connected: bool = False

    def snapshot(self) -> dict[str, Any]:
        return {"messages": self.messages, "points": self.points,
                "malformed": dict(self.malformed), "connected": self.connected}


class _Mqtt:
    def __init__(self, snapshot: Mapping[str, Any]) -> None:
        self.snapshot = snapshot

    def collect(self):
        snap = self.snapshot
        messages = CounterMetricFamily(
            "twinloop_mqtt_messages", "MQTT measurement messages accepted and ingested")
        messages.add_metric([], snap["messages"])
        points = CounterMetricFamily(
            "twinloop_mqtt_points", "Measured values (tag, value pairs) accepted over MQTT")
        points.add_metric([], snap["points"])
        malformed = CounterMetricFamily(
            "twinloop_mqtt_malformed", "MQTT payloads refused, by reason", labels=["reason"])
        for reason, count in snap["malformed"].items():
            malformed.add_metric([reason], count)
        connected = GaugeMetricFamily(
            "twinloop_mqtt_connected", "1 while the MQTT gateway is connected to its broker")
        connected.add_metric([], float(snap["connected"]))
        yield from (messages, points, malformed, connected)


class _Snapshots:
    def __init__(self, snapshots: Iterable[Mapping[str, Any]]) -> None:
        self.snapshots = list(snapshots)

    def collect(self):
        labels = ["asset", "kind"]
        tick = HistogramMetricFamily(
            "twinloop_tick_duration_seconds", "Wall time of one control tick "
            "(measure, estimate, propose, gate, write)", labels=labels)
        solve = HistogramMetricFamily(
            "twinloop_solver_duration_seconds", "Wall time of one controller solve", labels=labels)
        ticks = CounterMetricFamily("twinloop_ticks", "Control ticks completed", labels=labels)
        overruns = CounterMetricFamily(
            "twinloop_deadline_overruns", "Tick deadlines missed (the loop fell behind its period)",
            labels=labels)
        decisions = CounterMetricFamily(
            "twinloop_safety_decisions", "Setpoint decisions of the safety policy, by outcome",
            labels=[*labels, "outcome"])
        estimate = GaugeMetricFamily(
            "twinloop_estimate", "Estimated state value in its SI unit (see the state label)",
            labels=[*labels, "state"])
        nis = GaugeMetricFamily(
            "twinloop_estimator_nis", "Normalised innovation squared of the last correction",
            labels=labels)
        anomalies = CounterMetricFamily(
            "twinloop_estimator_anomalies", "Corrections whose NIS exceeded the chi-square "
            "threshold at the estimator's significance (a sensor fault or a model mismatch)",
            labels=labels)
        alarms_active = GaugeMetricFamily(
            "twinloop_alarms_active", "Alarms annunciated and active (unacknowledged or "
            "acknowledged), by priority", labels=[*labels, "priority"])
        transitions = CounterMetricFamily(
            "twinloop_alarm_transitions", "Alarm state transitions (process, operator, expiry)",
            labels=labels)
        dropped = CounterMetricFamily(
            "twinloop_history_dropped_records", "Tick records the historian did not get (it "
            "was slow or down); the tick went on", labels=labels)
        for snap in self.snapshots:
            key = [snap["asset"], snap["kind"]]
            for priority, count in snap.get("alarms_active", {}).items():
                alarms_active.add_metric([*key, priority], count)
            transitions.add_metric(key, snap.get("alarm_transitions", 0))
            dropped.add_metric(key, snap.get("history_dropped_records", 0))
            tick.add_metric(key, *snap["tick"])
            solve.add_metric(key, *snap["solve"])
            ticks.add_metric(key, snap["ticks"])
            overruns.add_metric(key, snap["overruns"])
            for outcome, count in snap["decisions"].items():
                decisions.add_metric([*key, outcome], count)
            for state, value in snap["estimates"].items():
                estimate.add_metric([*key, state], value)
            nis.add_metric(key, snap["nis"])
            anomalies.add_metric(key, snap["anomalies"])
        yield from (tick, solve, ticks, overruns, decisions, estimate, nis, anomalies,
                    alarms_active, transitions, dropped)


def render(snapshots: Iterable[Mapping[str, Any]], mqtt: Mapping[str, Any] | None = None
           ) -> bytes:
    """Prometheus text exposition of every asset's snapshot (and the MQTT gateway's)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshots(snapshots))
    if mqtt is not None:
        registry.register(_Mqtt(mqtt))
    return generate_latest(registry)
