"""The safety policy, without Ray: what reaches a plant and what does not."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import SetpointLimit
from engine.messages import Mode, Outcome, Proposal
from engine.safety import Applied, decide

LIMITS = {"m_oil": SetpointLimit(lower=0.1, upper=10.0, max_rate=0.02)}
LAST = {"m_oil": Applied(value=1.0, time=0.0)}


def proposal(value, t=120.0, source="controller", signal="m_oil"):
    return Proposal(asset="tank-01", time=t, setpoints={signal: value}, reason="test",
                    source=source, user="alice" if source == "operator" else "controller")


def gate(p, mode=Mode.AUTONOMOUS, age=0.0, max_age=math.inf, last=LAST):
    return decide(p, mode=mode, limits=LIMITS, last_applied=last, measurement_age=age,
                  max_measurement_age=max_age)


def test_value_within_limits_and_rate_is_accepted_unchanged():
    decision = gate(proposal(2.0))
    assert decision.applied == {"m_oil": 2.0}
    assert decision.outcome is Outcome.ACCEPTED


def test_rate_limit_clamps_the_step_to_max_rate_times_elapsed():
    """From 1.0 kg/s, 120 s at 0.02 kg/s/s allows at most 1.0 + 2.4 = 3.4 kg/s."""
    decision = gate(proposal(9.0))
    assert decision.applied["m_oil"] == pytest.approx(3.4)
    assert decision.outcome is Outcome.CLAMPED
    assert "rate limit 0.02/s" in decision.records[0].reason


def test_hard_limit_clamps_to_the_violated_bound_and_names_it():
    decision = gate(proposal(50.0), last={"m_oil": Applied(9.9, 0.0)})
    assert decision.applied["m_oil"] == 10.0
    assert "above upper limit 10" in decision.records[0].reason


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "ten"])
def test_non_numbers_are_rejected_and_nothing_is_written(bad):
    decision = gate(proposal(bad))
    assert decision.applied == {}
    assert decision.records[0].outcome is Outcome.REJECTED


def test_unknown_signal_is_rejected():
    decision = gate(proposal(1.0, signal="valve_99"))
    assert decision.applied == {}
    assert "not a writable input" in decision.records[0].reason


@pytest.mark.parametrize(("mode", "source", "outcome"), [
    (Mode.OFF, "controller", Outcome.REJECTED),
    (Mode.OFF, "operator", Outcome.REJECTED),
    (Mode.MANUAL, "controller", Outcome.REJECTED),
    (Mode.MANUAL, "operator", Outcome.ACCEPTED),
    (Mode.ADVISORY, "controller", Outcome.QUEUED),
    (Mode.ADVISORY, "operator", Outcome.ACCEPTED),
    (Mode.AUTONOMOUS, "controller", Outcome.ACCEPTED),
])
def test_modes_decide_who_may_write(mode, source, outcome):
    decision = gate(proposal(1.5, source=source), mode=mode)
    assert decision.records[0].outcome is outcome
    assert (decision.applied != {}) == (outcome is Outcome.ACCEPTED)


def test_stale_measurement_blocks_the_controller_but_not_the_operator():
    stale = gate(proposal(1.5), age=900.0, max_age=600.0)
    assert stale.applied == {}
    assert "measurement stale: age 900.0 s > 600.0 s" in stale.records[0].reason
    assert gate(proposal(1.5, source="operator"), age=900.0, max_age=600.0).applied


def test_every_record_names_user_source_and_requested_value():
    record = gate(proposal(9.0, source="operator")).records[0]
    assert (record.user, record.source, record.requested) == ("alice", "operator", 9.0)


@settings(max_examples=2000, deadline=None)
@given(
    value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12)),
    last=st.floats(0.1, 10.0),
    elapsed=st.floats(0.0, 1e4),
    mode=st.sampled_from(list(Mode)),
)
def test_no_output_leaves_its_limits_or_its_rate(value, last, elapsed, mode):
    decision = decide(proposal(value, t=elapsed), mode=mode, limits=LIMITS,
                      last_applied={"m_oil": Applied(last, 0.0)}, measurement_age=0.0)
    for applied in decision.applied.values():
        assert 0.1 <= applied <= 10.0
        assert abs(applied - last) <= 0.02 * elapsed + 1e-9
