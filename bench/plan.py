"""The DRA pipeline's 7-day forward plan: compute time and saving against its baselines.

    python bench/plan.py

On the pilot's dra-line (examples/pilot.toml: its model, limits, Ontario-shaped
time-of-use tariff with on-peak 2x off-peak, 28,800 m^3/day nomination, MAOP 9.6 MPa
from the site's trip interlock), from the model's nominal state:

- Build: ``InjectionPlanner`` construction (the NLP; its per-hour functions compiled to
  C, or loaded from the cache after the first run), timed once.
- Plan: ``InjectionPlanner.plan`` (capacity check, both baselines, the plan from each
  feasible baseline), REPEATS times; median and max wall time. Goal: at most 10 s.
- Saving: 1 - plan cost / baseline cost against ``constant_dra`` (every skid at its
  nominal 18 L/h, 15 ppm at 1200 m^3/h) and ``no_dra``, both computed by the same call
  on the same model and tariff; the plan's on-peak share of pumping energy against the
  no_dra baseline's (load shifting).
- The same against an hourly flow nomination (1350 m^3/h every hour: no storage, so the
  plan can only trade DRA against pump energy hour by hour) with electricity at 0.30 per
  kWh, where DRA pays.

Results are merged into ``bench/results.json`` under the key ``"plan"``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import results_file

import plants
from controllers.planner import InjectionPlanner, station_maop
from engine.config import NominationSettings, TariffSettings, load_site

PILOT = Path(__file__).resolve().parents[1] / "examples" / "pilot.toml"
REPEATS = 3
GOAL_S = 10.0


def summary(plan) -> dict:
    baselines = {}
    for name, baseline in plan.baselines.items():
        baselines[name] = {"feasible": baseline.feasible, "cost": baseline.cost,
                           "saving": None if baseline.cost is None
                           else 1.0 - plan.cost / baseline.cost,
                           "reason": baseline.reason}
    return {"currency": plan.currency, "cost": plan.cost, "energy_cost": plan.energy_cost,
            "dra_cost": plan.dra_cost, "solver_status": plan.solver_status,
            "baselines": baselines}


def peak_energy_share(hours) -> float:
    top = max(h.electricity_price for h in hours)
    energy = [sum(h.station_power) for h in hours]
    at_top = sum(e for e, h in zip(energy, hours, strict=True) if h.electricity_price == top)
    return at_top / sum(energy)


def main() -> None:
    site = plants.resolve_site(load_site(PILOT), PILOT)
    asset = next(a for a in site.assets if a.id == "dra-line")
    model = plants.model_of(asset)
    maop = station_maop(site, asset, model)
    started = time.perf_counter()
    planner = InjectionPlanner(model, asset.limits)
    build_s = time.perf_counter() - started

    times, plan = [], None
    for _ in range(REPEATS):
        started = time.perf_counter()
        plan = planner.plan(model.states.nominal, asset.tariff, asset.nomination, maop,
                            u0=model.inputs.nominal)
        times.append(time.perf_counter() - started)
    pilot = summary(plan)
    pilot["peak_energy_share"] = peak_energy_share(plan.hours)
    pilot["peak_energy_share_no_dra"] = peak_energy_share(plan.baselines["no_dra"].hours)

    hourly = NominationSettings(hourly_flow=[1350.0 / 3600.0] * 168)
    started = time.perf_counter()
    dear = planner.plan(model.states.nominal, TariffSettings(hourly=[0.30] * 168), hourly,
                        maop, u0=model.inputs.nominal)
    dear_s = time.perf_counter() - started

    result = {
        "asset": "dra-line (examples/pilot.toml)",
        "hours": len(plan.hours),
        "build_s": build_s,
        "compiled": planner.compiled,
        "plan_s_median": statistics.median(times),
        "plan_s_max": max(times),
        "goal_s": GOAL_S,
        "goal_met": max(times) <= GOAL_S,
        "pilot_tou_daily_nomination": pilot,
        "hourly_flow_1350_at_0.30": {**summary(dear), "plan_s": dear_s},
    }
    results_file.save("plan", result)
    print(f"build {build_s:.2f} s; plan median {result['plan_s_median']:.2f} s, "
          f"max {result['plan_s_max']:.2f} s (goal {GOAL_S:.0f} s)")
    for name, figures in (("pilot TOU, daily nomination", pilot),
                          ("1350 m3/h hourly at 0.30/kWh", result["hourly_flow_1350_at_0.30"])):
        print(f"{name}: plan {figures['cost']:.0f} {figures['currency']}")
        for baseline, values in figures["baselines"].items():
            if values["feasible"]:
                print(f"  vs {baseline}: {values['cost']:.0f}, saving {values['saving']:.1%}")
            else:
                print(f"  vs {baseline}: infeasible ({values['reason']})")
    print(f"on-peak share of pumping energy: plan {pilot['peak_energy_share']:.1%}, "
          f"no_dra {pilot['peak_energy_share_no_dra']:.1%}")


if __name__ == "__main__":
    main()
