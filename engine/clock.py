"""Clocks that pace a control loop: real time (scaled) and lock-step simulated time.

Both give the twin's time in seconds (UNIX seconds for a real-time clock at speed 1)
and an awaitable ``tick()`` that returns the time of the next period boundary.

RealTimeClock follows SimPy's real-time environment: twin time is a factor on wall
time, ``t = t0 + speed (w - w0)``, read from ``time.monotonic`` inside one process and
anchored to a wall-clock epoch shared by every actor of a site, so that all actors of
one site agree on the twin's time. Strict mode raises when a tick is missed instead
of counting it.

A site restarted on its durable state resumes its clock (``ClockSpec.resumed``) after
the newest twin time it recorded, so that twin time, and every audit time, never goes
backwards across a restart.
"""

from __future__ import annotations

import asyncio
import math
import time


class RealTimeClock:
    """Ticks every ``period`` twin-seconds, ``speed`` twin-seconds per wall second.

    Args:
        period: tick period in twin seconds.
        speed: twin seconds per wall second (1 = real time, 60 = a minute per second).
        epoch: twin time t0 at the wall-clock UNIX time ``wall_epoch`` w0 (shared by the
            actors of one site); defaults to now.
        strict: raise RuntimeError on a missed deadline instead of counting an overrun.
        wall_epoch: w0, wall-clock UNIX time at which twin time is ``epoch``; defaults to
            ``epoch`` (twin time is wall time at speed 1).

    Deadlines are ``epoch + k * period``. If a tick is requested after its deadline has
    passed by one period or more, the missed deadlines count as overruns and are
    skipped: a late loop never bursts to catch up.
    """

    def __init__(
        self, period: float, speed: float = 1.0, epoch: float | None = None, strict: bool = False,
        wall_epoch: float | None = None,
    ) -> None:
        if not period > 0:
            raise ValueError(f"clock period must be positive, got {period} s")
        if not speed > 0:
            raise ValueError(f"clock speed must be positive, got {speed}")
        self.period = float(period)
        self.speed = float(speed)
        self.strict = strict
        wall, mono = time.time(), time.monotonic()
        self.epoch = wall if epoch is None else float(epoch)
        self._mono0 = mono - (wall - (self.epoch if wall_epoch is None else float(wall_epoch)))
        periods_done = math.floor((self.now() - self.epoch) / self.period)
        self._next = self.epoch + self.period * (periods_done + 1)
        self.overruns = 0
        self.ticks = 0

    def now(self) -> float:
        """Twin time, s."""
        return self.epoch + self.speed * (time.monotonic() - self._mono0)

    async def tick(self) -> float:
        """Sleep until the next deadline and return it (twin seconds)."""
        now = self.now()
        missed = math.floor((now - self._next) / self.period) + 1 if now > self._next else 0
        if missed > 0:
            if self.strict:
                raise RuntimeError(
                    f"clock fell behind real time by {now - self._next:.3f} twin-s "
                    f"({missed} period(s) of {self.period} s missed)"
                )
            self.overruns += missed
            self._next += missed * self.period
        await asyncio.sleep(max(0.0, (self._next - self.now()) / self.speed))
        deadline = self._next
        self._next += self.period
        self.ticks += 1
        return deadline


class SimClock:
    """Lock-step clock: time advances one period per ``tick()``, without sleeping.

    For tests, what-if scenarios and planning, as fast as the CPU allows. It never
    overruns.
    """

    def __init__(self, period: float, start: float = 0.0) -> None:
        if not period > 0:
            raise ValueError(f"clock period must be positive, got {period} s")
        self.period = float(period)
        self._t = float(start)
        self.overruns = 0
        self.ticks = 0
        self.speed = math.inf

    def now(self) -> float:
        return self._t

    async def tick(self) -> float:
        self._t += self.period
        self.ticks += 1
        return self._t


class ClockSpec:
    """How every actor of one site makes its clock, so that they agree on time.

    Args:
        lockstep: True for SimClock (each asset steps its simulated plant), False for a
            RealTimeClock.
        speed: twin seconds per wall second (real time only).
        epoch: shared start, twin s: for real time the twin time at wall-clock UNIX time
            ``wall_epoch``, for lock-step the start time; default now.
        wall_epoch: real time: the wall-clock UNIX time at which twin time is ``epoch``;
            default ``epoch`` (twin time is wall time at speed 1).
    """

    def __init__(self, lockstep: bool = False, speed: float = 1.0, epoch: float | None = None,
                 wall_epoch: float | None = None):
        self.lockstep = lockstep
        self.speed = speed
        self.epoch = time.time() if epoch is None else float(epoch)
        self.wall_epoch = self.epoch if wall_epoch is None else float(wall_epoch)

    def now(self) -> float:
        """Twin time now, s (lock-step: the start)."""
        if self.lockstep:
            return self.epoch
        return self.epoch + self.speed * (time.time() - self.wall_epoch)

    def resumed(self, newest: float) -> ClockSpec:
        """This clock for a site that already recorded twin times up to ``newest``
        (s; engine.audit, the safety actor's state): unchanged if its time is already
        past ``newest`` (a real-time site at speed 1 goes on at wall time), else one
        that starts at ``newest`` (lock-step), or reads ``newest`` now and runs on at
        ``speed`` from there (real time): twin time never goes backwards."""
        if not math.isfinite(newest) or newest <= self.now():
            return self
        if self.lockstep:
            return ClockSpec(lockstep=True, speed=self.speed, epoch=newest)
        return ClockSpec(speed=self.speed, epoch=newest, wall_epoch=time.time())

    def make(self, period: float) -> RealTimeClock | SimClock:
        if self.lockstep:
            return SimClock(period, start=self.epoch)
        return RealTimeClock(period, speed=self.speed, epoch=self.epoch,
                             wall_epoch=self.wall_epoch)
