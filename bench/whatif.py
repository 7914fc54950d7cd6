"""How long a 24-hour what-if of one asset takes, per kind, against a direct lock-step run.

    python bench/whatif.py

For one asset of every kind of the pilot site (examples/pilot.toml: its model, limits,
tuning, alarms and interlocks), forked from its loop as built (the twin's initial
estimate and covariance) at the site's epoch:

- What-if: ``controllers.whatif.WhatIf.run`` of 24 h with one change (the first
  writable signal stepped 10 % of its span towards its middle), samples = 1: the
  scenario and its no-change baseline, each through ControlLoop.tick and PolicyGate
  every period, plus the KPIs. Its estimator and controller are built before timing
  (an actor keeps them across requests). Open loop (``controller: false``): median of
  REPEATS; goal GOAL_S. Closed loop (``controller: true``): one run of CLOSED_LOOP_S
  (the MPC solves dominate), reported as measured and scaled to 24 h.
- Baseline, in the same process: the same scenario as a direct lock-step run, one
  SimulatedPlant and one ControlLoop ticked through PolicyGate (what ``twinloop tune``
  does), no fork, no second run, no KPIs. The ratio is what-if over baseline: about 2
  is the price of the baseline run the what-if carries.

Results are merged into ``bench/results.json`` under the key ``"whatif"``, after each
kind (a long run leaves the kinds done so far).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path

import msgspec
import results_file

import plants
from actors.asset import build_loop
from controllers.whatif import Fork, WhatIf, WhatIfChanges, WhatIfRequest
from engine.config import load_site
from engine.gate import PolicyGate
from engine.loop import ControlLoop
from engine.simulation import SimulatedPlant

PILOT = Path(__file__).resolve().parents[1] / "examples" / "pilot.toml"
DAY_S = 86400.0
CLOSED_LOOP_S = 3600.0
REPEATS = 3
GOAL_S = 1.0
LIMIT_S = 300.0
"""timeout_s of every what-if here; a closed loop not done by then is reported so."""
EPOCH = 1.7e9


def change_of(asset, model) -> dict[str, float]:
    """The first writable signal, 10 % of its limit span towards its middle."""
    name, limit = next(iter(asset.limits.items()))
    signal = model.inputs[name] if name in model.inputs else model.disturbances[name]
    now = asset.inputs.get(name, asset.disturbances.get(name, signal.nominal))
    lower, upper = max(limit.lower, signal.lower), min(limit.upper, signal.upper)
    step = 0.1 * (upper - lower) * (1.0 if now < 0.5 * (lower + upper) else -1.0)
    return {name: min(upper, max(lower, now + step))}


def direct(asset, model, built: ControlLoop, interlocks, setpoints: dict[str, float],
           duration: float, propose: bool) -> float:
    """Wall seconds of the baseline: one plain lock-step run of the same scenario, with
    the estimator and controller of ``built``."""
    loop = ControlLoop(asset.id, model, built.estimator, built.controller, x0=asset.initial,
                       u0=asset.inputs, d=asset.disturbances, reference=asset.reference,
                       t0=EPOCH)
    plant = SimulatedPlant(asset.id, model, msgspec.structs.replace(asset.simulation, noise=0.0),
                           x0=asset.initial, u0=asset.inputs, d=asset.disturbances, t0=EPOCH,
                           synthesize=plants.synthesizer_of(asset))
    writable = {**model.inputs.mapping(loop.u), **model.disturbances.mapping(loop.d)}
    gate = PolicyGate(asset, {name: writable[name] for name in asset.limits}, EPOCH, interlocks)
    plant.apply(setpoints)
    loop.applied(setpoints, EPOCH)
    started = time.perf_counter()
    for k in range(1, math.ceil(duration / model.dt) + 1):
        t = EPOCH + k * model.dt
        plant.advance_to(t)
        plant.apply(loop.tick(t, plant.measure(), gate, propose=propose).applied)
    return time.perf_counter() - started


def kind_figures(site, asset, whatif: WhatIf) -> dict:
    model = plants.model_of(asset)
    loop = build_loop(asset, EPOCH)
    interlocks = [lock for lock in site.interlocks
                  if all(key.partition(".")[0] == asset.id
                         for key in getattr(lock, "when", []) + getattr(lock, "hold", [])
                         + getattr(lock, "close", []) + getattr(lock, "signals", []))]
    fork = Fork(asset=asset, time=EPOCH, mode=asset.mode, loop=loop.checkpoint(),
                controller=loop.controller.checkpoint(), interlocks=interlocks)
    setpoints = change_of(asset, model)
    changes = WhatIfChanges(setpoints=setpoints)
    whatif.run(fork, WhatIfRequest(duration_s=model.dt, changes=changes,  # its estimator
                                   controller=False, timeout_s=LIMIT_S))
    open_times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        whatif.run(fork, WhatIfRequest(duration_s=DAY_S, changes=changes, controller=False,
                                       timeout_s=LIMIT_S))
        open_times.append(time.perf_counter() - started)
    open_direct = statistics.median(direct(asset, model, loop, interlocks, setpoints, DAY_S, False)
                                    for _ in range(REPEATS))
    figures = {
        "asset": asset.id, "period_s": model.dt, "ticks_24h": math.ceil(DAY_S / model.dt),
        "change": setpoints, "controller_backend": asset.resolved_controller().backend,
        "open_loop_24h_s_median": statistics.median(open_times),
        "open_loop_24h_s_max": max(open_times),
        "open_loop_direct_24h_s": open_direct,
        "open_loop_ratio": statistics.median(open_times) / open_direct,
        "open_loop_goal_met": max(open_times) <= GOAL_S,
    }
    try:
        whatif.run(fork, WhatIfRequest(duration_s=model.dt, changes=changes,  # its controller
                                       timeout_s=LIMIT_S))
        started = time.perf_counter()
        whatif.run(fork, WhatIfRequest(duration_s=CLOSED_LOOP_S, changes=changes,
                                       timeout_s=LIMIT_S))
        closed = time.perf_counter() - started
    except TimeoutError as error:
        return {**figures, "closed_loop": f"not measured: {error}"}
    closed_direct = direct(asset, model, loop, interlocks, setpoints, CLOSED_LOOP_S, True)
    scale = DAY_S / CLOSED_LOOP_S
    return {
        **figures,
        "closed_loop_s": closed, "closed_loop_duration_s": CLOSED_LOOP_S,
        "closed_loop_24h_s_scaled": closed * scale,
        "closed_loop_direct_s": closed_direct,
        "closed_loop_ratio": closed / closed_direct,
        "closed_loop_goal_met": closed * scale <= GOAL_S,
    }


def main() -> None:
    site = plants.resolve_site(load_site(PILOT), PILOT)
    whatif = WhatIf()
    kinds: dict[str, dict] = {}
    for asset in site.assets:
        if asset.kind in kinds:
            continue
        kinds[asset.kind] = kind_figures(site, asset, whatif)
        figures = kinds[asset.kind]
        results_file.save("whatif", {
            "site": "examples/pilot.toml", "goal_s": GOAL_S, "repeats": REPEATS,
            "load_average_1min": os.getloadavg()[0], "kinds": kinds})
        closed = (figures["closed_loop"] if "closed_loop" in figures else
                  f"{figures['closed_loop_s']:.1f} s per {CLOSED_LOOP_S / 3600:g} h "
                  f"({figures['closed_loop_24h_s_scaled']:.0f} s per 24 h, "
                  f"x{figures['closed_loop_ratio']:.1f} the direct run)")
        print(f"{asset.kind:18s} {asset.id:10s} open loop 24 h "
              f"{figures['open_loop_24h_s_median']:.2f} s (direct run "
              f"{figures['open_loop_direct_24h_s']:.2f} s, x{figures['open_loop_ratio']:.1f}); "
              f"closed loop {closed}", flush=True)


if __name__ == "__main__":
    main()
