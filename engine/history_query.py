"""The historian's query modes, computed from recorded points (NumPy), for every backend.

Modes, named as PI users know them:

- recorded (raw): the stored points. Boundary "inside": since <= t <= until.
  Boundary "outside": those, plus the last point before ``since`` and the first after
  ``until`` (so a trend can be drawn to the edges).
- interpolated: values at t_k = since + k step, t_k <= until. A continuous signal is
  linear between the recorded points around t_k; a discrete one (mode) holds the last
  recorded value at or before t_k. Before the first recorded point there is no value
  (NaN); after the last one a continuous signal has none either, a discrete one holds
  its last value (it lasts until it changes).
- aggregate: per interval [since + k step, since + (k+1) step), up to ``until``, of the
  recorded points in it: ``min``, ``max``, ``mean`` (of the points), ``last``, ``count``
  and ``twmean``, the time-weighted mean

      twmean = 1/step  integral over the interval of v(t) dt

  of the interpolated signal v(t) above (linear, or a step for discrete signals), NaN
  where the recorded points do not cover the whole interval. Empty intervals have count
  0 and NaN elsewhere.

Rollups are these aggregates stored per fixed interval; aggregates at a multiple of the
interval combine them exactly: min of mins, max of maxes, the count-weighted mean of
means, the last non-empty last, the sum of counts, the mean of the twmeans (NaN if any
is NaN).
"""

from __future__ import annotations

import math

import numpy as np

from engine.history import SeriesPoints

AGGREGATES = ("min", "max", "mean", "last", "count", "twmean")


def check_range(since: float, until: float, step: float | None = None) -> int:
    """The number of steps in [since, until); raises ValueError naming the bound."""
    if not (math.isfinite(since) and math.isfinite(until)):
        raise ValueError(f"since {since} and until {until} must be finite UNIX seconds")
    if not until >= since:
        raise ValueError(f"until {until} s is before since {since} s")
    if not math.isfinite(until - since):
        raise ValueError(f"since {since} s to until {until} s is not a finite span")
    if step is None:
        return 0
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"step: must be positive seconds, got {step}")
    steps = math.ceil((until - since) / step)
    if steps > 10_000_000:
        raise ValueError(f"step: {step} s makes {steps} intervals over [{since}, {until}], "
                         "more than 10,000,000")
    return steps


def interpolate(points: SeriesPoints, times: np.ndarray, discrete: bool) -> np.ndarray:
    """Values at ``times`` of the recorded ``points`` (see the module docstring)."""
    t, v = points.time, points.value
    out = np.full(times.shape, np.nan)
    if not t.size:
        return out
    if discrete:
        index = np.searchsorted(t, times, side="right") - 1
        valid = index >= 0
        out[valid] = v[index[valid]]
        return out
    inside = (times >= t[0]) & (times <= t[-1])
    out[inside] = np.interp(times[inside], t, v)
    return out


def _integral(points: SeriesPoints, at: np.ndarray, discrete: bool) -> np.ndarray:
    """Integral of the interpolated signal from the first recorded point to ``at``
    (NaN outside the recorded points)."""
    t, v = points.time, points.value
    out = np.full(at.shape, np.nan)
    if t.size < 2 and not (discrete and t.size):
        return out
    dt = np.diff(t)
    pieces = dt * v[:-1] if discrete else dt * (v[:-1] + v[1:]) / 2
    cumulative = np.concatenate([[0.0], np.cumsum(pieces)])
    k = np.clip(np.searchsorted(t, at, side="right") - 1, 0, t.size - 1)
    inside = (at >= t[0]) & (at <= t[-1]) if not discrete else at >= t[0]
    if discrete:
        partial = (at - t[k]) * v[k]
    else:
        partial = (at - t[k]) * (v[k] + np.interp(at, t, v)) / 2
    out[inside] = (cumulative[k] + partial)[inside]
    return out


def aggregate(points: SeriesPoints, since: float, until: float, step: float,
              discrete: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(interval starts, {aggregate name: value per interval}) of ``points``; the points
    should include those just outside [since, until] for ``twmean`` at the edges."""
    n = check_range(since, until, step)
    starts = since + step * np.arange(n, dtype=float)
    edges = np.append(starts, min(since + step * n, until))
    t, v = points.time, points.value
    first = np.searchsorted(t, edges[:-1], side="left")
    after = np.searchsorted(t, edges[1:], side="left")
    count = after - first
    some = count > 0
    columns = {name: np.full(n, np.nan) for name in AGGREGATES}
    columns["count"] = count.astype(float)
    if some.any():
        columns["min"][some] = _segment(np.minimum, v, first[some], after[some])
        columns["max"][some] = _segment(np.maximum, v, first[some], after[some])
        columns["mean"][some] = _segment(np.add, v, first[some], after[some]) / count[some]
        columns["last"][some] = v[after[some] - 1]
    integral = _integral(points, edges, discrete)
    columns["twmean"] = np.diff(integral) / np.diff(edges)
    return starts, columns


def _segment(ufunc: np.ufunc, v: np.ndarray, first: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``ufunc`` reduced over each non-empty segment v[first:after]."""
    # reduceat over [first_0, after_0, first_1, after_1, ...] takes the even results.
    bounds = np.column_stack([first, after]).ravel()
    padded = np.append(v, v[-1:])  # reduceat needs every index < len
    return ufunc.reduceat(padded, bounds)[::2]


def combine_rollups(starts: np.ndarray, columns: dict[str, np.ndarray], interval: float,
                    since: float, until: float,
                    step: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Aggregates at ``step`` from rollup rows (their interval ``starts`` and columns),
    where ``step`` is a multiple of the rollup ``interval`` and ``since`` aligned to it."""
    n = check_range(since, until, step)
    out_starts = since + step * np.arange(n, dtype=float)
    index = np.floor((starts - since) / step).astype(int)
    keep = (index >= 0) & (index < n)
    index = index[keep]
    c = {name: values[keep] for name, values in columns.items()}
    out = {name: np.full(n, np.nan) for name in AGGREGATES}
    count = np.bincount(index, weights=c["count"], minlength=n)
    out["count"] = count
    some = count > 0
    sums = np.where(c["count"] > 0, c["mean"] * c["count"], 0.0)  # empty rows: mean NaN
    weighted = np.bincount(index, weights=sums, minlength=n)
    out["mean"][some] = weighted[some] / count[some]
    np.fmin.at(out["min"], index, c["min"])
    np.fmax.at(out["max"], index, c["max"])
    filled = c["count"] > 0
    order = np.argsort(starts[keep][filled], kind="stable")
    out["last"][index[filled][order]] = c["last"][filled][order]  # the latest row wins
    covered = np.isfinite(c["twmean"])
    rows = np.bincount(index[covered], minlength=n)
    twsum = np.bincount(index[covered], weights=c["twmean"][covered], minlength=n)
    per_step = round(step / interval)
    full = rows == per_step
    out["twmean"][full] = twsum[full] / per_step
    return out_starts, out
