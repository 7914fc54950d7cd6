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

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)
"""Seconds; fine enough below a millisecond for estimator and fast-MPC steps."""

OUTCOMES = ("accepted", "clamped", "rejected", "queued")


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
        for bound, count in zip((*map(str, self.buckets), "+Inf"), self.counts):
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

    def snapshot(self, asset: str, kind: str) -> dict[str, Any]:
        return {
            "asset": asset, "kind": kind,
            "tick": (self.tick_seconds.cumulative(), self.tick_seconds.total),
            "solve": (self.solve_seconds.cumulative(), self.solve_seconds.total),
            "ticks": self.ticks, "overruns": self.overruns, "decisions": dict(self.decisions),
            "estimates": dict(self.estimates), "nis": self.nis, "anomalies": self.anomalies,
        }


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
        for snap in self.snapshots:
            key = [snap["asset"], snap["kind"]]
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
        yield from (tick, solve, ticks, overruns, decisions, estimate, nis, anomalies)


def render(snapshots: Iterable[Mapping[str, Any]]) -> bytes:
    """Prometheus text exposition of every asset's snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshots(snapshots))
    return generate_latest(registry)
