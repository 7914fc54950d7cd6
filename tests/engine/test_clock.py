"""Clocks: lock-step time and real-time deadline accounting."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine.clock import RealTimeClock, SimClock


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
