"""Clocks: lock-step time and real-time deadline accounting."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from engine.clock import ClockSpec, RealTimeClock, SimClock


def test_sim_clock_advances_one_period_per_tick_without_sleeping():
    clock = SimClock(60.0, start=1000.0)

    async def three():
        return [await clock.tick() for _ in range(3)]

    assert asyncio.run(three()) == [1060.0, 1120.0, 1180.0]
    assert clock.overruns == 0


def test_real_time_clock_runs_at_its_speed_factor():
    """At 1000x, 50 ms of wall time are about 50 twin-seconds (a loose bound: shared CI)."""
    clock = RealTimeClock(1.0, speed=1000.0)
    before = clock.now()
    time.sleep(0.05)
    assert 45.0 <= clock.now() - before <= 500.0


def test_a_loop_that_blocks_past_its_deadlines_counts_overruns_and_does_not_burst():
    clock = RealTimeClock(0.02, speed=1.0)

    async def late():
        first = await clock.tick()
        time.sleep(0.1)  # blocks through about five deadlines
        second = await clock.tick()
        return first, second

    first, second = asyncio.run(late())
    assert clock.overruns >= 3
    assert second - first >= 0.06  # skipped ahead rather than replaying missed ticks


def test_strict_clock_raises_when_it_falls_behind():
    clock = RealTimeClock(0.01, strict=True)

    async def late():
        await clock.tick()
        time.sleep(0.05)
        await clock.tick()

    with pytest.raises(RuntimeError, match="fell behind real time"):
        asyncio.run(late())


def test_a_lockstep_site_restarted_resumes_after_its_newest_record():
    spec = ClockSpec(lockstep=True, epoch=1.7e9)
    assert spec.resumed(1.7e9 + 840.0).make(120.0).now() == 1.7e9 + 840.0
    assert spec.resumed(1.7e9 - 840.0).make(120.0).now() == 1.7e9  # never back
    assert spec.resumed(-math.inf).make(120.0).now() == 1.7e9  # a new audit database


def test_a_fast_real_time_site_restarted_resumes_from_its_newest_record_not_wall_time():
    """At 60x the twin ran 55,000 s ahead of the wall clock before the restart (issue 11):
    the new clock starts there, not at wall time."""
    newest = time.time() + 55_000.0
    spec = ClockSpec(speed=60.0).resumed(newest)
    clock = spec.make(120.0)
    first = clock.now()
    assert first >= newest
    assert first - time.time() > 50_000.0


def test_a_real_time_site_at_wall_time_goes_on_at_wall_time_after_a_restart():
    spec = ClockSpec(speed=1.0)
    resumed = spec.resumed(time.time() - 3600.0)
    assert (resumed.epoch, resumed.wall_epoch) == (spec.epoch, spec.wall_epoch)
