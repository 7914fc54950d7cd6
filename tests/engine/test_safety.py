"""The safety policy, without Ray: what reaches a plant and what does not."""

from __future__ import annotations

import math
import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config import CountInterlock, SetpointLimit, TripInterlock
from engine.messages import Mode, Outcome, Proposal
from engine.safety import Applied, SiteView, decide, operator_limit

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
    assert "not a writable signal" in decision.records[0].reason


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


def test_approved_proposals_pass_in_advisory_but_not_in_manual_and_not_when_stale():
    approved = msgspec.structs.replace(proposal(1.5), source="approval", user="olga")
    assert gate(approved, mode=Mode.ADVISORY).applied == {"m_oil": 1.5}
    assert gate(approved, mode=Mode.MANUAL).applied == {}
    stale = gate(approved, mode=Mode.ADVISORY, age=900.0, max_age=600.0)
    assert stale.applied == {} and "measurement stale" in stale.records[0].reason
    assert stale.records[0].user == "olga"


def test_operator_limits_narrow_the_band_and_must_lie_inside_the_engineering_limits():
    band = operator_limit("m_oil", 0.5, 2.0, LIMITS["m_oil"])
    decision = decide(proposal(3.0), mode=Mode.AUTONOMOUS, limits=LIMITS, last_applied=LAST,
                      measurement_age=0.0, operator_limits={"m_oil": band})
    assert decision.applied == {"m_oil": 2.0}
    assert "above operator upper limit 2" in decision.records[0].reason
    with pytest.raises(ValueError, match="m_oil: operator upper limit 12 is above the "
                                         "engineering upper limit 10"):
        operator_limit("m_oil", 0.5, 12.0, LIMITS["m_oil"])
    with pytest.raises(ValueError, match="m_oil: operator lower limit 0.05 is below"):
        operator_limit("m_oil", 0.05, 2.0, LIMITS["m_oil"])
    with pytest.raises(ValueError, match="not a finite number"):
        operator_limit("m_oil", math.nan, 2.0, LIMITS["m_oil"])


def test_a_narrowed_band_is_reached_at_the_rate_limit_not_by_a_jump():
    band = operator_limit("m_oil", 0.5, 2.0, LIMITS["m_oil"])
    decision = decide(proposal(9.0, t=10.0), mode=Mode.AUTONOMOUS, limits=LIMITS,
                      last_applied={"m_oil": Applied(9.0, 0.0)}, measurement_age=0.0,
                      operator_limits={"m_oil": band})
    assert decision.applied["m_oil"] == pytest.approx(9.0 - 0.02 * 10.0)


PIPE_LIMITS = {f"pump_speed_{i}": SetpointLimit(lower=0.5, upper=1.0, max_rate=1.0)
               for i in (1, 2, 3)}
MAOP = TripInterlock(name="MAOP", when=[f"line.discharge_pressure_{i}" for i in (1, 2, 3)],
                     above=9.5e6, hold=[f"line.pump_speed_{i}" for i in (1, 2, 3)])


def pipe(setpoints, pressures, t=10.0):
    last = {name: Applied(0.8, 0.0) for name in PIPE_LIMITS}
    measured = {f"line.discharge_pressure_{i}": p for i, p in enumerate(pressures, start=1)}
    return decide(Proposal(asset="line", time=t, setpoints=setpoints, reason="mpc"),
                  mode=Mode.AUTONOMOUS, limits=PIPE_LIMITS, last_applied=last,
                  measurement_age=0.0, interlocks=[MAOP], site=SiteView(measured=measured))


def test_maop_at_any_station_holds_every_pump_speed_but_lets_it_fall():
    held = pipe({"pump_speed_1": 0.95, "pump_speed_3": 0.7}, [8.0e6, 9.6e6, 7.0e6])
    assert held.applied == {"pump_speed_1": 0.8, "pump_speed_3": 0.7}
    assert ("interlock 'MAOP': line.discharge_pressure_2 9.6e+06 >= 9.5e+06; "
            "pump_speed_1 held at 0.8") in held.records[0].reason
    assert pipe({"pump_speed_1": 0.95}, [8.0e6, 9.0e6, 7.0e6]).applied == {"pump_speed_1": 0.95}


def test_a_watched_signal_never_measured_or_nan_trips_the_interlock():
    assert pipe({"pump_speed_1": 0.95}, [8.0e6, math.nan, 7.0e6]).applied == {"pump_speed_1": 0.8}
    assert pipe({"pump_speed_1": 0.95}, [8.0e6]).applied == {"pump_speed_1": 0.8}


def test_high_high_level_closes_filling_at_its_rate():
    limits = {"receipt_03": SetpointLimit(lower=0.0, upper=40.0, max_rate=1.0)}
    lock = TripInterlock(name="tank 03 high-high", when=["terminal.level_03"], above=13.0,
                         close=["terminal.receipt_03"])

    def fill(level, request):
        return decide(Proposal(asset="terminal", time=10.0, setpoints={"receipt_03": request},
                               reason="", source="operator", user="olga"),
                      mode=Mode.MANUAL, limits=limits,
                      last_applied={"receipt_03": Applied(20.0, 0.0)}, measurement_age=0.0,
                      interlocks=[lock], site=SiteView(measured={"terminal.level_03": level}))

    assert fill(12.0, 25.0).applied == {"receipt_03": 25.0}
    closing = fill(13.2, 25.0)
    assert closing.applied == {"receipt_03": 10.0}  # towards 0 at 1 kg/s per s for 10 s
    assert "closed to 0" in closing.records[0].reason


def test_at_most_n_loading_pumps_run_at_once():
    pumps = [f"terminal.draw_{tag}" for tag in ("01", "02", "03", "04")]
    lock = CountInterlock(name="loading pumps", signals=pumps, max_active=2)
    limits = {f"draw_{tag}": SetpointLimit(lower=0.0, upper=90.0) for tag in ("01", "02", "03", "04")}
    last = {name: Applied(0.0, 0.0) for name in limits}

    def start(setpoints, running):
        return decide(Proposal(asset="terminal", time=10.0, setpoints=setpoints, reason="",
                               source="operator", user="olga"),
                      mode=Mode.MANUAL, limits=limits, last_applied=last, measurement_age=0.0,
                      interlocks=[lock], site=SiteView(applied=running))

    both = start({"draw_01": 30.0, "draw_02": 30.0, "draw_03": 30.0}, {})
    assert both.applied == {"draw_01": 30.0, "draw_02": 30.0}
    assert both.records[2].outcome is Outcome.REJECTED
    assert "at most 2 active at once" in both.records[2].reason
    running = {"terminal.draw_01": 30.0, "terminal.draw_02": 30.0}
    assert start({"draw_02": 20.0}, running).applied == {"draw_02": 20.0}  # already running
    assert start({"draw_04": 10.0, "draw_01": 0.0}, running).applied == {"draw_01": 0.0}


# -- the property: 100,000 random proposals, not one output outside its limits or rate --

SIGNALS = {"m_oil": SetpointLimit(lower=0.1, upper=10.0, max_rate=0.02),
           "T_supply": SetpointLimit(lower=473.15, upper=573.15, max_rate=0.05),
           "valve": SetpointLimit(lower=0.0, upper=1.0, max_rate=1e-3)}
NAMES = [*SIGNALS, "valve_99", ""]
SOURCES = ["controller", "operator", "approval"]
BATCH = 500
EXAMPLES = 200

nasty = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e-300, 1e-300),                            # tiny
    st.sampled_from([1e308, -1e308, 10**400, -(10**400)]),  # huge (the ints overflow float)
    st.floats(-1e3, 1e3),                                  # sudden jumps around the bands
    st.floats(0.0, 600.0),
)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(values=st.lists(nasty, min_size=1, max_size=30), steps=st.lists(st.floats(-10.0, 600.0),
       min_size=1, max_size=10), seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(list(Mode)),
       level=st.floats(0.0, 20.0), band=st.floats(0.1, 10.0))
def test_no_output_leaves_its_limits_or_its_rate(values, steps, seed, mode, level, band):
    """EXAMPLES x BATCH = 100,000 proposals: hypothesis draws the nasty values (NaN, Inf,
    huge, tiny, jumps) and time steps (some backwards), a seeded generator combines them
    into proposals of any length (none, some, all, unknown signals) from every source,
    under any mode, an operator band and a tripping interlock, applied one after the other."""
    rng = random.Random(seed)
    lock = TripInterlock(name="high", when=["tank.level"], above=10.0, hold=["tank.valve"],
                         close=["tank.T_supply"])
    operator = {"m_oil": operator_limit("m_oil", min(band, 5.0), max(band, 5.0), SIGNALS["m_oil"])}
    site = SiteView(measured={"tank.level": level})
    last = {name: Applied(limit.lower, 0.0) for name, limit in SIGNALS.items()}
    t = 0.0
    for _ in range(BATCH):
        t += rng.choice(steps)
        setpoints = {name: rng.choice(values) for name in rng.sample(NAMES, rng.randint(0, 5))}
        decision = decide(Proposal(asset="tank", time=t, setpoints=setpoints, reason="",
                                   source=rng.choice(SOURCES)),
                          mode=mode, limits=SIGNALS, last_applied=last, measurement_age=1.0,
                          max_measurement_age=600.0, operator_limits=operator,
                          interlocks=[lock], site=site)
        assert set(decision.applied) <= set(SIGNALS) & set(setpoints)
        assert len(decision.records) == len(setpoints)
        for name, value in decision.applied.items():
            limit, before = SIGNALS[name], last[name]
            assert limit.lower <= value <= limit.upper, (name, value)
            allowed = limit.max_rate * max(0.0, t - before.time)
            assert abs(value - before.value) <= allowed + 1e-9 * max(1.0, abs(before.value))
            last[name] = Applied(value, t)
