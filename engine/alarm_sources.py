"""Alarm sources: what an alarm watches, how its condition is judged, and their checks.

A source (engine.config.AlarmSettings) watches one named value. Names are those of the
mapping a host builds from each tick (engine.alarms.AlarmSet.evaluate):

    "<output>"             a measured output, SI                ("T_bulk")
    "estimate.<name>"      a state or estimated parameter       ("estimate.head_factor")
    "kpi.<name>"           a KPI of the asset's kind            ("kpi.health_index")
    "<condition>"          a flag of CONDITIONS, 1 (true) or 0  ("measurement_stale")

The condition of a limit alarm, with deadband b >= 0 (hysteresis) on its limit L:

    HI, HIHI:  v >= L,   and once raised, until v <= L - b
    LO, LOLO:  v <= L,   and once raised, until v >= L + b

and of a ``condition`` alarm: the flag is set. The on-delay holds a rising condition
back until it has lasted ``on_delay_s``, the off-delay a falling one until it has been
gone ``off_delay_s`` (engine.alarms applies them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence

from engine.config import AlarmSettings, Interlock, TripInterlock
from engine.messages import Estimate, Measurement, Mode, Proposal
from engine.safety import tripped_by

CONDITIONS: dict[str, str] = {
    "estimator_anomaly": "the estimator's NIS chi-square test failed this tick (Estimate.anomaly)",
    "measurement_stale": "the newest measurement is older than the asset's max_measurement_age_s",
    "interlock_tripped": "a trip interlock on a signal of this asset is tripped",
    "controller_failed": "the controller's solve failed (Proposal.status 'failed: ...'): it "
                         "holds its last good plan or the applied inputs",
    "asset_off": "the asset is in mode OFF: the twin writes nothing",
}
"""The condition flags of each tick (tick_values builds them), with their meaning."""

ESTIMATE_PREFIX = "estimate."
KPI_PREFIX = "kpi."
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
LIMIT_KINDS = ("HI", "HIHI", "LO", "LOLO")


class AlarmSettingsError(ValueError):
    """A bad alarm source: ``name`` the alarm, ``field`` the setting, ``problem`` why."""

    def __init__(self, name: str, field: str, problem: str) -> None:
        self.name, self.field, self.problem = name, field, problem
        super().__init__(f"alarm {name!r}: {field}: {problem}")


def tick_values(*, measurement: Measurement | None, estimate: Estimate | None,
                proposal: Proposal | None, mode: Mode, measurement_age: float,
                max_measurement_age: float, interlock_tripped: bool,
                kpis: Mapping[str, float] | None = None) -> dict[str, float]:
    """The named values of one tick for AlarmSet.evaluate: the measured outputs, the
    estimated states and parameters as ``estimate.<name>``, the kind's ``kpis`` as
    ``kpi.<name>`` (one left out this tick keeps its last value), and every condition flag
    (1.0 set, 0.0 clear). ``measurement_age`` and ``max_measurement_age`` in twin seconds
    (stale as the safety watchdog judges it: not age <= max); ``interlock_tripped`` from
    interlock_tripped(). A part that is None this tick contributes nothing (and its flag
    is clear)."""
    values: dict[str, float] = dict(measurement.values) if measurement else {}
    if estimate is not None:
        values.update({ESTIMATE_PREFIX + k: v for k, v in estimate.values.items()})
        values.update({ESTIMATE_PREFIX + k: v for k, v in estimate.parameters.items()})
    values.update({KPI_PREFIX + k: v for k, v in (kpis or {}).items()})
    flags = {
        "estimator_anomaly": estimate is not None and estimate.anomaly,
        "measurement_stale": not measurement_age <= max_measurement_age,
        "interlock_tripped": interlock_tripped,
        "controller_failed": proposal is not None and proposal.status.startswith("failed"),
        "asset_off": mode == Mode.OFF,
    }
    values.update({name: float(flag) for name, flag in flags.items()})
    return values


def interlock_tripped(asset: str, interlocks: Sequence[Interlock],
                      measured: Mapping[str, float]) -> bool:
    """A trip interlock that holds or closes a signal of ``asset`` is tripped on the site's
    latest measurements (``"<asset id>.<signal>"``; unmeasured counts as tripped, as the
    safety policy judges it: engine.safety.tripped_by)."""
    prefix = f"{asset}."
    return any(isinstance(lock, TripInterlock)
               and any(s.startswith(prefix) for s in (*lock.hold, *lock.close))
               and tripped_by(lock, measured) is not None for lock in interlocks)


def condition(settings: AlarmSettings, value: float, raised: bool) -> bool:
    """The alarm's condition for ``value`` (module docstring), given whether it was raised
    (after the deadband, before the delays) at the previous evaluation."""
    if settings.kind == "condition":
        return value != 0.0
    limit = float(settings.limit)  # type: ignore[arg-type]  # checked: limit kinds have one
    band = settings.deadband if raised else 0.0
    if settings.kind in ("HI", "HIHI"):
        return value >= limit - band if raised else value >= limit
    return value <= limit + band if raised else value <= limit


def check_alarm_settings(settings: Sequence[AlarmSettings],
                         signals: Collection[str] | None = None) -> None:
    """Raise AlarmSettingsError for the first bad source: a name used twice or not of
    letters, digits, '_', '.', '-'; a limit alarm without a finite limit or a condition
    alarm with one; a negative or non-finite deadband or delay; a maximum shelve time that
    is not positive; a signal not among ``signals`` (when given) and not a condition; a
    ``suppressed_by`` that is neither a condition nor another enabled alarm of the set.
    Disabled alarms are only checked for their name."""
    tags = [s.tag for s in settings]
    enabled = [s.tag for s in settings if s.enabled]
    for s in settings:
        name = s.tag
        if not NAME_PATTERN.fullmatch(name):
            raise AlarmSettingsError(name, "name", "must be letters, digits, '_', '.', '-'")
        if tags.count(name) > 1:
            raise AlarmSettingsError(name, "name", "is used by two alarms of the asset")
        if not s.enabled:
            continue
        if s.kind == "condition":
            if s.signal not in CONDITIONS:
                raise AlarmSettingsError(name, "signal", f"{s.signal!r} is not a condition; "
                                         f"conditions: {', '.join(CONDITIONS)}")
            if s.limit is not None:
                raise AlarmSettingsError(name, "limit", "a condition alarm has no limit")
        else:
            if s.limit is None or not math.isfinite(s.limit):
                raise AlarmSettingsError(name, "limit", f"a {s.kind} alarm needs a finite "
                                         f"limit, got {s.limit}")
            if signals is not None and s.signal not in signals:
                raise AlarmSettingsError(name, "signal", f"unknown signal {s.signal!r}; known: "
                                         f"{', '.join(sorted(signals))}")
        for field in ("deadband", "on_delay_s", "off_delay_s"):
            value = getattr(s, field)
            if not (math.isfinite(value) and value >= 0):
                raise AlarmSettingsError(name, field, f"must be finite and at least 0, "
                                         f"got {value}")
        if not (math.isfinite(s.max_shelve_s) and s.max_shelve_s > 0):
            raise AlarmSettingsError(name, "max_shelve_s", f"must be finite and positive, "
                                     f"got {s.max_shelve_s}")
        for other in s.suppressed_by:
            if other == name or (other not in CONDITIONS and other not in enabled):
                raise AlarmSettingsError(name, "suppressed_by", f"{other!r} is neither a "
                                         "condition nor another enabled alarm of the asset")


def merge_alarm_settings(defaults: Iterable[AlarmSettings],
                         site: Iterable[AlarmSettings]) -> list[AlarmSettings]:
    """A kind's default alarms with the site's over them, by name: a site alarm replaces
    the default of its name (``enabled = false`` switches it off), others are added.
    Merging a merged list again changes nothing."""
    merged = {s.tag: s for s in defaults}
    merged.update({s.tag: s for s in site})
    return list(merged.values())


def alarm_signals(outputs: Iterable[str], estimated: Iterable[str],
                  kpis: Iterable[str] = ()) -> set[str]:
    """The value names an asset's alarms may watch: its outputs, ``estimate.<name>`` of its
    states and estimated parameters, ``kpi.<name>`` of its kind's KPIs, and the
    conditions."""
    return {*outputs, *(ESTIMATE_PREFIX + name for name in estimated),
            *(KPI_PREFIX + name for name in kpis), *CONDITIONS}


def standard_alarms(period_s: float) -> list[AlarmSettings]:
    """The alarms every kind has, for a control period ``period_s`` (twin seconds).

    - estimator_anomaly (LOW): the NIS test fails on five consecutive ticks. At the
      default significance 0.001 a consistent filter does so with probability 1e-15, so
      this is model mismatch or a failing sensor, not chance. On-delay 3.5 periods: the
      fifth tick, with half a period of slack for a late tick.
    - measurement_stale (HIGH): the safety watchdog refuses every controller write.
    - interlock_tripped (HIGH): an interlock acts on the asset.
    - controller_failed (MEDIUM): three consecutive failed solves, each holding the last
      good plan (one is ridden out on it).
    The twin-side alarms are suppressed by design while the asset is OFF (nothing runs).
    """
    three, five = 2.5 * period_s, 3.5 * period_s
    off = ["asset_off"]
    return [
        AlarmSettings(signal="estimator_anomaly", kind="condition", priority="LOW",
                      name="estimator_anomaly", on_delay_s=five, off_delay_s=period_s,
                      suppressed_by=off,
                      message="measurements disagree with the model: check sensors and "
                              "the model's parameters"),
        AlarmSettings(signal="measurement_stale", kind="condition", priority="HIGH",
                      name="measurement_stale",
                      message="no fresh measurement: controller writes are refused"),
        AlarmSettings(signal="interlock_tripped", kind="condition", priority="HIGH",
                      name="interlock_tripped",
                      message="an interlock holds or closes a signal of this asset"),
        AlarmSettings(signal="controller_failed", kind="condition", priority="MEDIUM",
                      name="controller_failed", on_delay_s=three, suppressed_by=off,
                      message="the controller's solves fail: it runs on its last good plan"),
    ]
