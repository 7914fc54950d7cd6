"""SimulatedPlantActor: a simulated plant in its own process, the twin's only data source.

In real time it advances lazily to the site clock's time whenever it is measured or
written, so it needs no loop of its own; in lock-step the asset that owns it calls
``advance_to`` before each tick.
"""

from __future__ import annotations

from typing import Any

import ray

from engine.clock import ClockSpec
from engine.config import AssetConfig
from engine.messages import Measurement
from engine.simulation import SimulatedPlant
from plants import model_of, synthesizer_of


@ray.remote(num_cpus=0)
class SimulatedPlantActor:
    """Holds the true state of one plant; answers measure/apply like a PLC would."""

    def __init__(self, asset: AssetConfig, clock: ClockSpec) -> None:
        model = model_of(asset)
        self.clock = None if clock.lockstep else clock.make(model.dt)
        self.plant = SimulatedPlant(
            asset.id, model, asset.simulation, x0=asset.initial, u0=asset.inputs,
            d=asset.disturbances, t0=clock.epoch, synthesize=synthesizer_of(asset),
        )

    def _catch_up(self) -> None:
        if self.clock is not None:
            self.plant.advance_to(self.clock.now())

    def measure(self) -> Measurement:
        self._catch_up()
        return self.plant.measure()

    def apply(self, setpoints: dict[str, float]) -> None:
        self._catch_up()
        self.plant.apply(setpoints)

    def advance_to(self, t: float) -> None:
        self.plant.advance_to(t)

    def truth(self) -> dict[str, Any]:
        self._catch_up()
        return self.plant.truth()
