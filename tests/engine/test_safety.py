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
from engine.safety import Applied, SiteView, decide, operator_limit, safe_value, trip_writes

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


def test_high_high_level_closes_filling_at_once():
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
    assert closing.applied == {"receipt_03": 0.0}  # at once, not at 1 kg/s per s
    assert "closed to 0" in closing.records[0].reason


RECEIPT = {"receipt_05": SetpointLimit(lower=0.0, upper=60.0, max_rate=0.1)}
HIGH_HIGH = TripInterlock(name="tank 05 high-high level", when=["terminal.level_05"], above=13.3,
                          close=["terminal.receipt_05"])


def trip(level, last=60.0, limits=RECEIPT, pending=None):
    measured = {} if level is None else {"terminal.level_05": level}
    return trip_writes("terminal", 600.0, limits=limits,
                       last_applied={"receipt_05": Applied(last, 0.0)}, interlocks=[HIGH_HIGH],
                       measured=measured, pending=pending)


def test_a_trip_closes_what_is_already_open_at_once_and_says_why():
    """Issue 9: a receipt open at 60 kg/s into a tank measured above its high-high level
    is closed by the measurement itself, not only when someone writes it again."""
    applied, records = trip(13.4)
    assert applied == {"receipt_05": 0.0}  # at once: the rate limit would allow 60 - 0.1*600
    (record,) = records
    assert (record.outcome, record.source, record.user) == (Outcome.INTERLOCK, "interlock",
                                                            "interlock")
    assert record.reason.startswith("interlock 'tank 05 high-high level': terminal.level_05 "
                                    "13.4 >= 13.3; receipt_05 closed from 60 to its safe value 0")


def test_a_standing_trip_writes_once_and_a_clear_one_not_at_all():
    assert trip(13.4, last=0.0) == ({}, [])  # already closed: no write, no record every tick
    assert trip(13.2) == ({}, [])


@pytest.mark.parametrize("level", [None, math.nan])
def test_a_watched_level_not_measured_or_nan_closes_the_receipt(level):
    applied, records = trip(level)
    assert applied == {"receipt_05": 0.0}
    assert "terminal.level_05 not measured (fail safe)" in records[0].reason


def test_a_pending_close_from_another_shard_is_written_unless_already_safe():
    why = {"receipt_05": "interlock 'x': other.level 9 >= 8 at twin time 590"}
    applied, records = trip(13.2, pending=why)
    assert applied == {"receipt_05": 0.0} and records[0].reason.startswith(why["receipt_05"])
    assert trip(13.2, last=0.0, pending=why) == ({}, [])


def test_a_trip_closes_to_the_configured_safe_value():
    limits = {"receipt_05": SetpointLimit(lower=0.0, upper=60.0, max_rate=0.1, safe=5.0)}
    assert trip(13.4, limits=limits)[0] == {"receipt_05": 5.0}
    assert trip(13.4, last=5.0, limits=limits) == ({}, [])
    assert safe_value("receipt_05", RECEIPT["receipt_05"]) == 0.0  # default: the lower limit
    narrowed = SetpointLimit(lower=10.0, upper=60.0, safe=5.0)  # a retune narrowed the limits
    assert safe_value("receipt_05", narrowed) == 10.0
    with pytest.raises(ValueError, match="signal 'x': no finite safe value"):
        safe_value("x", SetpointLimit())


def test_while_tripped_no_proposal_reopens_a_closed_receipt_in_any_mode():
    site = SiteView(measured={"terminal.level_05": 13.4})
    for mode in Mode:
        for source in ("controller", "operator", "approval", "safe-state"):
            decision = decide(
                Proposal(asset="terminal", time=600.0, setpoints={"receipt_05": 40.0},
                         reason="", source=source, user="olga"),
                mode=mode, limits=RECEIPT, last_applied={"receipt_05": Applied(0.0, 0.0)},
                measurement_age=0.0, interlocks=[HIGH_HIGH], site=site)
            assert decision.applied in ({}, {"receipt_05": 0.0}), (mode, source)
            assert len(decision.records) == 1


@pytest.mark.parametrize("mode", list(Mode))
def test_safe_state_writes_the_safe_value_at_once_in_every_mode(mode):
    """OFF is not an emergency stop (issue 9): a safe-state command is."""
    limits = {"draw_01": SetpointLimit(lower=0.0, upper=30.0, max_rate=0.01),
              "T_supply": SetpointLimit(lower=473.15, upper=573.15, max_rate=0.05, safe=493.15)}
    band = operator_limit("draw_01", 10.0, 30.0, limits["draw_01"])
    decision = decide(
        Proposal(asset="terminal", time=10.0, setpoints={"draw_01": 0.0, "T_supply": 600.0},
                 reason="operator safe-state", source="safe-state", user="olga"),
        mode=mode, limits=limits, operator_limits={"draw_01": band},
        last_applied={"draw_01": Applied(25.0, 0.0), "T_supply": Applied(560.0, 0.0)},
        measurement_age=math.inf, max_measurement_age=600.0)
    # not rate limited (0.1 and 0.5 allowed), below the operator band, stale measurement
    assert decision.applied == {"draw_01": 0.0, "T_supply": 493.15}
    draw, supply = decision.records
    assert (draw.outcome, draw.user, draw.source) == (Outcome.ACCEPTED, "olga", "safe-state")
    assert supply.outcome is Outcome.CLAMPED  # asked 600 K: a safe-state writes the safe value
    assert "safe state: T_supply to its safe value 493.15 at once" in supply.reason


def test_a_safe_value_outside_the_limits_is_refused_at_load():
    from engine.config import ConfigError, parse_site
    site = """
[site]
name = "s"
[[assets]]
id = "tank"
kind = "asphalt_tank"
[assets.limits.m_oil]
lower = 0.1
upper = 10.0
safe = 12.0
"""
    with pytest.raises(ConfigError, match=r"assets\[0\]\.limits\.m_oil\.safe: signal 'm_oil': "
                                          "safe value 12 is above its upper limit 10"):
        parse_site(site)


def test_at_most_n_loading_pumps_run_at_once():
    pumps = [f"terminal.draw_{tag}" for tag in ("01", "02", "03", "04")]
    lock = CountInterlock(name="loading pumps", signals=pumps, max_active=2)
    limits = {f"draw_{tag}": SetpointLimit(lower=0.0, upper=90.0)
              for tag in ("01", "02", "03", "04")}
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
SOURCES = ["controller", "operator", "approval", "safe-state"]
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
    under any mode, an operator band and a tripping interlock (the level moving about its
    trip value), applied one after the other. The one move allowed faster than the rate is
    to a signal's safe value (its lower limit here): a trip's close or a safe-state."""
    rng = random.Random(seed)
    lock = TripInterlock(name="high", when=["tank.level"], above=10.0, hold=["tank.valve"],
                         close=["tank.T_supply"])
    operator = {"m_oil": operator_limit("m_oil", min(band, 5.0), max(band, 5.0), SIGNALS["m_oil"])}
    last = {name: Applied(limit.lower + 0.5 * (limit.upper - limit.lower), 0.0)
            for name, limit in SIGNALS.items()}
    t = 0.0
    for _ in range(BATCH):
        t += rng.choice(steps)
        site = SiteView(measured={"tank.level": rng.choice([level, 20.0 - level])})
        tripped = not site.measured["tank.level"] < lock.above
        setpoints = {name: rng.choice(values) for name in rng.sample(NAMES, rng.randint(0, 5))}
        source = rng.choice(SOURCES)
        decision = decide(Proposal(asset="tank", time=t, setpoints=setpoints, reason="",
                                   source=source),
                          mode=mode, limits=SIGNALS, last_applied=last, measurement_age=1.0,
                          max_measurement_age=600.0, operator_limits=operator,
                          interlocks=[lock], site=site)
        assert set(decision.applied) <= set(SIGNALS) & set(setpoints)
        assert len(decision.records) == len(setpoints)
        for name, value in decision.applied.items():
            limit, before = SIGNALS[name], last[name]
            assert limit.lower <= value <= limit.upper, (name, value)
            allowed = limit.max_rate * max(0.0, t - before.time)
            to_safe = value == limit.lower and (
                source == "safe-state" or (tripped and name == "T_supply"))
            tolerance = 1e-9 * max(1.0, abs(before.value))
            assert to_safe or abs(value - before.value) <= allowed + tolerance
            if tripped and name in ("T_supply", "valve"):
                assert value <= before.value  # a tripped interlock's signals never rise
            last[name] = Applied(value, t)
