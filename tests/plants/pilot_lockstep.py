"""The pilot site's assets without Ray: each asset's ControlLoop against its simulated
plant in lock-step, every tick through ControlLoop.tick with the safety policy's own
gate (engine.gate.PolicyGate)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import plants
from actors.fleet import initial_outputs
from controllers import build_controller, build_estimator
from engine.config import AssetConfig, load_site
from engine.gate import PolicyGate
from engine.loop import ControlLoop
from engine.messages import Measurement
from engine.simulation import SimulatedPlant

PILOT = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"
PILOT_SITE = plants.resolve_site(load_site(PILOT), PILOT)


def pilot_asset(asset_id: str) -> AssetConfig:
    return next(a for a in PILOT_SITE.assets if a.id == asset_id)


@dataclass
class LockStep:
    """One asset's loop and plant, ticked at the asset's period from t = 0."""

    asset: AssetConfig
    loop: ControlLoop = field(init=False)
    plant: SimulatedPlant = field(init=False)
    gate: PolicyGate = field(init=False)
    ticks: int = 0
    anomalies: int = 0
    persistent: int = 0
    """Ticks ending with a persistent anomaly."""

    def __post_init__(self) -> None:
        asset = self.asset
        model = plants.model_of(asset)
        self.loop = ControlLoop(asset.id, model, build_estimator(model, asset.estimator),
                                build_controller(model, asset.controller, asset.limits),
                                x0=asset.initial, u0=asset.inputs, d=asset.disturbances,
                                reference=asset.reference)
        self.plant = SimulatedPlant(asset.id, model, asset.simulation, x0=asset.initial,
                                    u0=asset.inputs, d=asset.disturbances,
                                    synthesize=plants.synthesizer_of(asset))
        self.gate = PolicyGate(asset, initial_outputs(asset))

    def run(self, duration_s: float,
            measured: Callable[[Measurement], Measurement] = lambda m: m) -> None:
        """Tick for ``duration_s`` twin seconds: plant -> measurement (through
        ``measured``, e.g. a sensor fault) -> estimate -> proposal -> policy -> plant."""
        period = self.asset.period_s
        for _ in range(round(duration_s / period)):
            t = self.plant.t + period
            self.plant.advance_to(t)
            result = self.loop.tick(t, measured(self.plant.measure()), self.gate)
            self.plant.apply(result.applied)
            estimate = result.estimate
            assert estimate is not None  # a measurement every tick
            self.ticks += 1
            self.anomalies += estimate.anomaly
            self.persistent += estimate.persistent_anomaly
