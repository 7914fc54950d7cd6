"""Which alarm statuses become OPC UA condition events, and what the events say; no server
(tests/actors/test_opcua.py has them over a real server and client)."""

from __future__ import annotations

import msgspec
from asyncua import ua

from actors.opcua_alarms import AlarmConditions
from engine.alarm_states import AlarmState, Priority
from engine.alarms import AlarmStatus

NORMAL = AlarmStatus(
    alarm="tank-01:T_bulk.HI", asset="tank-01", name="T_bulk.HI", signal="T_bulk", kind="HI",
    limit=450.0, priority=Priority.CRITICAL, state=AlarmState.NORMAL, active=False, acked=True,
    shelved_until=None, suppressed=False, out_of_service=False, value=440.0, since=None,
    message="")


def moved(**changes) -> AlarmStatus:
    return msgspec.structs.replace(NORMAL, **changes)


def test_only_changes_of_state_become_events_and_retain_marks_what_needs_attention():
    conditions = AlarmConditions(ns=2)
    assert conditions.changes([NORMAL], 1000.0) == []  # first seen, nothing to tell
    raised = moved(state=AlarmState.UNACKNOWLEDGED, active=True, acked=False, value=452.0,
                   since=1100.0)
    [(condition, event, t)] = conditions.changes([raised], 1120.0)
    assert condition == ua.NodeId("tank-01.Alarms.T_bulk.HI", 2) == event.NodeId
    assert t == 1100.0  # the transition's time, not the status's
    assert (event.SourceNode, event.SourceName, event.ConditionName) == (
        ua.NodeId("tank-01", 2), "tank-01", "T_bulk.HI")
    assert (event.Severity, event.Retain) == (900, True)
    assert (getattr(event, "ActiveState/Id"), getattr(event, "AckedState/Id")) == (True, False)
    assert event.Message.Text == "T_bulk.HI UNACKNOWLEDGED: T_bulk HI"
    assert conditions.changes([moved(state=AlarmState.UNACKNOWLEDGED, active=True,
                                     acked=False, value=453.0, since=1100.0)], 1240.0) == []
    cleared = moved(acked=True, since=1300.0)
    [(_, back, _)] = conditions.changes([cleared], 1300.0)
    assert back.Retain is False  # NORMAL: ConditionRefresh no longer sends it


def test_an_acknowledge_must_name_the_conditions_latest_event():
    conditions = AlarmConditions(ns=2)
    [(condition, _, _)] = conditions.changes([moved(
        state=AlarmState.UNACKNOWLEDGED, active=True, acked=False, since=1.0)], 1.0)
    conditions.shown(condition, b"first")
    assert conditions.alarm_of(condition) == ("tank-01", "T_bulk.HI")
    assert conditions.alarm_of(ua.NodeId("tank-01.Alarms.other", 2)) is None
    conditions.shown(condition, b"second")
    assert not conditions.is_latest(condition, b"first")
    assert conditions.is_latest(condition, b"second")
