"""The alarms of one asset: evaluation from named values, operator actions, flood, memory.

Pure engine code with no Ray: a host (an asset shard) keeps one AlarmSet per asset, calls
``evaluate(t, values)`` after each tick with the tick's named values (engine.alarm_sources:
outputs, ``estimate.<name>``, condition flags), forwards operator actions, and sends the
returned AlarmEvents to the audit, MQTT, OPC UA and the metrics. The state machine is in
engine.alarm_states; the sources and their conditions in engine.alarm_sources.

Times are twin seconds (UNIX) and never go backwards for one set. An alarm is addressed by
its name within the asset or, across a site, by its id ``"<asset>:<name>"`` (asset ids
have no ':').

Anti-chatter: the deadband (engine.alarm_sources) and the delays: a change of the
condition takes effect once it has lasted the on-delay (rising) or off-delay (falling)
at every evaluation since it began; an evaluation that sees it revert restarts the
wait. A value that is missing or NaN this evaluation changes nothing (bad quality is the
measurement_stale alarm's business).

Flood (ISA-18.2 clause 16, EEMUA 191): 10 or more alarms annunciated (entering
UNACKNOWLEDGED) within 10 minutes. Each AlarmSet counts its asset's; a host counts a
site's with one FloodMonitor fed with every asset's events.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec

from engine.alarm_sources import CONDITIONS, check_alarm_settings, condition
from engine.alarm_states import (
    VISIBLE,
    AlarmActionError,
    AlarmCondition,
    AlarmEvent,
    AlarmState,
    Priority,
)
from engine.config import AlarmSettings

SYSTEM_USER = "system"
FLOOD_ALARMS = 10
FLOOD_WINDOW_S = 600.0


def alarm_id(asset: str, name: str) -> str:
    """The site-wide id of alarm ``name`` of ``asset``: ``"<asset>:<name>"``."""
    return f"{asset}:{name}"


def split_alarm_id(identifier: str) -> tuple[str, str]:
    """(asset, name) of an alarm id; ValueError if it is not ``"<asset>:<name>"``."""
    asset, colon, name = identifier.partition(":")
    if not (asset and colon and name):
        raise ValueError(f"alarm id {identifier!r} is not '<asset>:<name>'")
    return asset, name


class FloodMonitor:
    """Counts annunciations (transitions into UNACKNOWLEDGED) in a sliding window:
    flooding while at least ``threshold`` fell within the last ``window_s`` seconds,
    i.e. in (t - window_s, t]."""

    def __init__(self, threshold: int = FLOOD_ALARMS, window_s: float = FLOOD_WINDOW_S) -> None:
        if threshold < 1:
            raise ValueError(f"flood threshold must be at least 1, got {threshold}")
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"flood window_s must be finite and positive, got {window_s}")
        self.threshold, self.window_s = threshold, window_s
        self._times: list[float] = []

    def note(self, events: Iterable[AlarmEvent]) -> None:
        """Count the annunciations among ``events``."""
        self._times.extend(e.time for e in events if e.to_state == AlarmState.UNACKNOWLEDGED)
        self._times.sort()

    def count(self, t: float) -> int:
        """Annunciations in (t - window_s, t]; forgets older ones."""
        self._times = [s for s in self._times if s > t - self.window_s]
        return sum(1 for s in self._times if s <= t)

    def flooding(self, t: float) -> bool:
        return self.count(t) >= self.threshold

    def checkpoint(self) -> list[float]:
        return list(self._times)

    def restore(self, times: Iterable[float]) -> None:
        self._times = sorted(float(s) for s in times)


class AlarmStatus(msgspec.Struct, frozen=True):
    """What an operator sees of one alarm (GET /alarms); flags as OPC UA Part 9's states."""

    alarm: str
    asset: str
    name: str
    signal: str
    kind: str
    limit: float | None
    priority: Priority
    state: AlarmState
    active: bool
    acked: bool
    shelved_until: float | None
    suppressed: bool
    out_of_service: bool
    value: float | None
    since: float | None
    message: str


class _Memory(msgspec.Struct):
    """An AlarmSet's checkpoint, typed for restore."""

    asset: str
    time: float | None
    alarms: dict[str, AlarmCondition]
    inputs: dict[str, float]
    flood: list[float]


class AlarmSet:
    """The enabled alarms of ``asset`` among ``settings`` (checked: AlarmSettingsError, a
    ValueError), e.g. a resolved asset's ``alarms``."""

    def __init__(self, asset: str, settings: Sequence[AlarmSettings]) -> None:
        check_alarm_settings(settings)
        self.asset = asset
        self.settings = {s.tag: s for s in settings if s.enabled}
        self.flood = FloodMonitor()
        self._alarms = {name: AlarmCondition() for name in self.settings}
        self._watched = {s.signal for s in self.settings.values()} | {
            name for s in self.settings.values() for name in s.suppressed_by if name in CONDITIONS}
        self._inputs: dict[str, float] = {}
        self._time: float | None = None

    # -- the process ----------------------------------------------------------------------

    def evaluate(self, t: float, values: Mapping[str, float | bool]) -> list[AlarmEvent]:
        """Judge every alarm at ``t`` on ``values`` (name -> SI value or flag): shelves
        that expired by ``t`` first, then each condition with its deadband and delays,
        then suppression. Returns the transitions, in that order."""
        numbers = _numbers(values)
        events = self.expire(t)
        self._inputs.update({k: v for k, v in numbers.items() if k in self._watched})
        changes = []
        for name, settings in self.settings.items():
            alarm = self._alarms[name]
            value = self._inputs.get(settings.signal)
            if value is not None:
                alarm.value = value
                alarm.raw = condition(settings, value, alarm.raw)
            if alarm.raw == alarm.active:
                alarm.pending_since = None
                continue
            if alarm.pending_since is None:
                alarm.pending_since = t
            delay = settings.on_delay_s if alarm.raw else settings.off_delay_s
            if t - alarm.pending_since >= delay:
                alarm.pending_since = None
                changes.append((name, alarm.raw))
        for name, active in changes:
            events += self._change(name, t, SYSTEM_USER, self._process_reason(name, active),
                                   functools.partial(_set_active, active=active))
        for name, settings in self.settings.items():
            suppressors = [s for s in settings.suppressed_by if self._is_on(s)]
            if bool(suppressors) != self._alarms[name].suppressed:
                reason = (f"suppressed by design: {', '.join(suppressors)}" if suppressors
                          else "suppression by design ended")
                events += self._change(name, t, SYSTEM_USER, reason,
                                       functools.partial(_set_suppressed,
                                                         suppressed=bool(suppressors)))
        return events

    def expire(self, t: float) -> list[AlarmEvent]:
        """End the shelves due by ``t``, each at its own expiry time, oldest first."""
        self._advance(t)
        due = sorted((a.shelved_until, name) for name, a in self._alarms.items()
                     if a.shelved_until is not None and a.shelved_until <= t)
        events: list[AlarmEvent] = []
        for until, name in due:
            events += self._change(name, until, SYSTEM_USER,
                                   "shelve expired; the alarm shows what the process warrants",
                                   _unshelve)
        return events

    # -- operator actions (each returns the expiries due by t, then its own event) ---------

    def acknowledge(self, name: str, t: float, user: str, reason: str = "") -> list[AlarmEvent]:
        """UNACKNOWLEDGED -> ACKNOWLEDGED, RTNUN -> NORMAL."""
        return self._act(name, t, user, reason or "acknowledged", "acknowledge",
                         {AlarmState.UNACKNOWLEDGED, AlarmState.RTNUN}, _acknowledge)

    def shelve(self, name: str, t: float, user: str, duration_s: float,
               reason: str = "") -> list[AlarmEvent]:
        """Shelve an annunciated or normal alarm for ``duration_s`` twin seconds, at most its
        ``max_shelve_s``; it comes back by itself when the time is up."""
        limit = self._settings(name).max_shelve_s
        if not (isinstance(duration_s, int | float) and 0 < duration_s <= limit
                and t + duration_s > t):
            raise ValueError(f"alarm {alarm_id(self.asset, name)!r}: shelve duration_s must be "
                             f"in (0, {limit:g}] s (its max_shelve_s) and end after t = {t}, "
                             f"got {duration_s!r}")

        def shelve(alarm: AlarmCondition) -> None:
            alarm.shelved_until = t + duration_s

        return self._act(name, t, user, reason or f"shelved for {duration_s:g} s", "shelve",
                         VISIBLE, shelve)

    def unshelve(self, name: str, t: float, user: str, reason: str = "") -> list[AlarmEvent]:
        """SHELVED -> what the process warrants."""
        return self._act(name, t, user, reason or "unshelved", "unshelve",
                         {AlarmState.SHELVED}, _unshelve)

    def remove_from_service(self, name: str, t: float, user: str,
                            reason: str = "") -> list[AlarmEvent]:
        """Any state but OUT_OF_SERVICE -> OUT_OF_SERVICE (maintenance); ends a shelve."""
        return self._act(name, t, user, reason or "removed from service", "remove from service",
                         set(AlarmState) - {AlarmState.OUT_OF_SERVICE}, _remove_from_service)

    def return_to_service(self, name: str, t: float, user: str,
                          reason: str = "") -> list[AlarmEvent]:
        """OUT_OF_SERVICE -> SUPPRESSED if suppressed by design, else what the process warrants."""
        return self._act(name, t, user, reason or "returned to service", "return to service",
                         {AlarmState.OUT_OF_SERVICE}, _return_to_service)

    # -- what is shown --------------------------------------------------------------------

    def status(self) -> list[AlarmStatus]:
        """Every alarm of the asset, in settings order."""
        return [self._status(name) for name in self.settings]

    def state(self, name: str) -> AlarmState:
        self._settings(name)
        return self._alarms[name].state

    def flooding(self, t: float) -> bool:
        """The asset is in an alarm flood at ``t``."""
        return self.flood.flooding(t)

    # -- memory -----------------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """The whole alarm state as plain data (JSON- and msgpack-safe)."""
        return msgspec.to_builtins(_Memory(self.asset, self._time, self._alarms,
                                           self._inputs, self.flood.checkpoint()))

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take the state of a checkpoint of this asset. Alarms the checkpoint lacks start
        NORMAL; alarms no longer configured are dropped."""
        try:
            memory = msgspec.convert(dict(data), _Memory)
        except msgspec.ValidationError as error:
            raise ValueError(f"alarm checkpoint of {self.asset!r}: {error}") from None
        if memory.asset != self.asset:
            raise ValueError(f"alarm checkpoint is of asset {memory.asset!r}, not {self.asset!r}")
        self._time = memory.time
        self._alarms = {name: memory.alarms.get(name, AlarmCondition()) for name in self.settings}
        self._inputs = memory.inputs
        self.flood.restore(memory.flood)

    # -- internals --------------------------------------------------------------------------

    def _settings(self, name: str) -> AlarmSettings:
        try:
            return self.settings[name]
        except KeyError:
            raise KeyError(f"asset {self.asset!r} has no alarm {name!r}; alarms: "
                           f"{', '.join(self.settings)}") from None

    def _advance(self, t: float) -> None:
        self._check_time(t)
        self._time = t

    def _check_time(self, t: float) -> None:
        if not math.isfinite(t):
            raise ValueError(f"alarm time t must be finite, got {t}")
        if self._time is not None and t < self._time:
            raise ValueError(f"alarms of {self.asset!r}: time {t} is before the last "
                             f"evaluation {self._time}")

    def _act(self, name: str, t: float, user: str, reason: str, action: str,
             allowed: set[AlarmState] | frozenset[AlarmState],
             apply: Callable[[AlarmCondition], None]) -> list[AlarmEvent]:
        self._settings(name)
        if not user:
            raise ValueError(f"alarm {alarm_id(self.asset, name)!r}: {action} needs a user")
        self._check_time(t)
        at_t = msgspec.structs.replace(self._alarms[name])  # its shelve ended if due, on a copy:
        if at_t.shelved_until is not None and at_t.shelved_until <= t:  # a refusal changes nothing
            _unshelve(at_t)
        if at_t.state not in allowed:
            raise AlarmActionError(f"cannot {action} alarm {alarm_id(self.asset, name)!r}: "
                                   f"it is {at_t.state}")
        return self.expire(t) + self._change(name, t, user, reason, apply)

    def _change(self, name: str, t: float, user: str, reason: str,
                apply: Callable[[AlarmCondition], None]) -> list[AlarmEvent]:
        alarm = self._alarms[name]
        before = alarm.state
        apply(alarm)
        after = alarm.state
        if after == before:
            return []
        alarm.since = t
        events = [AlarmEvent(alarm_id(self.asset, name), self.asset, t, before, after, user,
                             reason, Priority(self.settings[name].priority))]
        self.flood.note(events)
        return events

    def _is_on(self, suppressor: str) -> bool:
        """A condition flag is set, or another alarm of the set is active and in service
        (an alarm out of service, e.g. on a failed instrument, hides nothing)."""
        if suppressor in CONDITIONS:
            return self._inputs.get(suppressor, 0.0) != 0.0
        other = self._alarms[suppressor]
        return other.active and not other.out_of_service

    def _process_reason(self, name: str, active: bool) -> str:
        settings, value = self.settings[name], self._alarms[name].value
        if settings.kind == "condition":
            return f"{settings.signal} {'set' if active else 'cleared'}"
        side = ">=" if settings.kind in ("HI", "HIHI") else "<="
        verb = "raised" if active else "cleared"
        return (f"{settings.kind} {verb}: {settings.signal} = {value:g} "
                f"({side} {settings.limit:g} raises, deadband {settings.deadband:g})")

    def _status(self, name: str) -> AlarmStatus:
        s, a = self.settings[name], self._alarms[name]
        return AlarmStatus(alarm_id(self.asset, name), self.asset, name, s.signal, s.kind, s.limit,
                           Priority(s.priority), a.state, a.active, a.acked, a.shelved_until,
                           a.suppressed, a.out_of_service, a.value, a.since, s.message)


def _numbers(values: Mapping[str, float | bool]) -> dict[str, float]:
    """Finite values as floats (flags as 1.0/0.0); NaN is left out; others are a TypeError."""
    numbers = {}
    for name, value in values.items():
        try:
            number = float(value) if not isinstance(value, str | bytes) else None
        except (TypeError, ValueError):
            number = None
        if number is None:
            raise TypeError(f"alarm value {name!r} must be a number or a flag, got "
                            f"{type(value).__name__}")
        if not math.isnan(number):
            numbers[name] = number
    return numbers


def _set_active(alarm: AlarmCondition, active: bool) -> None:
    if active and not alarm.active and alarm.state in VISIBLE:
        alarm.acked = False
    alarm.active = active


def _set_suppressed(alarm: AlarmCondition, suppressed: bool) -> None:
    alarm.suppressed = suppressed
    if suppressed:
        alarm.shelved_until = None
    alarm.reveal()


def _acknowledge(alarm: AlarmCondition) -> None:
    alarm.acked = True


def _unshelve(alarm: AlarmCondition) -> None:
    alarm.shelved_until = None
    alarm.reveal()


def _remove_from_service(alarm: AlarmCondition) -> None:
    alarm.out_of_service = True
    alarm.shelved_until = None


def _return_to_service(alarm: AlarmCondition) -> None:
    alarm.out_of_service = False
    alarm.reveal()
