"""Storage policy per signal: exception (deadband) filtering, then swinging-door compression.

The two stages of a PI archive, with PI's names, applied in the historian writer:

1. Exception test (PI's ExcDev, ExcMax; Ignition's absolute and percent deadband). A
   value passes when it differs from the last passed value by more than
   ``exception_deviation``, or when ``exception_max_s`` seconds have gone by since the
   last passed value. When a value passes, the value received just before it passes
   too, if it had not (PI does the same: the trend keeps the start of the change).
2. Compression test (PI's CompDev, CompMax: the swinging door of Bristol, 1990). From
   the last archived point A, every later point P_i narrows the door of slopes

       lo = max_i (v_i - v_A - dev) / (t_i - t_A),   hi = min_i (v_i - v_A + dev) / (t_i - t_A).

   A new point whose slope from A falls outside [lo, hi], or that comes more than
   ``compression_max_s`` after A, archives the point held before it, which becomes the
   new A. So the straight line between two archived points stays within
   ``compression_deviation`` of every value received between them.

Deviations are in the signal's SI unit, or percent of its span (upper - lower bound)
when ``percent`` is true. The last value of a series is held until the next one decides
about it (PI's snapshot); ``flush`` archives it. A policy with neither stage keeps every
value (the default).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Iterable, Mapping

import msgspec
import numpy as np

from engine.history import SeriesPoints, SeriesSpec


class StoragePolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Which values of a signal are stored.

    Attributes:
        exception_deviation: ExcDev, signal units (or percent of span); None: no
            exception test.
        exception_max_s: ExcMax, s: a value passes at least this often.
        compression_deviation: CompDev, signal units (or percent of span); None: no
            compression.
        compression_max_s: CompMax, s: a point is archived at least this often.
        percent: deviations are percent of the signal's span (Ignition's percent mode).
    """

    exception_deviation: float | None = None
    exception_max_s: float = math.inf
    compression_deviation: float | None = None
    compression_max_s: float = math.inf
    percent: bool = False

    def __post_init__(self) -> None:
        for name in ("exception_deviation", "compression_deviation"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: must be finite and at least 0, got {value}")
        for name in ("exception_max_s", "compression_max_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")

    def deviations(self, spec: SeriesSpec) -> tuple[float | None, float | None]:
        """(exception, compression) deviations of ``spec``'s series, in its SI unit."""
        if not self.percent:
            return self.exception_deviation, self.compression_deviation
        if not (math.isfinite(spec.span) and spec.span > 0):
            raise ValueError(f"signal {spec.asset}/{spec.signal}: a percent deadband needs a "
                             f"finite span (upper - lower bound), it has {spec.span}")
        return tuple(None if d is None else d / 100.0 * spec.span  # type: ignore[return-value]
                     for d in (self.exception_deviation, self.compression_deviation))


class SeriesFilter:
    """The streaming exception and compression stages of one series."""

    def __init__(self, policy: StoragePolicy, spec: SeriesSpec, with_std: bool) -> None:
        self.asset, self.signal, self.with_std = spec.asset, spec.signal, with_std
        self.exception, self.compression = policy.deviations(spec)
        self.exception_max_s = policy.exception_max_s
        self.compression_max_s = policy.compression_max_s
        self._passed: tuple[float, float] | None = None  # last value through the exception test
        self._previous: tuple[float, float, float, bool] | None = None  # (t, v, std, passed)
        self._archived: tuple[float, float] | None = None  # A
        self._held: tuple[float, float, float] | None = None  # last point through exception
        self._door = (-math.inf, math.inf)

    def apply(self, points: SeriesPoints) -> SeriesPoints:
        """The points of ``points`` to store now, in time order."""
        std = points.std if points.std is not None else np.full(len(points), np.nan)
        out: list[tuple[float, float, float]] = []
        for t, v, s in zip(points.time.tolist(), points.value.tolist(), std.tolist()):
            for point in self._exception(t, v, s):
                self._compress(point, out)
        return self._points(out)

    def flush(self) -> SeriesPoints:
        """The held points (the snapshot), stored now: at the end of a recording."""
        out: list[tuple[float, float, float]] = []
        if self._previous is not None and not self._previous[3]:
            self._compress(self._previous[:3], out)
            self._previous = (*self._previous[:3], True)
        if self._held is not None:
            out.append(self._held)
            self._archived, self._held = self._held[:2], None
        return self._points(out)

    def _exception(self, t: float, v: float, s: float) -> list[tuple[float, float, float]]:
        if self.exception is None:
            return [(t, v, s)]
        passes = self._passed is None or abs(v - self._passed[1]) > self.exception \
            or t - self._passed[0] >= self.exception_max_s
        out = []
        if passes:
            if self._previous is not None and not self._previous[3]:
                out.append(self._previous[:3])
            out.append((t, v, s))
            self._passed = (t, v)
        self._previous = (t, v, s, passes)
        return out

    def _compress(self, point: tuple[float, float, float],
                  out: list[tuple[float, float, float]]) -> None:
        if self.compression is None:
            out.append(point)
            return
        t, v, _ = point
        if self._archived is None:
            out.append(point)
            self._archived = (t, v)
            return
        if self._held is not None:
            ta, va = self._archived
            lo, hi = self._door
            slope = (v - va) / (t - ta) if t > ta else math.copysign(math.inf, v - va)
            if not lo <= slope <= hi or t - ta > self.compression_max_s:
                out.append(self._held)
                self._archived, self._door = self._held[:2], (-math.inf, math.inf)
        ta, va = self._archived
        lo, hi = self._door
        dt = t - ta
        if dt > 0:
            lo, hi = max(lo, (v - va - self.compression) / dt), min(hi, (v - va +
                                                                        self.compression) / dt)
        self._door, self._held = (lo, hi), point

    def _points(self, out: list[tuple[float, float, float]]) -> SeriesPoints:
        array = np.asarray(out, float).reshape(-1, 3)
        return SeriesPoints(self.asset, self.signal, array[:, 0].copy(), array[:, 1].copy(),
                            array[:, 2].copy() if self.with_std else None)


KEEP_ALL = StoragePolicy()


class RollupPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One rollup interval: aggregates (engine.history_query.AGGREGATES) of every series
    per ``interval_s`` seconds (aligned to UNIX time 0), kept ``retention_s`` seconds."""

    interval_s: float
    retention_s: float = math.inf

    def __post_init__(self) -> None:
        if not (math.isfinite(self.interval_s) and self.interval_s > 0):
            raise ValueError(f"interval_s: must be positive and finite, got {self.interval_s}")
        if not self.retention_s > 0:
            raise ValueError(f"retention_s: must be positive, got {self.retention_s}")


class StorageFilter:
    """The storage policies of a site: per history signal name or glob pattern
    (``"estimate.*"``), else ``default``; one SeriesFilter per series, made on its first
    points with its spec from ``specs`` (a store's ``specs``, asked then). A policy that
    cannot apply to a series (a percent deadband without a span) keeps all its values,
    and ``problems`` says why, per series."""

    def __init__(self, policies: Mapping[str, StoragePolicy] | None = None,
                 default: StoragePolicy = KEEP_ALL,
                 specs: Callable[[], Mapping[tuple[str, str], SeriesSpec]] = dict) -> None:
        self.policies = dict(policies or {})
        self.default = default
        self.specs = specs
        self.problems: dict[tuple[str, str], str] = {}
        self._filters: dict[tuple[str, str], SeriesFilter | None] = {}

    def policy(self, signal: str) -> StoragePolicy:
        if signal in self.policies:
            return self.policies[signal]
        return next((p for pattern, p in self.policies.items()
                     if fnmatch.fnmatchcase(signal, pattern)), self.default)

    def apply(self, batch: Iterable[SeriesPoints]) -> list[SeriesPoints]:
        """The points of ``batch`` to store now, per series (empty series left out)."""
        out = []
        for points in batch:
            key = (points.asset, points.signal)
            if key not in self._filters:
                self._filters[key] = self._filter(points)
            series_filter = self._filters[key]
            kept = points if series_filter is None else series_filter.apply(points)
            if len(kept):
                out.append(kept)
        return out

    def _filter(self, points: SeriesPoints) -> SeriesFilter | None:
        policy = self.policy(points.signal)
        if policy == KEEP_ALL:
            return None
        key = (points.asset, points.signal)
        spec = self.specs().get(key) or SeriesSpec(*key, "")
        try:
            return SeriesFilter(policy, spec, points.std is not None)
        except ValueError as error:
            self.problems[key] = f"{error}: all its values are kept"
            return None

    def flush(self) -> list[SeriesPoints]:
        """Every series' held points, to store at the end of a recording."""
        held = [f.flush() for f in self._filters.values() if f is not None]
        return [points for points in held if len(points)]
