"""A site's alarms as OPC UA Alarms & Conditions (OPC 10000-9) condition events; no Ray.

Why events and not a ``Status/Alarms`` folder: asyncua (2.x) emits condition events of
``AlarmConditionType`` with every field a Part 9 client reads (its ``event_objects``), keeps
those with ``Retain`` for ConditionRefresh (a client that subscribes late gets the alarms
that need attention), and a stock asyncua client subscribed to the Server object's events
receives them (tests/actors/test_opcua.py). What asyncua lacks is the condition's
*methods*: it binds no Acknowledge. The gateway answers Acknowledge itself
(actors.opcua.GatedCalls) by sending it down the path of ``POST /alarms/{id}/acknowledge``.
Conditions are not exposed as nodes in the address space (Part 9 allows that): a
condition is known by its ConditionId, ``ns=<site ns>;s=<asset>.Alarms.<alarm name>``.

One event per change of an alarm's state, at the twin time of the transition, emitted
by the Server object (``i=2253``), fields:

    SourceNode, SourceName          the asset's node (Objects/Assets/<asset>) and its id
    ConditionId (NodeId attribute)  <asset>.Alarms.<name>
    ConditionName                   the alarm's name within its asset (``T_bulk.HI``)
    Severity, LastSeverity          priority: LOW 200, MEDIUM 500, HIGH 700, CRITICAL 900
    Message                         "<name> <ISA-18.2 state>: <message>"
    Time                            the transition's twin time (UNIX seconds)
    ActiveState(/Id)                the process condition after deadband and delays
    AckedState(/Id)                 acknowledged
    SuppressedState(/Id)            suppressed by design
    OutOfServiceState(/Id)          removed from service
    SuppressedOrShelved             suppressed or shelved (asyncua's event type has no
                                    ShelvingState; the ISA state is in Message)
    Retain                          the alarm is not NORMAL (it needs attention)
"""

from __future__ import annotations

from collections.abc import Iterable

from asyncua import ua
from asyncua.common.event_objects import AlarmCondition

from actors.opcua_space import make_node_id, status_code
from engine.alarm_states import AlarmState
from engine.alarms import AlarmStatus

ACKNOWLEDGE = make_node_id(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)
"""MethodId a client calls on a ConditionId to acknowledge it (Part 9, 5.7.3)."""

EMITTER = make_node_id(ua.ObjectIds.Server)
"""The node whose events carry the alarms: the Server object, as Part 9 clients expect."""


def _state(flag: bool, true: str, false: str) -> ua.LocalizedText:
    return ua.LocalizedText(true if flag else false)


def condition_event(alarm: AlarmStatus, source: ua.NodeId,
                    condition: ua.NodeId) -> AlarmCondition:
    """The AlarmConditionType event that shows ``alarm``'s state now (module docstring);
    EventId and Time are set when it is triggered."""
    event = AlarmCondition(sourcenode=source, severity=alarm.priority.severity,
                           message=f"{alarm.name} {alarm.state}: "
                                   f"{alarm.message or f'{alarm.signal} {alarm.kind}'}")
    event.emitting_node = EMITTER
    event.add_property("NodeId", condition, ua.VariantType.NodeId)  # the ConditionId
    fields = {
        "SourceName": alarm.asset, "ConditionName": alarm.name,
        "LastSeverity": alarm.priority.severity, "Retain": alarm.state != AlarmState.NORMAL,
        "Quality": status_code(ua.StatusCodes.Good),
        "EnabledState": ua.LocalizedText("Enabled"), "EnabledState/Id": True,
        "ActiveState": _state(alarm.active, "Active", "Inactive"),
        "ActiveState/Id": alarm.active,
        "AckedState": _state(alarm.acked, "Acknowledged", "Unacknowledged"),
        "AckedState/Id": alarm.acked,
        "SuppressedState": _state(alarm.suppressed, "Suppressed", "Unsuppressed"),
        "SuppressedState/Id": alarm.suppressed,
        "OutOfServiceState": _state(alarm.out_of_service, "Out of Service", "In Service"),
        "OutOfServiceState/Id": alarm.out_of_service,
        "SuppressedOrShelved": alarm.suppressed or alarm.shelved_until is not None,
    }
    for name, value in fields.items():
        setattr(event, name, value)
    return event


class AlarmConditions:
    """The condition events a site's alarm statuses call for, and the latest EventId of
    each condition (an Acknowledge names the event it acknowledges).

    ``changes(alarms, t)`` returns, for every alarm whose state differs from the last shown
    (or that is first seen and not NORMAL), its ConditionId and the event that shows it,
    with its twin time; ``shown(condition, event_id)`` records the EventId it went out with.
    """

    def __init__(self, ns: int) -> None:
        self.ns = ns
        self._last: dict[str, tuple] = {}
        self._conditions: dict[ua.NodeId, tuple[str, str]] = {}
        self._latest: dict[ua.NodeId, bytes] = {}

    def condition_id(self, asset: str, name: str) -> ua.NodeId:
        return make_node_id(f"{asset}.Alarms.{name}", self.ns)

    def changes(self, alarms: Iterable[AlarmStatus],
                t: float) -> list[tuple[ua.NodeId, AlarmCondition, float]]:
        """(ConditionId, event, time) for the alarms that changed; the time is the
        transition's, else ``t``, the status's time."""
        out = []
        for alarm in alarms:
            key = (alarm.state, alarm.active, alarm.acked, alarm.suppressed,
                   alarm.out_of_service, alarm.shelved_until, alarm.since)
            last = self._last.get(alarm.alarm)
            self._last[alarm.alarm] = key
            if last == key or (last is None and alarm.state == AlarmState.NORMAL):
                continue
            condition = self.condition_id(alarm.asset, alarm.name)
            self._conditions[condition] = (alarm.asset, alarm.name)
            out.append((condition,
                        condition_event(alarm, make_node_id(alarm.asset, self.ns), condition),
                        t if alarm.since is None else alarm.since))
        return out

    def shown(self, condition: ua.NodeId, event_id: bytes) -> None:
        """The event of ``condition`` just triggered went out with ``event_id``."""
        self._latest[condition] = event_id

    def alarm_of(self, condition: ua.NodeId) -> tuple[str, str] | None:
        """(asset, alarm name) of a ConditionId, None if no event has shown it."""
        return self._conditions.get(condition)

    def is_latest(self, condition: ua.NodeId, event_id: bytes) -> bool:
        """``event_id`` is that of the condition's latest event."""
        return self._latest.get(condition) == event_id

