"""Simulated plants in Ray actors: the twin's only data source, many to a process.

``PlantShard`` hosts many simulated plants (engine.simulation.SimulatedPlant) and their
PLC simulators (actors.plc) in one process; every method names the plant by asset id.
In real time a plant advances lazily to the site clock's time whenever it is measured,
written or scanned, so it needs no loop of its own; in lock-step the asset that owns it
calls ``advance_to(t, [asset_id])`` before each tick (or the shard's owner advances all).

Modbus: one endpoint per PLC, as real plants have. Each plant given a register map
serves it on its own port (``base_port + i`` for asset i of the site, engine.registers),
answering for its own unit id, from the shard's event loop. Unit ids on one port per
shard were not chosen: they would tie the twin's addressing to the packing of plants into
shards (a repacked site would renumber every PLC), hold at most 247 PLCs per port, and
let one stopped or stalled PLC take its whole shard off the network; with a port each,
``stop_plc`` drops one PLC as a real plant network would, and the register map
(``twinloop modbus-map``) does not depend on the packing. The cost is one listening
socket per PLC (a shard of 100 plants: 100 listeners and their 100 client connections).

A shard restarts after its process dies (``max_restarts``): the simulated world is not
checkpointed, so its plants start again from their configured initial state, at the
site clock's time (real time) or at their next ``advance_to`` (lock-step), and their
PLCs serve again at once on the same ports.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import ray

from actors.plc import PlcSimulator
from engine.clock import ClockSpec, RealTimeClock, SimClock
from engine.config import AssetConfig
from engine.messages import Measurement
from engine.registers import PlcMap
from engine.simulation import SimulatedPlant
from plants import model_of, synthesizer_of

SCANS_PER_PERIOD = 4
"""A PLC scans faster than the loop it serves: at least this many scans per control
period, however fast the twin's clock runs (at 600x a 30 s period is 50 ms of wall time)."""
MAX_RESTARTS = -1
"""A plant shard always comes back: the plants it simulates are the twin's whole world."""


class HostedPlant:
    """One simulated plant as an actor hosts it: its clock, its PLC (if it has a register
    map) and how often that PLC scans in real time.

    Args:
        asset: the resolved asset.
        clock: the site's clock; in real time the plant catches up with it on every access.
        plc: the register map its PLC serves, or None (no PLC).
        scan_period_s: the site's PLC scan period, wall seconds (at most).
        t0: twin time the plant starts at (default the clock's epoch).
    """

    def __init__(self, asset: AssetConfig, clock: ClockSpec, plc: PlcMap | None,
                 scan_period_s: float, t0: float | None = None) -> None:
        model = model_of(asset)
        self.asset = asset.id
        self.clock: RealTimeClock | SimClock | None = (
            None if clock.lockstep else clock.make(model.dt))
        self.plant = SimulatedPlant(
            asset.id, model, asset.simulation, x0=asset.initial, u0=asset.inputs,
            d=asset.disturbances, t0=clock.epoch if t0 is None else t0,
            synthesize=synthesizer_of(asset),
        )
        self.plc = None if plc is None else PlcSimulator(self.plant, plc, self.catch_up)
        self.scan_period_s = None if clock.lockstep else min(
            scan_period_s, model.dt / clock.speed / SCANS_PER_PERIOD)
        self.jump_on_advance = False
        """Lock-step after a restart: the next advance_to starts the plant there."""

    def catch_up(self) -> None:
        if self.clock is not None:
            self.plant.advance_to(self.clock.now())

    def measure(self) -> Measurement:
        self.catch_up()
        return self.plant.measure()

    def apply(self, setpoints: dict[str, float]) -> None:
        self.catch_up()
        self.plant.apply(setpoints)

    def advance_to(self, t: float) -> None:
        """Lock-step: integrate to ``t``; the PLC, if any, then scans."""
        if self.jump_on_advance:
            self.plant.t = max(self.plant.t, float(t))
            self.jump_on_advance = False
        self.plant.advance_to(t)
        if self.plc is not None:
            self.plc.scan()

    def truth(self) -> dict[str, Any]:
        self.catch_up()
        return self.plant.truth()

    async def start_plc(self) -> str:
        """Start serving Modbus TCP (again); returns ``host:port``."""
        if self.plc is None:
            raise RuntimeError(f"plant {self.asset!r} has no register map: no PLC to start")
        await self.plc.start(self.scan_period_s)
        return self.plc.plc.address

    async def stop_plc(self) -> None:
        """Stop serving Modbus TCP, as if the PLC dropped off the network."""
        if self.plc is not None:
            await self.plc.stop()


@ray.remote(num_cpus=0, max_restarts=MAX_RESTARTS)
class PlantShard:
    """Many simulated plants and their PLC simulators in one process, by asset id.

    Args:
        assets: the resolved assets whose plants this shard simulates.
        clock: the site's clock.
        plcs: register map per asset id, for the plants that serve a PLC.
        scan_period_s: the site's PLC scan period, wall seconds (at most).
    """

    def __init__(self, assets: list[AssetConfig], clock: ClockSpec, plcs: dict[str, PlcMap],
                 scan_period_s: float) -> None:
        restarted = ray.get_runtime_context().was_current_actor_reconstructed
        t0 = clock.epoch if not restarted or clock.lockstep else clock.make(1.0).now()
        self.plants = {asset.id: HostedPlant(asset, clock, plcs.get(asset.id), scan_period_s, t0)
                       for asset in assets}
        if restarted:
            for plant in self.plants.values():
                plant.jump_on_advance = clock.lockstep
            # held so that the task is not garbage-collected before it runs
            self._restarting = asyncio.get_event_loop().create_task(self.start_plcs())

    def _plant(self, asset_id: str) -> HostedPlant:
        try:
            return self.plants[asset_id]
        except KeyError:
            raise KeyError(f"asset {asset_id!r} has no plant in this shard; it has: "
                           f"{', '.join(self.plants)}") from None

    def pid(self) -> int:
        """The worker process id (tests kill it)."""
        return os.getpid()

    async def measure(self, asset_id: str) -> Measurement:
        return self._plant(asset_id).measure()

    async def apply(self, asset_id: str, setpoints: dict[str, float]) -> None:
        self._plant(asset_id).apply(setpoints)

    async def advance_to(self, t: float, asset_ids: list[str] | None = None) -> None:
        """Lock-step: integrate the plants of ``asset_ids`` (default: all) to twin time
        ``t``; their PLCs then scan."""
        for asset_id in self.plants if asset_ids is None else asset_ids:
            self._plant(asset_id).advance_to(t)

    async def truth(self, asset_id: str) -> dict[str, Any]:
        return self._plant(asset_id).truth()

    async def start_plcs(self) -> dict[str, str]:
        """Start every PLC of the shard (those already serving carry on); returns
        ``host:port`` per asset id."""
        return {asset_id: await plant.start_plc()
                for asset_id, plant in self.plants.items() if plant.plc is not None}

    async def start_plc(self, asset_id: str) -> str:
        return await self._plant(asset_id).start_plc()

    async def stop_plc(self, asset_id: str) -> None:
        await self._plant(asset_id).stop_plc()
