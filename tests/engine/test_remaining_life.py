"""Remaining useful life by degradation-path extrapolation (Lu & Meeker 1993, linear path):
the band's coverage on synthetic paths with known truth, robustness, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.remaining_life import History, remaining_life

DAY = 86400.0


def linear_path(rng, *, slope, noise, samples=200, span=DAY, start=1.0, rho=0.0):
    """A falling factor sampled evenly over ``span`` s: truth start + slope t plus AR(1)
    noise of marginal std ``noise`` and lag-1 correlation ``rho``; stds stated as ``noise``."""
    t = np.linspace(0.0, span, samples)
    e = np.empty(samples)
    e[0] = rng.standard_normal()
    for i in range(1, samples):
        e[i] = rho * e[i - 1] + math.sqrt(1 - rho**2) * rng.standard_normal()
    return t, History(t.tolist(), (start + slope * t + noise * e).tolist(),
                      [noise] * samples)


def coverage(rho, samples, runs=300):
    """Fraction of runs whose 10-90 % band holds the true remaining life to 0.95 (a factor
    falling 1 % a day from 1.0 over a day of ``samples``, so 4 days left at the newest)."""
    rng = np.random.default_rng(1)
    slope, inside = -0.01 / DAY, 0
    for _ in range(runs):
        t, history = linear_path(rng, slope=slope, noise=2e-3, samples=samples, rho=rho)
        trend = remaining_life("head_factor", history, 0.95, rising=False, window_s=2 * DAY)
        truth = (0.95 - (1.0 + slope * t[-1])) / slope
        high = math.inf if trend.rul_high_s is None else trend.rul_high_s
        inside += trend.rul_low_s <= truth <= high
    return inside / runs


def test_band_covers_the_true_life_at_its_stated_rate():
    """The 10th-90th percentile band holds the true remaining life in about 80 % of runs
    of independent noise (300 runs: 1 sigma of the fraction is 2.3 points; a little over
    80 % as the stated stds and zero correlation are floors of the covariance)."""
    assert 0.72 <= coverage(rho=0.0, samples=200) <= 0.90


def test_band_keeps_its_rate_when_the_noise_is_correlated_in_time():
    """An estimator's estimates are correlated from sample to sample; with lag-1
    correlation 0.95 (20 samples to forget) the AR(1) factor keeps the band honest. Without
    it the band would be sqrt(39) = 6x too narrow and cover far less than 80 %."""
    assert 0.70 <= coverage(rho=0.95, samples=1000) <= 0.90


def test_median_life_falls_as_the_degradation_proceeds():
    """Along one noisy path the median life, recomputed each quarter day on the last day,
    falls by about the elapsed time (within 0.1 day) and stays near the truth."""
    rng = np.random.default_rng(2)
    slope = -0.02 / DAY
    t, history = linear_path(rng, slope=slope, noise=1e-3, samples=800, span=2 * DAY)
    lives = []
    for end in (400, 500, 600, 700, 800):
        partial = History(history.times[:end], history.values[:end], history.stds[:end])
        trend = remaining_life("efficiency_factor", partial, 0.95, rising=False, window_s=DAY)
        truth = (0.95 - 1.0) / slope - t[end - 1]
        assert trend.degrading
        assert trend.rul_low_s < truth < trend.rul_high_s
        lives.append(trend.rul_median_s)
    assert all(np.diff(lives) < 0)
    assert np.diff(lives) / DAY == pytest.approx(-np.diff(t[[399, 499, 599, 699, 799]]) / DAY,
                                                 abs=0.1)


def test_a_flat_signal_has_no_degradation_trend():
    """A vibration level with noise but no drift: the slope is not significant, the life is
    unknown (None, not infinite) and the reason says so."""
    rng = np.random.default_rng(3)
    t = np.linspace(0.0, DAY, 300)
    values = 1.5e-3 + 1e-4 * rng.standard_normal(t.size)
    trend = remaining_life("vibration", History(t, values, np.full(t.size, 1e-4)), 3e-3,
                           rising=True, window_s=DAY)
    assert not trend.degrading
    assert trend.rul_median_s is None and trend.rul_low_s is None and trend.rul_high_s is None
    assert trend.reason.startswith("no degradation trend")


def test_a_signal_past_its_threshold_has_no_life_left():
    t = np.arange(10.0)
    trend = remaining_life("oil_rise", History(t, 31.0 + 0.1 * t, np.full(10, 0.2)), 30.0,
                           rising=True, window_s=100.0)
    assert trend.rul_median_s == 0.0 and trend.rul_high_s == 0.0
    assert "past its threshold" in trend.reason


def test_one_outlier_does_not_swing_the_slope():
    """A single sample 50 sigma off (a filter transient) moves the Huber fit's slope by less
    than its std; plain weighted least squares would move it by several."""
    rng = np.random.default_rng(4)
    t, clean = linear_path(rng, slope=-0.01 / DAY, noise=1e-3)
    spoiled = list(clean.values)
    spoiled[-20] -= 0.05
    fits = [remaining_life("head_factor", History(t, v, clean.stds), 0.95, rising=False,
                           window_s=DAY) for v in (clean.values, spoiled)]
    assert abs(fits[1].slope - fits[0].slope) < fits[0].slope_std


def test_only_the_window_is_fitted():
    """A pump repaired a day ago: the old, worn samples fall outside a 1-day window and the
    fit sees only the new, flat level."""
    t = np.linspace(0.0, 2 * DAY, 401)
    values = np.where(t < DAY, 0.9 - 0.02 * t / DAY, 1.0)
    trend = remaining_life("head_factor", History(t, values, np.full(t.size, 1e-3)), 0.95,
                           rising=False, window_s=DAY - 1.0)
    assert trend.level == pytest.approx(1.0, abs=1e-9)
    assert trend.samples == 200 and not trend.degrading


@pytest.mark.parametrize(("history", "message"), [
    (History([0.0, 2.0, 1.0], [1.0, 1.0, 1.0], [1e-3] * 3),
     r"head_factor\.times must increase strictly: times\[2\] = 1 s follows 2 s"),
    (History([0.0, 1.0, 2.0], [1.0, math.nan, 1.0], [1e-3] * 3),
     r"head_factor\.values\[1\] = nan is not finite"),
    (History([0.0, 1.0, 2.0], [1.0, 1.0, 1.0], [1e-3, 0.0, 1e-3]),
     r"head_factor\.stds\[1\] = 0 must be positive"),
    (History([0.0, 1.0, 2.0], [1.0, 1.0], [1e-3] * 3),
     r"head_factor: times, values and stds differ in length"),
    (History([0.0, 1.0], [1.0, 1.0], [1e-3] * 2), r"head_factor: 2 samples, need at least 3"),
    (History([0.0, 1.0, 1e4], [1.0] * 3, [1e-3] * 3),
     r"head_factor: 1 samples in the last 3600 s, need at least 3"),
])
def test_bad_history_names_the_signal_and_field(history, message):
    with pytest.raises(ValueError, match=message):
        remaining_life("head_factor", history, 0.95, rising=False, window_s=3600.0)
