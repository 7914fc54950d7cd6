"""SimulatedPlantActor: a simulated plant in its own process, the twin's only data source.

In real time it advances lazily to the site clock's time whenever it is measured,
written or scanned, so it needs no loop of its own; in lock-step the asset that owns it
calls ``advance_to`` before each tick.

Given a register map it also runs a PLC simulator (actors.plc): a Modbus TCP server in
this actor's event loop, through which the twin then reads and writes the plant.
"""

from __future__ import annotations

from typing import Any

import ray

from actors.plc import PlcSimulator
from engine.clock import ClockSpec
from engine.config import AssetConfig
from engine.messages import Measurement
from engine.registers import PlcMap
from engine.simulation import SimulatedPlant
from plants import model_of, synthesizer_of


SCANS_PER_PERIOD = 4
"""A PLC scans faster than the loop it serves: at least this many scans per control
period, however fast the twin's clock runs (at 600x a 30 s period is 50 ms of wall time)."""


@ray.remote(num_cpus=0)
class SimulatedPlantActor:
    """Holds the true state of one plant; answers measure/apply like a PLC would."""

    def __init__(self, asset: AssetConfig, clock: ClockSpec, plc: PlcMap | None = None,
                 scan_period_s: float = 0.25) -> None:
        model = model_of(asset)
        self.clock = None if clock.lockstep else clock.make(model.dt)
        self.plant = SimulatedPlant(
            asset.id, model, asset.simulation, x0=asset.initial, u0=asset.inputs,
            d=asset.disturbances, t0=clock.epoch, synthesize=synthesizer_of(asset),
        )
        self.plc = None if plc is None else PlcSimulator(self.plant, plc, self._catch_up)
        self.scan_period_s = None if clock.lockstep else min(
            scan_period_s, asset.period_s / clock.speed / SCANS_PER_PERIOD)

    def _catch_up(self) -> None:
        if self.clock is not None:
            self.plant.advance_to(self.clock.now())

    async def measure(self) -> Measurement:
        self._catch_up()
        return self.plant.measure()

    async def apply(self, setpoints: dict[str, float]) -> None:
        self._catch_up()
        self.plant.apply(setpoints)

    async def advance_to(self, t: float) -> None:
        """Lock-step: integrate to ``t``; the PLC, if any, then scans."""
        self.plant.advance_to(t)
        if self.plc is not None:
            self.plc.scan()

    async def truth(self) -> dict[str, Any]:
        self._catch_up()
        return self.plant.truth()

    # -- the PLC simulator ---------------------------------------------------------------

    async def start_plc(self) -> str:
        """Start serving Modbus TCP (again); returns ``host:port``."""
        if self.plc is None:
            raise RuntimeError(f"plant {self.plant.asset!r} has no register map: no PLC to start")
        await self.plc.start(self.scan_period_s)
        return self.plc.plc.address

    async def stop_plc(self) -> None:
        """Stop serving Modbus TCP, as if the PLC dropped off the network."""
        if self.plc is not None:
            await self.plc.stop()
