"""AssetShard: one Ray actor hosting many assets, each ticking at its own deadlines.

One process costs hundreds of MB (Python, Ray, CasADi, do-mpc, numba), so assets are
packed many to an actor. Each hosted asset (actors.asset.HostedAsset) keeps its own
ControlLoop, period, mode, reference, limits, link and checkpoint. Deadlines are
``epoch + phase + k period`` on the site clock (in real time the fleet spreads the
phases, engine.tick_phases; in lock-step they are 0); the shard's scheduler (one task in
the actor's event loop) wakes at the earliest deadline and runs that instant for every
asset due then, as one task:

    measure each due asset                      (its link: Modbus, plant shard, MQTT)
    loop.advance on the shard's thread pool     (EKF + MPC; bounded: NUMERICS_THREADS)
    safety.decide_batch(all requests, deadline) (ONE call per instant: measurements for
                                                 the interlocks, proposals to decide)
    apply each decision's writes                (interlock and safe-state writes too,
                                                 in every mode)
    safety.store_checkpoints(...)               (fire and forget: off the gating path)
    historian.record(the instant's TickRecords) (fire and forget, actors.historian:
                                                 a slow or dead historian drops, counted)
    board.publish(StatusBatch)                  (fire and forget: the statuses the
                                                 instant built, one message)

Every due asset sends its measurement every tick in every mode (OFF has no proposal).
An asset still busy with its previous tick misses the deadline (an overrun); one late by
a whole period or more skips to its next deadline, counting the missed ones: a late
loop never bursts to catch up. Status queries and operator commands are answered while
the numerics run on the threads. If the safety actor does not answer within
SAFETY_TIMEOUT_S nothing is written: outputs hold, every asset of the instant says so.

In lock-step (tests, ``Fleet.run_for``) ``run_for`` steps through the instants in order,
advancing the simulated plants of the due assets (one call per plant shard) first.

Start and restart: the actor answers at once and builds its assets in the background,
one after the other on its threads, the smallest models first (a large do-mpc problem
takes seconds: the pilot terminal's 17 s on a quiet machine); each asset answers and
runs as soon as it is built. A shard first asks the safety actor for every hosted
asset's restore point (mode, decided reference and tuning, last applied values) in one
call and restores each asset as it is built: a new site on the same durable store keeps
what was decided. Each asset then follows its approved plan again (the site's plan
store, engine.plan_store, unless the plan has ended). Ray restarts a killed shard
(``max_restarts``): the new process also restores each asset's checkpoint, and an asset
that was running in real time runs the deadline it missed at once, then its schedule.

Status push: every asset builds its engine.status.AssetStatus once per tick and once per
operator command; the shard sends those built during an instant to the site's status
board (actors.status_board) as one msgpack-encoded StatusBatch after the instant's
writes (at most PUSH_CHUNK statuses a message), and those of an operator command right
after it. Readers (HTTP, OPC UA, a console) read the board's copy, never the shard: a
reader cannot delay a tick, and a tick's numerics cannot delay a reader. ``status`` and
``summary`` still answer a direct question (tests, and the HTTP fallback while no fresh
status was pushed), counted in ``shard_status()["status_queries"]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import ray

from actors.asset import SAFETY_TIMEOUT_S, HostedAsset, build_loop, safety_down
from actors.historian import HistoryFeed
from engine.cards import CardRecord, SurfaceCard
from engine.clock import ClockSpec
from engine.config import AssetConfig, ModbusSettings
from engine.messages import Decision, GateRequest
from engine.plan_store import PlanStore
from engine.registers import PlcMap
from engine.status import AssetStatus, StatusBatch
from plants import model_of

MAX_RESTARTS = 20
"""How often Ray restarts a killed shard."""
NUMERICS_THREADS = 2
"""Threads for the estimator and controller steps of one shard's assets."""
SAME_INSTANT_S = 1e-6
"""Deadlines closer than this (twin s) are one instant: one batch at the gate."""
RESTORE_TIMEOUT_S = 60.0
"""Wall seconds a restarted shard keeps asking the safety actor for its restore points."""
PUSH_CHUNK = 100
"""Statuses per message to the status board (about 2 kB each): a shard of many assets due
at one instant sends several messages of bounded size rather than one huge one."""


class Shard:
    """Hosts the assets ``assets``; every per-asset method takes the asset id first.
    The actor's code as a plain class (tests run it in-process); AssetShard is the actor.
    Make it inside a running event loop."""

    def __init__(self, name: str, assets: list[AssetConfig], clock: ClockSpec, safety,
                 plants: dict[str, Any], plcs: dict[str, PlcMap],
                 modbus: ModbusSettings = ModbusSettings(), board=None, *,
                 restarted: bool = False, historian: Any = None,
                 plans: str | None = None, phases: dict[str, float] | None = None) -> None:
        """``safety`` is the safety actor's handle, ``board`` the status board's
        (actors.status_board; None: statuses are not pushed), ``historian`` the historian
        actor's (actors.historian; None: nothing is recorded). ``plants`` maps asset id to its
        simulated plant (an actors.directory.AssetHandle onto its plant shard); assets
        without one have a plant outside the twin (MQTT). ``plcs`` maps asset id to its
        PLC's register map: those assets use Modbus TCP. ``restarted``: this process
        replaces a killed one, and restores every asset's checkpoint too. ``plans``: the
        site's plans folder (engine.plan_store.plans_folder; None: no plan is followed).
        ``phases``: each asset's tick phase, twin s (engine.tick_phases; default 0)."""
        self.name = name
        self.clock_spec = clock
        self.lockstep = clock.lockstep
        self.safety = safety
        shortest = min(a.resolved_period_s() for a in assets)
        self._clock = None if self.lockstep else clock.make(shortest)
        self.t = clock.epoch
        """Lock-step: twin time of the last instant run."""
        self.until = clock.epoch
        """Lock-step: twin time up to which ``run_for`` has been asked to run."""
        self.plants = plants
        self.restarted = restarted
        self._numerics = ThreadPoolExecutor(max_workers=max(1, min(NUMERICS_THREADS, len(assets))),
                                            thread_name_prefix=f"numerics-{name}")
        self._configs = list(assets)
        self._plcs = plcs
        self._modbus = modbus
        self._phases = phases or {}
        self.plans = None if plans is None else PlanStore(plans)
        self.assets: dict[str, HostedAsset] = {}
        """The assets built so far (all of them once ``_resumed`` is set)."""
        self._ready = {a.id: asyncio.Event() for a in assets}
        self.resume_error: str | None = None
        self.batches = 0
        """decide_batch calls made for tick instants."""
        self.history = HistoryFeed(historian)
        self._scheduler: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._instants: set[asyncio.Task] = set()
        self._resumed = asyncio.Event()
        self.board = board
        self._pending: dict[str, AssetStatus] = {}
        """Statuses built since the last push, by asset id (the newest of each)."""
        self._instants_running = 0
        self._push_soon: asyncio.Handle | None = None
        self._batch = msgspec.msgpack.Encoder()
        self.status_queries = 0
        """Direct status questions answered (``status``, ``summary``)."""
        # held so that the task is not garbage-collected before it runs
        self._resuming = asyncio.get_event_loop().create_task(self._resume())

    def now(self) -> float:
        """Twin time, s."""
        return self.t if self._clock is None else self._clock.now()

    def pid(self) -> int:
        """The worker process id (tests kill it)."""
        return os.getpid()

    # -- restarts --------------------------------------------------------------------------

    async def _resume(self) -> None:
        """Build every hosted asset, one after the other on the shard's threads, those
        with the fewest states first, and restore each from its restore point (with its
        checkpoint after a restart) and its approved plan; each asset runs again (if it
        was running) as soon as it is ready, so a small asset does not wait for a large
        one to be built."""
        loop = asyncio.get_running_loop()
        try:
            points = await self._restore_points()
            for config in sorted(self._configs, key=lambda a: len(model_of(a).states)):
                control = await loop.run_in_executor(self._numerics, build_loop, config,
                                                     self.clock_spec.epoch)
                asset = HostedAsset(config, control, self.clock_spec.epoch, self.now,
                                    self.safety, self._decide, self._numerics,
                                    self.plants.get(config.id), self._plcs.get(config.id),
                                    self._modbus, self._phases.get(config.id, 0.0))
                # on the threads too: a decided retune builds the asset's controller again
                checkpoint = await loop.run_in_executor(self._numerics, asset.restore,
                                                        points[config.id], self.restarted)
                if self.plans is not None:
                    await asset.restore_plan(self.plans)
                asset.on_status = self._built
                asset.on_card = self.history.send_cards
                asset.publish_status()
                self.history.declare(asset.history_specs())
                if self.lockstep:
                    asset.schedule(asset.last_tick)
                elif checkpoint.get("running"):
                    asset.resume(self.now(), asset.last_tick)
                self.assets[config.id] = asset
                self._ready[config.id].set()
                if asset.running and not self.lockstep:
                    self._ensure_scheduler()
            if self.lockstep:
                self.t = self.until = max(a.last_tick for a in self.assets.values())
        except Exception as error:
            self.resume_error = f"{type(error).__name__}: {error}"
            raise
        finally:
            for ready in self._ready.values():
                ready.set()
            self._resumed.set()

    async def _restore_points(self) -> dict[str, dict[str, Any]]:
        """Every hosted asset's restore point, asked again until the safety actor (which
        may be restarting too) answers."""
        give_up = time.monotonic() + RESTORE_TIMEOUT_S
        while True:
            try:
                return await asyncio.wait_for(
                    self.safety.restore_points.remote(list(self._ready), self.restarted),
                    SAFETY_TIMEOUT_S)
            except (TimeoutError, ray.exceptions.RayActorError):
                if time.monotonic() > give_up:
                    raise
                await asyncio.sleep(0.2)

    # -- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every hosted asset ticking in real time (those already running go on).
        Deadlines count from now, so that those which passed while the rest of the fleet
        was starting are not overruns."""
        await self._resumed.wait()
        for asset in self.assets.values():
            if not asset.running:
                asset.schedule(self.now())
        self._ensure_scheduler()

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            self._scheduler = None
        for asset in self.assets.values():
            asset.k = None

    def _ensure_scheduler(self) -> None:
        if self._scheduler is None or self._scheduler.done():
            self._scheduler = asyncio.create_task(self._schedule())
        self._wake.set()

    async def _schedule(self) -> None:
        """Real time: wake at the earliest deadline, run that instant as a task of its own
        (the next instant does not wait for a slow solve), and sleep again."""
        while True:
            running = [a for a in self.assets.values() if a.running]
            if not running:
                self._scheduler = None
                return
            t = min(a.next_deadline for a in running)
            delay = (t - self.now()) / self.clock_spec.speed
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            now = self.now()
            ready = []
            for asset in running:
                if asset.next_deadline > t + SAME_INSTANT_S:
                    continue
                missed = math.floor((now - asset.next_deadline) / asset.period + 1e-9)
                if missed >= 1 or asset.lock.locked():
                    asset.overruns += max(missed, 1)
                    asset.schedule(now)
                    continue
                asset.take_deadline()
                ready.append(asset)
            if ready:
                task = asyncio.create_task(self._instant(t, ready))
                self._instants.add(task)
                task.add_done_callback(self._instants.discard)

    async def run_for(self, duration: float) -> int:
        """Lock-step: run every instant of the next ``duration`` twin-seconds, in order,
        as fast as possible; returns the number of instants run."""
        await self._resumed.wait()
        self.until += duration
        instants = 0
        while True:
            t = min(a.next_deadline for a in self.assets.values())
            if t > self.until + SAME_INSTANT_S:
                return instants
            due = [a for a in self.assets.values() if a.next_deadline <= t + SAME_INSTANT_S]
            for asset in due:
                asset.take_deadline()
            self.t = t
            await self._advance_plants(t, due)
            await self._instant(t, due)
            instants += 1

    async def _advance_plants(self, t: float, due: list[HostedAsset]) -> None:
        """Lock-step: integrate the due assets' simulated plants to ``t``, one call per
        plant shard. A plant that does not answer is left behind: its asset's link then
        reports the fault."""
        by_shard: dict[Any, list[str]] = {}
        for asset in due:
            plant = self.plants.get(asset.id)
            if plant is not None:
                by_shard.setdefault(plant.actor, []).append(asset.id)
        await asyncio.gather(*(shard.advance_to.remote(t, ids) for shard, ids in by_shard.items()),
                             return_exceptions=True)

    async def _instant(self, t: float, due: list[HostedAsset]) -> None:
        """One tick instant of the assets ``due``: their numerical halves, ONE gate call
        for all of them, their writes, and their checkpoints to the safety actor."""
        started = time.perf_counter()
        due = sorted(due, key=lambda a: a.id)
        self._instants_running += 1
        try:
            async with contextlib.AsyncExitStack() as held:
                for asset in due:
                    await held.enter_async_context(asset.lock)
                requests = await asyncio.gather(*(asset.advance(t) for asset in due))
                decisions, error = await self._decide(list(requests))
                self.batches += 1
                answers: list[Decision | None] = ([None] * len(due) if decisions is None
                                                  else list(decisions))
                results = await asyncio.gather(*(
                    asset.complete(request, decision, error, started)
                    for asset, request, decision in zip(due, requests, answers, strict=True)))
        finally:
            self._instants_running -= 1
            self._push()
        self.safety.store_checkpoints.remote({asset.id: asset.checkpoint() for asset in due})
        self.history.send([asset.tick_record(result)
                           for asset, result in zip(due, results, strict=True)])

    # -- status push -----------------------------------------------------------------------

    def _built(self, status: AssetStatus) -> None:
        """An asset built its status: keep it for the next push. Outside a tick instant
        (an operator command) the push follows as soon as the command's task yields."""
        self._pending[status.id] = status
        if self._instants_running == 0 and self._push_soon is None:
            self._push_soon = asyncio.get_running_loop().call_soon(self._push)

    def _push(self) -> None:
        """Send the pending statuses to the board, PUSH_CHUNK a message; fire and forget
        (a board that is down loses them: the next tick pushes again)."""
        self._push_soon = None
        if not self._pending:
            return
        statuses = list(self._pending.values())
        self._pending.clear()
        if self.board is None:
            return
        for first in range(0, len(statuses), PUSH_CHUNK):
            self.board.publish.remote(self._batch.encode(
                StatusBatch(shard=self.name, statuses=statuses[first:first + PUSH_CHUNK])))

    async def _decide(self, requests: list[GateRequest]
                      ) -> tuple[list[Decision] | None, str | None]:
        """One decide_batch call; (None, why) if the safety actor does not answer within
        SAFETY_TIMEOUT_S (it drops a request that reaches it later): fail closed."""
        deadline = time.time() + SAFETY_TIMEOUT_S
        try:
            decisions = await asyncio.wait_for(
                self.safety.decide_batch.remote(requests, deadline), SAFETY_TIMEOUT_S)
            if decisions is None:
                raise TimeoutError("answered after the deadline")
        except (TimeoutError, ray.exceptions.RayActorError) as error:
            return None, safety_down(error, "nothing written, outputs hold their last safe value")
        return decisions, None

    # -- per asset: operator commands ------------------------------------------------------

    async def _hosted(self, asset_id: str) -> HostedAsset:
        """The asset once it is built (and restored); LookupError if it is not hosted
        here, RuntimeError if it could not be built or restored."""
        ready = self._ready.get(asset_id)
        if ready is None:
            raise LookupError(f"asset {asset_id!r} is not hosted by {self.name}")
        await ready.wait()
        try:
            return self.assets[asset_id]
        except KeyError:
            raise RuntimeError(f"{self.name} could not host {asset_id!r}: "
                               f"{self.resume_error}") from None

    async def set_reference(self, asset_id: str, values: dict[str, float],
                            user: str) -> dict[str, float]:
        return await (await self._hosted(asset_id)).set_reference(values, user)

    async def follow_plan(self, asset_id: str, entry: dict[str, Any]) -> str | None:
        return await (await self._hosted(asset_id)).follow_plan(entry)

    async def set_mode(self, asset_id: str, mode: str, user: str) -> str:
        return await (await self._hosted(asset_id)).set_mode(mode, user)

    async def write_setpoints(self, asset_id: str, values: dict[str, float],
                              user: str) -> dict[str, Any]:
        return await (await self._hosted(asset_id)).write_setpoints(values, user)

    async def safe_state(self, asset_id: str, user: str) -> dict[str, Any]:
        return await (await self._hosted(asset_id)).safe_state(user)

    async def proposals(self, asset_id: str) -> list[dict[str, Any]]:
        return await (await self._hosted(asset_id)).proposals()

    async def approve(self, asset_id: str, number: int, user: str) -> dict[str, Any]:
        return await (await self._hosted(asset_id)).approve(number, user)

    async def reject(self, asset_id: str, number: int, user: str) -> dict[str, Any]:
        return await (await self._hosted(asset_id)).reject(number, user)

    async def limits(self, asset_id: str) -> dict[str, dict[str, float]]:
        return await (await self._hosted(asset_id)).limits()

    async def set_operator_limits(self, asset_id: str, bands: dict[str, tuple[float, float]],
                                  user: str) -> dict[str, dict[str, float]]:
        return await (await self._hosted(asset_id)).set_operator_limits(bands, user)

    async def set_controller(self, asset_id: str, change: dict[str, Any],
                             user: str) -> dict[str, Any]:
        return await (await self._hosted(asset_id)).set_controller(change, user)

    async def controller_tuning(self, asset_id: str) -> dict[str, Any]:
        return (await self._hosted(asset_id)).controller_tuning()

    async def ingest(self, asset_id: str, batch: bytes) -> int:
        return (await self._hosted(asset_id)).ingest(batch)

    async def receive_card(self, asset_id: str, card: SurfaceCard) -> CardRecord:
        return await (await self._hosted(asset_id)).receive_card(card)

    async def attach_publisher(self, asset_id: str, publisher) -> None:
        (await self._hosted(asset_id)).attach_publisher(publisher)

    async def alarm_action(self, asset_id: str, name: str, action: str, user: str,
                           duration_s: float | None = None,
                           reason: str = "") -> dict[str, Any]:
        asset = await self._hosted(asset_id)
        return msgspec.to_builtins(await asset.alarm_action(name, action, user, duration_s,
                                                            reason))

    async def fork(self, asset_id: str, user: str, what: str) -> dict[str, Any]:
        return await (await self._hosted(asset_id)).fork(user, what)

    # -- per asset: queries ----------------------------------------------------------------

    async def alarms(self, asset_id: str) -> list[dict[str, Any]]:
        """Every alarm of the asset, as engine.alarms.AlarmStatus fields."""
        return msgspec.to_builtins((await self._hosted(asset_id)).alarm_status())

    async def status(self, asset_id: str) -> dict[str, Any]:
        """The asset's status now (engine.status.AssetStatus as plain data)."""
        self.status_queries += 1
        return msgspec.to_builtins((await self._hosted(asset_id)).status())

    async def summary(self, asset_id: str) -> dict[str, Any]:
        self.status_queries += 1
        return msgspec.to_builtins((await self._hosted(asset_id)).summary())

    async def view(self, asset_id: str) -> bytes:
        return await (await self._hosted(asset_id)).view()

    async def metrics_snapshot(self, asset_id: str) -> dict[str, Any]:
        return {**(await self._hosted(asset_id)).metrics_snapshot(),
                "history_dropped_records": self.history.dropped_records(asset_id)}

    async def restore_report(self) -> list[str]:
        """What the hosted assets' restore points held that no longer fits them, and was
        skipped (once every asset is built)."""
        await self._resumed.wait()
        return [line for asset in self.assets.values() for line in asset.restore_report]

    def shard_status(self) -> dict[str, Any]:
        """The shard itself: its assets, the gate batches it made, its instants in flight."""
        return {"name": self.name, "pid": os.getpid(), "assets": list(self.assets),
                "batches": self.batches, "instants_in_flight": len(self._instants),
                "status_queries": self.status_queries,
                "restarted": self.restarted, "resume_error": self.resume_error,
                "history": msgspec.to_builtins(self.history.stats())}


@ray.remote(num_cpus=0, max_restarts=MAX_RESTARTS)
class AssetShard(Shard):
    """A Shard as a Ray actor (named ``shard:<n>``); Ray restarts a killed one."""

    def __init__(self, name: str, assets: list[AssetConfig], clock: ClockSpec, safety,
                 plants: dict[str, Any], plcs: dict[str, PlcMap],
                 modbus: ModbusSettings = ModbusSettings(), board=None,
                 historian: Any = None, plans: str | None = None,
                 phases: dict[str, float] | None = None) -> None:
        super().__init__(name, assets, clock, safety, plants, plcs, modbus, board,
                         restarted=ray.get_runtime_context().was_current_actor_reconstructed,
                         historian=historian, plans=plans, phases=phases)
