"""No sequence of process values, time and operator actions takes an alarm to a state the
ISA-18.2 state machine does not define, loses a transition, or lets an illegal action
through (hypothesis.stateful against engine.alarms.AlarmSet)."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from engine.alarm_states import VISIBLE, AlarmActionError, AlarmState
from engine.alarms import AlarmSet
from engine.config import AlarmSettings

S = AlarmState
MAX_SHELVE_S = 50.0
SETTINGS = [
    AlarmSettings(signal="x", kind="HI", limit=10.0, deadband=1.0, on_delay_s=2.0,
                  off_delay_s=1.0, suppressed_by=["asset_off", "x.HIHI"],
                  max_shelve_s=MAX_SHELVE_S),
    AlarmSettings(signal="x", kind="HIHI", limit=20.0, max_shelve_s=MAX_SHELVE_S),
]
NAMES = [s.tag for s in SETTINGS]
ALLOWED = {
    "acknowledge": {S.UNACKNOWLEDGED, S.RTNUN},
    "shelve": set(VISIBLE),
    "unshelve": {S.SHELVED},
    "remove_from_service": set(AlarmState) - {S.OUT_OF_SERVICE},
    "return_to_service": {S.OUT_OF_SERVICE},
}


class AlarmMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.alarms = AlarmSet("tank-01", SETTINGS)
        self.t = 0.0
        self.known = {name: S.NORMAL for name in NAMES}  # the states the events told us

    def follow(self, events) -> None:
        """Each event starts where the previous one of its alarm ended, in time order."""
        for event in events:
            name = event.alarm.partition(":")[2]
            assert event.from_state == self.known[name] != event.to_state
            assert event.time <= self.t
            self.known[name] = event.to_state

    @rule(dt=st.floats(0.0, 30.0), x=st.none() | st.floats(-5.0, 30.0),
          off=st.none() | st.booleans())
    def evaluate(self, dt, x, off):
        self.t += dt
        values = {k: v for k, v in (("x", x), ("asset_off", off)) if v is not None}
        self.follow(self.alarms.evaluate(self.t, values))

    @rule(dt=st.floats(0.0, 30.0), name=st.sampled_from(NAMES),
          action=st.sampled_from(sorted(ALLOWED)), duration=st.floats(-10.0, 80.0))
    def operate(self, dt, name, action, duration):
        self.t += dt
        self.follow(self.alarms.expire(self.t))
        state, memory = self.alarms.state(name), self.alarms.checkpoint()
        args = (name, self.t, "olga", duration) if action == "shelve" else (name, self.t, "olga")
        ends = 0 < duration <= MAX_SHELVE_S and self.t + duration > self.t
        if action == "shelve" and not ends:
            with pytest.raises(ValueError, match="max_shelve_s"):
                self.alarms.shelve(*args)
        elif state not in ALLOWED[action]:
            with pytest.raises(AlarmActionError, match=f"it is {state}"):
                getattr(self.alarms, action)(*args)
        else:
            (event,) = getattr(self.alarms, action)(*args)
            assert event.user == "olga"
            self.follow([event])
            return
        assert self.alarms.checkpoint() == memory  # a refused action changes nothing

    @invariant()
    def every_state_is_defined_and_agrees_with_its_condition(self):
        for status in self.alarms.status():
            assert status.state == self.known[status.name]
            if status.state in (S.UNACKNOWLEDGED, S.ACKNOWLEDGED):
                assert status.active
            if status.state in (S.NORMAL, S.RTNUN):
                assert not status.active
            if status.state == S.SHELVED:
                assert self.t < status.shelved_until <= status.since + MAX_SHELVE_S
            else:
                assert status.shelved_until is None

    @invariant()
    def a_restart_restores_the_same_alarms(self):
        restarted = AlarmSet("tank-01", SETTINGS)
        restarted.restore(msgspec.json.decode(msgspec.json.encode(self.alarms.checkpoint())))
        assert restarted.status() == self.alarms.status()


TestAlarmMachine = AlarmMachine.TestCase
TestAlarmMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])
