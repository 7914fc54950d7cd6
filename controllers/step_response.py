"""Closed-loop step responses for offline tuning (``twinloop tune``), without Ray.

One asset of ``kind`` with its defaults (period, reference, limits, estimator) and the
tuning under test runs in lock-step against a ``SimulatedPlant`` (the kind's own
measurement synthesis, noise multiplier ``noise``; no parameter mismatch):

    t in [0, lead):          reference r0 (the kind's default for the output, else the
                             output's nominal value): the loop settles
    t in [lead, duration):   reference r0 + step on the named output

Each period ``ControlLoop.tick`` measures, estimates, proposes, gates the proposal with
the safety policy in memory (engine.gate.PolicyGate: the kind's limits and rate
limits, AUTONOMOUS, no watchdog) and the plant is given what the gate lets through, as
in an asset shard. Recorded per period: the plant's true outputs (noise-free, output
units), the applied inputs and the reference.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

import plants
from controllers import CONTROLLER_BACKENDS, build_controller, build_estimator
from controllers.tuning import retune
from engine.config import AssetConfig, SimulationSettings, SiteConfig, SiteSettings
from engine.gate import PolicyGate
from engine.loop import ControlLoop
from engine.messages import Mode
from engine.simulation import SimulatedPlant

LEAD_FRACTION = 0.2
"""Share of the run before the step, for the loop to settle at r0."""


@dataclass(frozen=True)
class StepResponse:
    """A recorded closed-loop step response.

    Attributes:
        kind, output: the plant kind and the output stepped.
        units: unit per output and input name.
        time: seconds from the start, one per period.
        reference: the stepped output's reference at each time, output units.
        outputs: true output values per name, output units.
        inputs: applied input values per name, input units.
        step_time: when the reference stepped, s.
        target: the reference after the step.
    """

    kind: str
    output: str
    units: dict[str, str]
    time: np.ndarray
    reference: np.ndarray
    outputs: dict[str, np.ndarray]
    inputs: dict[str, np.ndarray]
    step_time: float
    target: float

    def write_csv(self, path: str | Path) -> Path:
        """Columns: time_s, the reference, the stepped output, then every other output and
        every input, named with their units."""
        path = Path(path)
        signals = {self.output: self.outputs[self.output], **self.outputs, **self.inputs}
        header = ["time_s", f"reference_{self.output} [{self.units[self.output]}]",
                  *(f"{n} [{self.units[n]}]" for n in signals)]
        columns = [self.time, self.reference, *signals.values()]
        with path.open("w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(header)
            writer.writerows(zip(*(c.tolist() for c in columns)))
        return path

    def plot(self, path: str | Path) -> Path:
        """PNG: the stepped output against its reference above, the inputs below."""
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot

        path = Path(path)
        hours = self.time.max() >= 3 * 3600
        scale, unit = (3600.0, "h") if hours else (1.0, "s")
        figure, (top, bottom) = pyplot.subplots(2, 1, sharex=True, figsize=(8, 6))
        top.plot(self.time / scale, self.outputs[self.output], label=f"{self.output} (plant)")
        top.step(self.time / scale, self.reference, where="post", linestyle="--",
                 label="reference")
        top.set_ylabel(f"{self.output} [{self.units[self.output]}]")
        top.set_title(f"{self.kind}: closed-loop step of {self.output}")
        top.legend(loc="best")
        for name, values in self.inputs.items():
            bottom.step(self.time / scale, values, where="post",
                        label=f"{name} [{self.units[name]}]")
        bottom.set_xlabel(f"time [{unit}]")
        bottom.set_ylabel("applied inputs")
        bottom.legend(loc="best")
        for axis in (top, bottom):
            axis.grid(True, alpha=0.3)
        figure.tight_layout()
        figure.savefig(path, format="png", dpi=100)
        pyplot.close(figure)
        return path


def step_response(
    kind: str,
    output: str,
    step: float,
    duration: float,
    tuning: Mapping[str, object] | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> StepResponse:
    """Run the closed loop of the module docstring. ``tuning`` is a partial controller
    tuning merged over the kind's defaults (``controllers.tuning.retune``: backend,
    horizon, tracking, move_suppression, limits). Bad names or values raise ValueError
    naming them."""
    site = plants.resolve_site(SiteConfig(site=SiteSettings(name="tune"),
                                          assets=[AssetConfig(id=kind, kind=kind)]))
    asset = site.assets[0]
    model = plants.model_of(asset)
    if output not in model.outputs:
        raise ValueError(f"unknown output {output!r} of {kind!r}; known: "
                         f"{', '.join(model.outputs.names)}")
    if not (math.isfinite(duration) and duration >= 2 * model.dt):
        raise ValueError(f"duration must be at least two periods ({2 * model.dt:g} s), "
                         f"got {duration:g} s")
    settings, limits = retune(model, asset.controller, asset.limits, tuning or {},
                              CONTROLLER_BACKENDS)
    start = asset.reference.get(output, model.outputs[output].nominal)
    target = model.outputs[output].check(start + step)
    reference = {**asset.reference, output: start}
    plant = SimulatedPlant(kind, model, _simulation(asset, noise, seed),
                           x0=asset.initial, u0=asset.inputs, d=asset.disturbances,
                           synthesize=plants.synthesizer_of(asset))
    loop = ControlLoop(kind, model, build_estimator(model, asset.estimator),
                       build_controller(model, settings, limits),
                       x0=asset.initial, u0=asset.inputs, d=asset.disturbances,
                       reference=reference)
    initial = {**model.inputs.mapping(plant.u), **model.disturbances.mapping(plant.d)}
    gate = PolicyGate(msgspec.structs.replace(asset, limits=limits, mode=Mode.AUTONOMOUS,
                                              max_measurement_age_s=math.inf), initial)
    periods = int(duration // model.dt)
    step_period = max(1, int(periods * LEAD_FRACTION))
    times, references, outputs, inputs = [], [], [], []
    for k in range(periods + 1):
        t = k * model.dt
        if k == step_period:
            loop.set_reference({output: target})
        plant.advance_to(t)
        plant.apply(loop.tick(t, plant.measure(), gate).applied)
        times.append(t)
        references.append(loop.reference[output])
        outputs.append(model.output(t, plant.x, plant.u, plant.d, plant.p))
        inputs.append(plant.u.copy())
    outputs_array, inputs_array = np.array(outputs), np.array(inputs)
    return StepResponse(
        kind=kind, output=output,
        units={s.name: s.unit for s in (*model.outputs, *model.inputs)},
        time=np.array(times), reference=np.array(references),
        outputs={n: outputs_array[:, i] for i, n in enumerate(model.outputs.names)},
        inputs={n: inputs_array[:, i] for i, n in enumerate(model.inputs.names)},
        step_time=step_period * model.dt, target=target,
    )


def _simulation(asset: AssetConfig, noise: float, seed: int) -> SimulationSettings:
    """The step test's plant: the model itself (no mismatch), with the measurement-noise
    multiplier and seed asked for."""
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be finite and >= 0, got {noise}")
    return SimulationSettings(seed=seed, noise=noise)


def default_step(kind: str, output: str) -> float:
    """2 % of the output's span (or 5 % of its nominal value if a bound is infinite)."""
    outputs = plants.build_model(kind, dt=plants.DEFAULTS[kind].period_s).outputs
    if output not in outputs:
        raise ValueError(f"unknown output {output!r} of {kind!r}; known: "
                         f"{', '.join(outputs.names)}")
    signal = outputs[output]
    span = signal.upper - signal.lower
    return 0.02 * span if math.isfinite(span) else 0.05 * abs(signal.nominal)


def default_output(kind: str) -> str:
    """The first output the kind tracks by default, else its first output."""
    reference = plants.DEFAULTS[kind].reference
    if reference:
        return next(iter(reference))
    return plants.build_model(kind, dt=plants.DEFAULTS[kind].period_s).outputs.names[0]


def default_duration(kind: str, horizon: int | None = None) -> float:
    """Five horizons of the kind's period: long enough to see the response settle."""
    defaults = plants.DEFAULTS[kind]
    return 5 * (horizon or defaults.controller.horizon) * defaults.period_s


def summarise(response: StepResponse) -> dict[str, float]:
    """Final value, its error from the target, and the overshoot past the target, in
    output units; rise time to 90 % of the step, s (nan if never reached)."""
    y = response.outputs[response.output]
    after = response.time >= response.step_time
    initial = y[after][0]
    change = response.target - initial
    crossed = np.nonzero(after & ((y - initial) * np.sign(change) >= 0.9 * abs(change)))[0]
    rise = response.time[crossed[0]] - response.step_time if crossed.size else math.nan
    overshoot = max(0.0, float(np.max((y[after] - response.target) * np.sign(change))))
    return {"final": float(y[-1]), "target": response.target,
            "final_error": float(y[-1] - response.target), "overshoot": overshoot,
            "rise_time_s": float(rise)}

