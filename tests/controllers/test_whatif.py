"""What-if of a forked twin (controllers.whatif), without Ray: a two-tank asphalt terminal
and a stand-alone tank, forked from a known state (their loops as built, at nominal)."""

from __future__ import annotations

import math
import threading

import msgspec
import numpy as np
import pytest

import plants
from actors.asset import build_loop
from controllers.whatif import Fork, WhatIf, WhatIfCancelled, WhatIfChanges, WhatIfRequest
from engine.config import AssetConfig, SetpointLimit, SiteConfig, SiteSettings, TripInterlock
from engine.messages import Mode
from engine.simulation import SimulatedPlant
from plants import bitumen

T0 = 1.7e9
HH = TripInterlock(name="tank 01 high-high level", when=["terminal.level_01"], above=13.3,
                   close=["terminal.receipt_01"])


@pytest.fixture(scope="module")
def terminal() -> AssetConfig:
    site = plants.resolve_site(SiteConfig(site=SiteSettings(name="whatif"), assets=[AssetConfig(
        id="terminal", kind="asphalt_terminal", mode=Mode.MANUAL, structure={"tanks": 2},
        limits={"receipt_01": SetpointLimit(lower=0.0, upper=40.0),
                "draw_01": SetpointLimit(lower=0.0, upper=30.0)})]))
    return site.assets[0]


@pytest.fixture(scope="module")
def whatif() -> WhatIf:
    return WhatIf()


def fork_of(asset: AssetConfig, interlocks=()) -> Fork:
    loop = build_loop(asset, T0)
    return Fork(asset=asset, time=T0, mode=asset.mode, loop=loop.checkpoint(),
                controller=loop.controller.checkpoint(), interlocks=list(interlocks))


LONG = 300.0
"""timeout_s of the what-ifs here: they test results, not speed (machines are noisy)."""


def first_crossing(run, limit: str):
    return next((c for c in run.kpis.crossings if c.limit == limit), None)


def test_raised_inflow_crosses_the_high_level_alarm_when_a_direct_simulation_does(
        terminal, whatif):
    """Tank 01 (20 m across, at 9 m) receiving 40 kg/s reaches its HI alarm (13 m) after
    (13 - 9) m x rho A / 40 kg/s, about 8.3 h; the baseline (no receipt) never does.
    The what-if's crossing time is the first period a direct lock-step simulation of
    the same plant, state and receipt is at or above the limit."""
    fork = fork_of(terminal)
    result = whatif.run(fork, WhatIfRequest(
        duration_s=86400.0, controller=False, timeout_s=LONG,
        changes=WhatIfChanges(setpoints={"receipt_01": 40.0})))

    model = plants.model_of(terminal)
    plant = SimulatedPlant("terminal", model, msgspec.structs.replace(terminal.simulation,
                                                                      noise=0.0),
                           x0=terminal.initial, u0=terminal.inputs, d=terminal.disturbances)
    plant.apply({"receipt_01": 40.0})
    alarm = next(a for a in terminal.alarms if a.tag == "level_01.HI")
    level = model.outputs.index("level_01")
    k = 0
    while model.output(0, plant.x, plant.u, plant.d, plant.p)[level] < alarm.limit:
        plant.advance(model.dt)
        k += 1
    crossing = first_crossing(result.scenario, "level_01.HI")
    assert crossing is not None and crossing.kind == "alarm"
    assert crossing.first_time_s == k * model.dt
    assert result.scenario.kpis.first_crossing_s <= crossing.first_time_s

    start = result.scenario.trajectories["level_01"].value[0]
    area = math.pi * 20.0 ** 2 / 4
    rho = bitumen.density(433.15, 1.03)
    assert crossing.first_time_s == pytest.approx((alarm.limit - start) * rho * area / 40.0,
                                                  rel=0.1)
    assert first_crossing(result.baseline, "level_01.HI") is None
    assert result.baseline.trajectories["level_01"].value[-1] == pytest.approx(start, abs=0.05)


def test_the_safety_policy_acts_in_the_fork(terminal, whatif):
    """Asked for 55 kg/s, the gate clamps the receipt to its 40 kg/s limit; the tank's
    high-high trip (13.3 m) closes it, so the level stops there instead of filling the
    14 m shell."""
    result = whatif.run(fork_of(terminal, [HH]), WhatIfRequest(
        duration_s=86400.0, controller=False, timeout_s=LONG,
        changes=WhatIfChanges(setpoints={"receipt_01": 55.0})))
    receipt = result.scenario.trajectories["receipt_01"].value
    level = result.scenario.trajectories["level_01"].value
    assert max(receipt) == 40.0
    assert receipt[-1] == 0.0
    assert 13.3 <= max(level) < 13.5
    trip = first_crossing(result.scenario, "tank 01 high-high level")
    assert trip is not None and trip.kind == "interlock"
    assert first_crossing(result.scenario, "bounds.level_01.upper") is None


def test_an_ensemble_gives_bands_around_the_estimate_and_repeats_with_its_seed(terminal,
                                                                               whatif):
    fork = fork_of(terminal)
    request = WhatIfRequest(duration_s=6 * 3600.0, controller=False, samples=12, seed=3,
                            timeout_s=LONG, changes=WhatIfChanges(setpoints={"receipt_01": 50.0}))
    result = whatif.run(fork, request)
    temperature = result.scenario.trajectories["T_bulk_01"]
    value, lower, upper = map(np.array, (temperature.value, temperature.lower,
                                         temperature.upper))
    assert np.all(lower <= value + 1e-9) and np.all(value <= upper + 1e-9)
    assert np.max(upper - lower) > 0.1          # K: the estimate's uncertainty shows
    again = whatif.run(fork, request)
    assert again.scenario.trajectories["T_bulk_01"] == temperature
    single = whatif.run(fork, msgspec.structs.replace(request, samples=1))
    assert single.scenario.trajectories["T_bulk_01"].value == temperature.value


def test_the_controller_runs_in_the_fork(whatif):
    """A stand-alone tank told to reach 170 degC: with its controller the scenario's
    bulk temperature rises above the baseline's; without, the inputs hold and it does
    not."""
    site = plants.resolve_site(SiteConfig(site=SiteSettings(name="whatif"), assets=[
        AssetConfig(id="tank", kind="asphalt_tank", initial={"T_bulk": 433.15})]))
    tank = site.assets[0]
    quick = msgspec.structs.replace(tank.resolved_controller(), horizon=5)
    fork = fork_of(msgspec.structs.replace(tank, controller=quick))
    changes = WhatIfChanges(reference={"T_bulk": 443.15})
    closed = whatif.run(fork, WhatIfRequest(duration_s=3600.0, changes=changes,
                                            timeout_s=LONG))
    opened = whatif.run(fork, WhatIfRequest(duration_s=3600.0, changes=changes,
                                            controller=False, timeout_s=LONG))
    rise = (closed.scenario.trajectories["T_bulk"].value[-1]
            - closed.baseline.trajectories["T_bulk"].value[-1])
    assert rise > 0.5
    assert max(closed.scenario.trajectories["m_oil"].value) > fork.loop["u"][0]
    assert opened.scenario.trajectories == opened.baseline.trajectories


@pytest.mark.parametrize("changes, message", [
    ({"setpoints": {"m_oil": 1.0}}, "changes.setpoints: ['m_oil'] are not writable"),
    ({"setpoints": {"receipt_01": 1e4}}, "receipt_01.*upper bound 60 kg/s"),
    ({"disturbances": {"T_ambient": 100.0}}, "T_ambient"),
    ({"reference": {"level_07": 5.0}}, "level_07"),
    ({"parameters": {"k_foul_01": 50.0}}, "k_foul_01"),
])
def test_a_change_the_asset_refuses_names_the_signal(terminal, whatif, changes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        whatif.run(fork_of(terminal), WhatIfRequest(duration_s=3600.0, timeout_s=LONG,
                                                    changes=WhatIfChanges(**changes)))


@pytest.mark.parametrize("fields, message", [
    ({"duration_s": 0.0}, "duration_s: 0.0 s is outside"),
    ({"duration_s": 8 * 86400.0}, "duration_s"),
    ({"duration_s": 60.0, "samples": 0}, "samples: 0 is outside"),
    ({"duration_s": 60.0, "timeout_s": 0.0}, "timeout_s"),
])
def test_a_request_out_of_bounds_names_the_field_and_bound(fields, message):
    with pytest.raises(ValueError, match=message):
        WhatIfRequest(**fields)


def test_a_cancelled_or_late_what_if_stops(terminal, whatif):
    fork = fork_of(terminal)
    stopped = threading.Event()
    stopped.set()
    with pytest.raises(WhatIfCancelled):
        whatif.run(fork, WhatIfRequest(duration_s=86400.0, controller=False), stopped.is_set)
    with pytest.raises(TimeoutError, match="timeout_s 1e-06 s"):
        whatif.run(fork, WhatIfRequest(duration_s=86400.0, controller=False, timeout_s=1e-6))
