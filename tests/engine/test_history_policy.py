"""Storage policy: exception (deadband) and swinging-door compression keep what they should."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.history import SeriesPoints, SeriesSpec
from engine.history_policy import SeriesFilter, StorageFilter, StoragePolicy


def _run(policy: StoragePolicy, t, v, spec: SeriesSpec | None = None) -> SeriesPoints:
    """Feed the points one by one (as ticks arrive), then flush the held snapshot."""
    series_filter = SeriesFilter(policy, spec or SeriesSpec("a", "x", "K"), with_std=False)
    kept = [series_filter.apply(SeriesPoints("a", "x", np.array([ti]), np.array([vi])))
            for ti, vi in zip(t, v)]
    kept.append(series_filter.flush())
    return SeriesPoints("a", "x", np.concatenate([k.time for k in kept]),
                        np.concatenate([k.value for k in kept]))


def test_exception_deviation_passes_a_change_and_the_value_before_it():
    t = np.arange(7.0)
    v = np.array([0.0, 0.1, 0.2, 1.5, 1.6, 1.6, 3.0])
    kept = _run(StoragePolicy(exception_deviation=1.0), t, v)
    # 1.5 differs from 0 by more than 1: it passes with 0.2 before it; 3.0 with 1.6
    assert kept.time.tolist() == [0, 2, 3, 5, 6]
    assert kept.value.tolist() == [0.0, 0.2, 1.5, 1.6, 3.0]


def test_exception_max_time_passes_a_steady_value_periodically():
    t = np.arange(10.0)
    kept = _run(StoragePolicy(exception_deviation=1.0, exception_max_s=4.0), t, np.ones(10))
    assert kept.time.tolist() == [0, 3, 4, 7, 8, 9]  # every 4 s, each with the one before


def test_percent_deadband_is_a_percentage_of_the_span():
    spec = SeriesSpec("a", "T_bulk", "K", span=200.0)  # 273.15 .. 473.15 K
    kept = _run(StoragePolicy(exception_deviation=1.0, percent=True), [0, 1, 2, 3],
                [400.0, 401.9, 402.1, 402.2], spec)
    assert kept.value.tolist() == [400.0, 401.9, 402.1, 402.2]  # 2.1 K > 1 % of 200 K
    kept = _run(StoragePolicy(exception_deviation=2.0, percent=True), [0, 1, 2, 3],
                [400.0, 401.9, 402.1, 402.2], spec)
    assert kept.value.tolist() == [400.0, 402.2]  # nothing beyond 4 K; the snapshot flushed
    with pytest.raises(ValueError, match="signal a/nis: a percent deadband needs a finite span"):
        SeriesFilter(StoragePolicy(exception_deviation=1.0, percent=True),
                     SeriesSpec("a", "nis", "1"), with_std=False)


def test_swinging_door_keeps_the_ends_of_a_straight_line():
    t = np.arange(100.0)
    kept = _run(StoragePolicy(compression_deviation=0.01), t, 3.0 * t + 1.0)
    assert kept.time.tolist() == [0.0, 99.0]


def test_swinging_door_keeps_every_value_within_the_deviation_of_the_stored_line():
    t = np.arange(600.0)
    v = np.sin(2 * np.pi * t / 120.0) + 0.3 * np.sin(2 * np.pi * t / 17.0)
    deviation = 0.05
    kept = _run(StoragePolicy(compression_deviation=deviation), t, v)
    assert kept.time[0] == 0.0 and kept.time[-1] == 599.0
    assert len(kept) < 0.4 * t.size  # it compresses
    error = np.abs(np.interp(t, kept.time, kept.value) - v)
    assert error.max() <= deviation + 1e-12
    tighter = _run(StoragePolicy(compression_deviation=deviation / 10), t, v)
    assert len(tighter) > len(kept)


def test_compression_max_time_archives_at_least_that_often():
    t = np.arange(100.0)
    kept = _run(StoragePolicy(compression_deviation=0.01, compression_max_s=10.0), t, 2.0 * t)
    assert np.diff(kept.time).max() <= 10.0
    assert len(kept) >= 10


def test_exception_then_compression_as_pi_does():
    t = np.arange(200.0)
    rng = np.random.default_rng(0)
    v = 0.01 * t + rng.normal(0.0, 0.02, t.size)  # a slow ramp with noise
    both = _run(StoragePolicy(exception_deviation=0.05, compression_deviation=0.2), t, v)
    exception_only = _run(StoragePolicy(exception_deviation=0.05), t, v)
    assert len(both) < len(exception_only) < t.size


def test_storage_filter_chooses_the_policy_per_signal_name_or_pattern():
    storage = StorageFilter({"estimate.*": StoragePolicy(exception_deviation=10.0),
                             "nis": StoragePolicy(compression_deviation=100.0)})
    t = np.arange(5.0)
    batch = [SeriesPoints("a", "estimate.T_bulk", t, t), SeriesPoints("a", "T_bulk", t, t),
             SeriesPoints("a", "nis", t, t)]
    kept = {p.signal: len(p) for p in storage.apply(batch)}
    assert kept == {"estimate.T_bulk": 1, "T_bulk": 5, "nis": 1}  # the first points
    assert {p.signal: p.time.tolist() for p in storage.flush()} == {
        "estimate.T_bulk": [4.0], "nis": [4.0]}  # the held snapshots


@pytest.mark.parametrize("field, value, message", [
    ("exception_deviation", -1.0, "exception_deviation: must be finite and at least 0"),
    ("compression_deviation", math.inf, "compression_deviation: must be finite"),
    ("exception_max_s", 0.0, "exception_max_s: must be positive"),
])
def test_bad_policy_names_the_setting(field, value, message):
    with pytest.raises(ValueError, match=message):
        StoragePolicy(**{field: value})
