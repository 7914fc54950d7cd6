"""A simulated plant: the truth the twin never sees, only measures.

The simulated plant integrates the same PlantModel structure with *true* parameters
(the model's nominal values times a mismatch ratio), *true* disturbances, and adds
Gaussian measurement noise (each output's ``std`` times a noise multiplier, from a
seeded generator, so runs are reproducible). A plant whose instruments are more than
``h`` plus noise (a rod pump's fillage comes from a dynamometer card through the wave
equation) passes its own ``synthesize`` function instead. It is driven in one of two ways:
``advance(duration)`` in lock-step under a SimClock, or ``advance_to(t)`` by a
real-time loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec
import numpy as np

from engine.cards import SurfaceCard
from engine.config import SimulationSettings
from engine.messages import Measurement
from engine.model import PlantModel

Synthesize = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.random.Generator, float],
                      tuple[Mapping[str, float], SurfaceCard | None]]
"""``(x, u, d, p, rng, noise) -> ({output: measured value}, surface card or None)`` from
the true values (a rod pump's controller measures a card per stroke)."""


class SimulatedPlant:
    """True state of one plant, stepped with the model's RK4 discretisation."""

    def __init__(
        self,
        asset: str,
        model: PlantModel,
        settings: SimulationSettings = SimulationSettings(),
        *,
        x0: Mapping[str, float] | None = None,
        u0: Mapping[str, float] | None = None,
        d: Mapping[str, float] | None = None,
        t0: float = 0.0,
        synthesize: Synthesize | None = None,
    ) -> None:
        self.asset = asset
        self.model = model
        nominal = model.parameters.nominal
        ratio = model.parameters.vector(settings.mismatch, default=np.ones_like(nominal))
        self.p = nominal * ratio
        self.x = model.states.vector(model.states.check({**(x0 or {}), **settings.initial}))
        self.u = model.inputs.vector(model.inputs.check(u0 or {}))
        self.d = model.disturbances.vector(
            model.disturbances.check({**(d or {}), **settings.disturbances})
        )
        self.drift = model.states.vector(settings.drift, default=np.zeros(len(model.states)))
        self.noise = settings.noise
        self.synthesize = synthesize
        self.rng = np.random.default_rng(settings.seed)
        self.t = float(t0)

    def apply(self, setpoints: Mapping[str, float]) -> None:
        """Write inputs (and operator-set disturbances such as a loading line-up); they
        hold until the next write. Unknown names raise KeyError."""
        inputs, disturbances = self.model.inputs, self.model.disturbances
        unknown = [n for n in setpoints if n not in inputs and n not in disturbances]
        if unknown:
            raise KeyError(f"unknown signal(s) {unknown}: neither inputs nor disturbances "
                           f"of {self.asset}")
        self.u = inputs.vector(inputs.check({n: v for n, v in setpoints.items() if n in inputs}),
                               default=self.u)
        self.d = disturbances.vector(disturbances.check(
            {n: v for n, v in setpoints.items() if n in disturbances}), default=self.d)

    def advance(self, duration: float) -> None:
        """Integrate ``duration`` seconds in steps no longer than the model's ``dt``; the
        settings' ``drift`` adds its rate times each step to the states (exact for the
        random-walk states it is meant for), held within the states' bounds."""
        remaining = float(duration)
        states = self.model.states
        while remaining > 1e-9:
            h = min(self.model.dt, remaining)
            self.x = self.model.step(self.x, self.u, self.d, self.p, dt=h)
            if self.drift.any():
                self.x = np.clip(self.x + self.drift * h, states.lower, states.upper)
            remaining -= h
        self.t += float(duration)

    def advance_to(self, t: float) -> None:
        if t > self.t:
            self.advance(t - self.t)

    def measure(self) -> Measurement:
        """Noisy outputs at the current time (only the model's outputs, as a PLC maps them),
        with the synthesized surface card, if any, stamped at the current time."""
        card = None
        if self.synthesize is not None:
            values, card = self.synthesize(self.x, self.u, self.d, self.p, self.rng, self.noise)
            values = {name: float(values[name]) for name in self.model.outputs.names}
            if card is not None:
                card = msgspec.structs.replace(card, time=self.t)
        else:
            y = self.model.output(self.t, self.x, self.u, self.d, self.p)
            y = y + self.noise * self.model.outputs.std * self.rng.standard_normal(y.size)
            values = self.model.outputs.mapping(y)
        return Measurement(asset=self.asset, time=self.t, values=values, card=card)

    def truth(self) -> dict[str, dict[str, float]]:
        """True states, inputs and disturbances, for tests and demos."""
        return {
            "time": self.t,  # type: ignore[dict-item]
            "states": self.model.states.mapping(self.x),
            "inputs": self.model.inputs.mapping(self.u),
            "disturbances": self.model.disturbances.mapping(self.d),
        }
