"""Alarms of one asset: the ISA-18.2 state machine, shelving, suppression, out of service,
anti-chatter, flood and checkpoints (engine.alarms, no Ray)."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from engine.alarm_sources import AlarmSettingsError
from engine.alarm_states import AlarmActionError, AlarmState
from engine.alarms import AlarmSet, FloodMonitor, split_alarm_id
from engine.config import AlarmSettings

S = AlarmState
HI = AlarmSettings(signal="x", kind="HI", limit=10.0, suppressed_by=["asset_off"],
                   max_shelve_s=3600.0)
SHELVE_S = 100.0


class Driver:
    """One HI alarm on ``x`` (limit 10), suppressed while ``asset_off``; steps 1 s apart."""

    def __init__(self, settings: AlarmSettings = HI) -> None:
        self.alarms = AlarmSet("tank-01", [settings])
        self.t = 0.0
        self.alarms.evaluate(self.t, {"x": 0.0, "asset_off": 0})

    def do(self, step: str):
        self.t += 1.0
        a, t = self.alarms, self.t
        return {
            "raise": lambda: a.evaluate(t, {"x": 20.0}),
            "clear": lambda: a.evaluate(t, {"x": 0.0}),
            "suppress": lambda: a.evaluate(t, {"asset_off": True}),
            "unsuppress": lambda: a.evaluate(t, {"asset_off": False}),
            "expire": lambda: a.evaluate(t + SHELVE_S, {}),
            "ack": lambda: a.acknowledge("x.HI", t, "olga"),
            "shelve": lambda: a.shelve("x.HI", t, "olga", SHELVE_S),
            "unshelve": lambda: a.unshelve("x.HI", t, "olga"),
            "remove": lambda: a.remove_from_service("x.HI", t, "mika"),
            "return": lambda: a.return_to_service("x.HI", t, "mika"),
        }[step]()

    @property
    def state(self) -> AlarmState:
        return self.alarms.state("x.HI")


STARTS = {
    "NORMAL": [],
    "UNACKNOWLEDGED": ["raise"],
    "ACKNOWLEDGED": ["raise", "ack"],
    "RTNUN": ["raise", "clear"],
    "SHELVED": ["shelve"],
    "SHELVED, active": ["shelve", "raise"],
    "SUPPRESSED": ["suppress"],
    "SUPPRESSED, active": ["raise", "suppress"],
    "OUT_OF_SERVICE": ["remove"],
    "OUT_OF_SERVICE, active": ["raise", "ack", "remove"],
    "OUT_OF_SERVICE, suppressed": ["remove", "suppress"],
}

ERROR = "error"
TABLE = [
    # start, action, the state after (or ERROR: refused, nothing changes)
    ("NORMAL", "raise", S.UNACKNOWLEDGED),
    ("NORMAL", "clear", S.NORMAL),
    ("NORMAL", "ack", ERROR),
    ("NORMAL", "shelve", S.SHELVED),
    ("NORMAL", "unshelve", ERROR),
    ("NORMAL", "suppress", S.SUPPRESSED),
    ("NORMAL", "remove", S.OUT_OF_SERVICE),
    ("NORMAL", "return", ERROR),
    ("UNACKNOWLEDGED", "raise", S.UNACKNOWLEDGED),
    ("UNACKNOWLEDGED", "clear", S.RTNUN),
    ("UNACKNOWLEDGED", "ack", S.ACKNOWLEDGED),
    ("UNACKNOWLEDGED", "shelve", S.SHELVED),
    ("UNACKNOWLEDGED", "unshelve", ERROR),
    ("UNACKNOWLEDGED", "suppress", S.SUPPRESSED),
    ("UNACKNOWLEDGED", "remove", S.OUT_OF_SERVICE),
    ("UNACKNOWLEDGED", "return", ERROR),
    ("ACKNOWLEDGED", "raise", S.ACKNOWLEDGED),
    ("ACKNOWLEDGED", "clear", S.NORMAL),
    ("ACKNOWLEDGED", "ack", ERROR),
    ("ACKNOWLEDGED", "shelve", S.SHELVED),
    ("ACKNOWLEDGED", "unshelve", ERROR),
    ("ACKNOWLEDGED", "suppress", S.SUPPRESSED),
    ("ACKNOWLEDGED", "remove", S.OUT_OF_SERVICE),
    ("ACKNOWLEDGED", "return", ERROR),
    ("RTNUN", "raise", S.UNACKNOWLEDGED),
    ("RTNUN", "clear", S.RTNUN),
    ("RTNUN", "ack", S.NORMAL),
    ("RTNUN", "shelve", S.SHELVED),
    ("RTNUN", "unshelve", ERROR),
    ("RTNUN", "suppress", S.SUPPRESSED),
    ("RTNUN", "remove", S.OUT_OF_SERVICE),
    ("RTNUN", "return", ERROR),
    ("SHELVED", "raise", S.SHELVED),
    ("SHELVED", "ack", ERROR),
    ("SHELVED", "shelve", ERROR),
    ("SHELVED", "unshelve", S.NORMAL),
    ("SHELVED", "expire", S.NORMAL),
    ("SHELVED", "suppress", S.SUPPRESSED),
    ("SHELVED", "remove", S.OUT_OF_SERVICE),
    ("SHELVED", "return", ERROR),
    ("SHELVED, active", "clear", S.SHELVED),
    ("SHELVED, active", "unshelve", S.UNACKNOWLEDGED),
    ("SHELVED, active", "expire", S.UNACKNOWLEDGED),
    ("SHELVED, active", "ack", ERROR),
    ("SUPPRESSED", "raise", S.SUPPRESSED),
    ("SUPPRESSED", "unsuppress", S.NORMAL),
    ("SUPPRESSED", "ack", ERROR),
    ("SUPPRESSED", "shelve", ERROR),
    ("SUPPRESSED", "unshelve", ERROR),
    ("SUPPRESSED", "remove", S.OUT_OF_SERVICE),
    ("SUPPRESSED", "return", ERROR),
    ("SUPPRESSED, active", "unsuppress", S.UNACKNOWLEDGED),
    ("SUPPRESSED, active", "clear", S.SUPPRESSED),
    ("SUPPRESSED, active", "ack", ERROR),
    ("OUT_OF_SERVICE", "raise", S.OUT_OF_SERVICE),
    ("OUT_OF_SERVICE", "suppress", S.OUT_OF_SERVICE),
    ("OUT_OF_SERVICE", "ack", ERROR),
    ("OUT_OF_SERVICE", "shelve", ERROR),
    ("OUT_OF_SERVICE", "unshelve", ERROR),
    ("OUT_OF_SERVICE", "remove", ERROR),
    ("OUT_OF_SERVICE", "return", S.NORMAL),
    ("OUT_OF_SERVICE, active", "return", S.UNACKNOWLEDGED),
    ("OUT_OF_SERVICE, suppressed", "return", S.SUPPRESSED),
]
OPERATOR = {"ack", "shelve", "unshelve", "remove", "return"}


@pytest.mark.parametrize(("start", "action", "after"), TABLE,
                         ids=[f"{s}-{a}" for s, a, _ in TABLE])
def test_every_transition(start, action, after):
    driver = Driver()
    for step in STARTS[start]:
        driver.do(step)
    before = driver.state
    if after == ERROR:
        with pytest.raises(AlarmActionError, match=f"alarm 'tank-01:x.HI': it is {before}"):
            driver.do(action)
        assert driver.state == before
        return
    events = driver.do(action)
    assert driver.state == after
    if after == before:
        assert events == []
        return
    (event,) = events
    assert (event.alarm, event.asset, event.from_state, event.to_state) == (
        "tank-01:x.HI", "tank-01", before, after)
    assert event.user == ("olga" if action in {"ack", "shelve", "unshelve"} else
                          "mika" if action in OPERATOR else "system")
    assert event.priority == "MEDIUM" and event.reason


def test_the_table_starts_from_every_state_and_tries_every_operator_action_there():
    reached = set()
    for start, steps in STARTS.items():
        driver = Driver()
        for step in steps:
            driver.do(step)
        reached.add(driver.state)
        if "," not in start:
            assert OPERATOR <= {a for s, a, _ in TABLE if s == start}, start
    assert reached == set(AlarmState)


def test_process_transitions_state_the_value_and_the_limit():
    driver = Driver()
    (event,) = driver.do("raise")
    assert event.reason == "HI raised: x = 20 (>= 10 raises, deadband 0)"
    assert driver.alarms.status()[0].value == 20.0


def test_a_shelve_expires_by_itself_at_its_time_even_when_evaluated_later():
    driver = Driver()
    driver.do("raise")
    driver.alarms.shelve("x.HI", 5.0, "olga", 60.0, reason="instrument tech on site")
    assert driver.alarms.evaluate(64.9, {}) == []
    assert driver.state == S.SHELVED
    (event,) = driver.alarms.evaluate(300.0, {})
    assert (event.time, event.user, event.to_state) == (65.0, "system", S.UNACKNOWLEDGED)
    assert "expired" in event.reason


def test_a_refused_action_loses_no_expiry_that_was_due():
    driver = Driver()
    driver.do("raise")
    driver.alarms.shelve("x.HI", 5.0, "olga", 60.0)
    with pytest.raises(AlarmActionError, match="cannot unshelve .* it is UNACKNOWLEDGED"):
        driver.alarms.unshelve("x.HI", 100.0, "olga")  # the shelve ended at 65 s
    (expired,) = driver.alarms.evaluate(101.0, {})
    assert (expired.time, expired.to_state) == (65.0, S.UNACKNOWLEDGED)


def test_a_shelve_longer_than_the_maximum_shelve_time_is_refused():
    driver = Driver()
    with pytest.raises(ValueError, match=r"'tank-01:x.HI'.*\(0, 3600\] s .*got 3601"):
        driver.alarms.shelve("x.HI", 1.0, "olga", 3601.0)
    for bad in (0.0, -5.0, float("nan"), 1e-300):  # the last ends at t itself: 1 + 1e-300 == 1
        with pytest.raises(ValueError, match="max_shelve_s"):
            driver.alarms.shelve("x.HI", 1.0, "olga", bad)
    assert driver.state == S.NORMAL
    driver.alarms.shelve("x.HI", 1.0, "olga", 3600.0)
    assert driver.alarms.status()[0].shelved_until == 3601.0


def test_suppression_ends_a_shelve_and_a_related_alarm_suppresses_by_design():
    driver = Driver()
    driver.do("shelve")
    driver.do("suppress")
    driver.do("unsuppress")
    assert driver.state == S.NORMAL  # the shelve did not outlive the suppression

    hi = AlarmSettings(signal="x", kind="HI", limit=10.0, suppressed_by=["x.HIHI"])
    hihi = AlarmSettings(signal="x", kind="HIHI", limit=20.0)
    alarms = AlarmSet("tank-01", [hi, hihi])
    alarms.evaluate(0.0, {"x": 25.0})
    assert [a.state for a in alarms.status()] == [S.SUPPRESSED, S.UNACKNOWLEDGED]
    events = alarms.evaluate(1.0, {"x": 15.0})  # HIHI clears: the HI shows, unacknowledged
    assert [(e.alarm, e.to_state) for e in events] == [
        ("tank-01:x.HIHI", S.RTNUN), ("tank-01:x.HI", S.UNACKNOWLEDGED)]


def test_a_related_alarm_out_of_service_suppresses_nothing():
    hi = AlarmSettings(signal="x", kind="HI", limit=10.0, suppressed_by=["x.HIHI"])
    alarms = AlarmSet("tank-01", [hi, AlarmSettings(signal="x", kind="HIHI", limit=20.0)])
    alarms.remove_from_service("x.HIHI", 0.0, "mika", reason="transmitter replaced")
    alarms.evaluate(1.0, {"x": 25.0})
    assert [a.state for a in alarms.status()] == [S.UNACKNOWLEDGED, S.OUT_OF_SERVICE]


def test_operator_actions_need_a_known_alarm_and_a_user_and_time_runs_forward():
    driver = Driver()
    with pytest.raises(KeyError, match="no alarm 'y.HI'; alarms: x.HI"):
        driver.alarms.acknowledge("y.HI", 1.0, "olga")
    driver.do("raise")
    with pytest.raises(ValueError, match="acknowledge needs a user"):
        driver.alarms.acknowledge("x.HI", 2.0, "")
    with pytest.raises(ValueError, match="time 0.5 is before the last evaluation 1.0"):
        driver.alarms.evaluate(0.5, {"x": 0.0})
    with pytest.raises(TypeError, match="alarm value 'x' must be a number"):
        driver.alarms.evaluate(3.0, {"x": "hot"})
    assert split_alarm_id("tank-01:x.HI") == ("tank-01", "x.HI")
    with pytest.raises(ValueError, match="not '<asset>:<name>'"):
        split_alarm_id("tank-01.x.HI")


def test_bad_alarm_settings_name_the_alarm_and_the_setting():
    cases = [
        (AlarmSettings(signal="x", kind="HI"), "x.HI.*limit.*finite limit"),
        (AlarmSettings(signal="x", kind="LO", limit=1.0, deadband=-1.0), "deadband"),
        (AlarmSettings(signal="x", kind="LO", limit=1.0, on_delay_s=float("inf")), "on_delay_s"),
        (AlarmSettings(signal="x", kind="LO", limit=1.0, max_shelve_s=0.0), "max_shelve_s"),
        (AlarmSettings(signal="hot", kind="condition"), "'hot' is not a condition"),
        (AlarmSettings(signal="x", kind="HI", limit=1.0, suppressed_by=["x.HIHI"]),
         "suppressed_by.*'x.HIHI' is neither"),
        (AlarmSettings(signal="x", kind="HI", limit=1.0, name="x HI"), "name"),
    ]
    for settings, message in cases:
        with pytest.raises(AlarmSettingsError, match=message):
            AlarmSet("a", [settings])
    with pytest.raises(AlarmSettingsError, match="used by two alarms"):
        AlarmSet("a", [HI, HI])


# -- anti-chatter --------------------------------------------------------------------------------

def noisy_around_the_limit(seed: int = 1) -> np.ndarray:
    """1 Hz samples: 10 below the limit of 10, 200 around it (std 0.5), 10 well below."""
    rng = np.random.default_rng(seed)
    return np.concatenate([np.full(10, 5.0), 10.0 + 0.5 * rng.standard_normal(200),
                           np.full(10, 5.0)])


def annunciations(settings: AlarmSettings, samples, acknowledge: bool = True) -> int:
    """Times the alarm went UNACKNOWLEDGED over the samples (1 s apart), acked at once."""
    alarms, count = AlarmSet("a", [settings]), 0
    for k, value in enumerate(samples):
        events = alarms.evaluate(float(k), {settings.signal: float(value)})
        count += sum(e.to_state == S.UNACKNOWLEDGED for e in events)
        if acknowledge and alarms.state(settings.tag) == S.UNACKNOWLEDGED:
            alarms.acknowledge(settings.tag, float(k), "olga")
    return count


def test_a_deadband_turns_a_noisy_signal_around_its_limit_into_one_alarm():
    samples = noisy_around_the_limit()
    bare = AlarmSettings(signal="x", kind="HI", limit=10.0)
    assert annunciations(bare, samples) > 30  # chattering: the reason for a deadband
    assert annunciations(msgspec.structs.replace(bare, deadband=2.0), samples) == 1


def test_an_on_delay_ignores_short_excursions_and_an_off_delay_short_returns():
    flag = AlarmSettings(signal="controller_failed", kind="condition", on_delay_s=5.0,
                         off_delay_s=5.0)
    blips = [0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0] * 10  # never 6 s in a row
    assert annunciations(flag, blips) == 0
    sustained = [0] * 5 + [1] * 20 + [0, 1, 0, 0, 1] * 10 + [0] * 10
    alarms = AlarmSet("a", [flag])
    times = [t for t, v in enumerate(sustained)
             for e in alarms.evaluate(float(t), {"controller_failed": v})]
    assert times == [10, 80]  # raised 5 s into it (t = 5), cleared 5 s after its last (t = 75)
    assert annunciations(msgspec.structs.replace(flag, on_delay_s=0.0, off_delay_s=0.0),
                         sustained) == 21  # every rising edge, without the delays


def test_a_missing_or_nan_value_changes_nothing():
    driver = Driver()
    driver.do("raise")
    assert driver.alarms.evaluate(5.0, {"x": float("nan")}) == []
    assert driver.alarms.evaluate(6.0, {}) == []
    assert driver.state == S.UNACKNOWLEDGED


# -- flood ---------------------------------------------------------------------------------------

def test_ten_alarms_in_ten_minutes_is_a_flood_per_asset_and_per_site():
    settings = [AlarmSettings(signal=f"s{i}", kind="HI", limit=1.0) for i in range(12)]
    tank, pump = AlarmSet("tank", settings), AlarmSet("pump", settings)
    site = FloodMonitor()
    for i in range(10):  # one new alarm a minute on the tank
        site.note(tank.evaluate(60.0 * i, {f"s{i}": 2.0}))
        assert tank.flooding(60.0 * i) == (i == 9)
    assert not tank.flooding(600.0)  # the first (t = 0) has left the window (0, 600]
    for i in range(5):
        site.note(pump.evaluate(900.0 + i, {f"s{i}": 2.0}))
    assert site.count(904.0) == 9 and not site.flooding(904.0)  # tank: 360 to 540 s; pump 5
    site.note(pump.evaluate(905.0, {"s5": 2.0}))
    assert site.flooding(905.0) and not pump.flooding(905.0)


# -- checkpoints ---------------------------------------------------------------------------------

def test_alarm_state_outlives_a_restart_mid_shelve_and_mid_unacknowledged():
    settings = [HI, AlarmSettings(signal="y", kind="LO", limit=0.0, on_delay_s=30.0)]
    before = AlarmSet("tank-01", settings)
    before.evaluate(0.0, {"x": 20.0, "y": 5.0})
    before.shelve("x.HI", 10.0, "olga", 600.0)
    before.evaluate(20.0, {"y": -1.0})  # an on-delay starts
    before.evaluate(25.0, {"z": 1.0})
    data = msgspec.json.decode(msgspec.json.encode(before.checkpoint()))  # plain data

    after = AlarmSet("tank-01", settings)
    after.restore(data)
    assert after.status() == before.status()
    assert after.evaluate(49.0, {}) == []  # the on-delay still counts from t = 20
    (raised,) = after.evaluate(50.0, {})
    assert (raised.alarm, raised.to_state) == ("tank-01:y.LO", S.UNACKNOWLEDGED)
    assert after.evaluate(609.0, {}) == []
    (expired,) = after.evaluate(700.0, {})
    assert (expired.time, expired.to_state) == (610.0, S.UNACKNOWLEDGED)
    after.acknowledge("y.LO", 701.0, "olga")
    assert after.state("y.LO") == S.ACKNOWLEDGED
    with pytest.raises(ValueError, match="time 1.0 is before"):
        after.evaluate(1.0, {})


def test_a_checkpoint_is_restored_only_into_its_asset_and_new_alarms_start_normal():
    before = Driver()
    before.do("raise")
    other = AlarmSet("tank-02", [HI])
    with pytest.raises(ValueError, match="of asset 'tank-01', not 'tank-02'"):
        other.restore(before.alarms.checkpoint())
    with pytest.raises(ValueError, match="alarm checkpoint of 'tank-01'"):
        AlarmSet("tank-01", [HI]).restore({"asset": "tank-01", "alarms": 3})
    grown = AlarmSet("tank-01", [HI, AlarmSettings(signal="x", kind="HIHI", limit=30.0)])
    grown.restore(before.alarms.checkpoint())
    assert [a.state for a in grown.status()] == [S.UNACKNOWLEDGED, S.NORMAL]
