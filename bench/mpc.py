"""How fast the MPC backends are, and whether the fast one solves the same problem.

    python bench/mpc.py [--steps N] [--plant-steps M]

Backends, all in one run on the same PlantModel and ControllerSettings:

- "do-mpc default": DoMpcController as the assets use it (IPOPT, do-mpc's own initial
  guess from the last solution).
- "do-mpc warm start": the same with IPOPT warm-started from the last primal-dual
  solution (warm_start_init_point, bound pushes 1e-6, mu_init 1e-4).
- "fast SQP compiled": FastMpcController, Gauss-Newton SQP over qrqp to a step of 1e-6
  (in spans), the SQP iteration compiled to C (codegen).
- "fast SQP": the same on CasADi's virtual machine.
- "fast RTI compiled": one SQP iteration per step (real-time iteration), compiled.

1. The Klatt-Engell CSTR of do-mpc's examples/CSTR (plants.cstr: 4 states, 2 inputs,
   horizon 20, step 0.005 h = 18 s), do-mpc's objective (C_b - 0.6)^2 with move
   suppression 0.1 on F/100 and 1e-3 on Q_dot/2000, from the example's initial state.
   Each backend runs its own closed loop of ``--steps`` steps (true model = the
   controller's model); the loops advance in turn, ``BLOCK`` steps each, so that load
   from other work on the machine falls on every backend alike while each controller
   keeps its working set in cache between its steps, as in an asset actor (stepping
   the loops one step each evicted it: the compiled fast step took 0.48 ms, not 0.32).
   Reported per backend: median and p99 wall time of ``controller.step`` (the first, cold step
   included), the closed-loop cost sum_k (C_b - 0.6)^2 + 0.1 (dF/100)^2 + 1e-3 (dQ_dot/2000)^2,
   and the first-move difference against a converged reference: at every 5th state of the
   backend's own loop, IPOPT (do-mpc, tol 1e-12) solves the same problem; the difference is
   the largest |u - u_ref| / |u_ref| over the inputs (relative) and over the input spans.
   Speed-up = the do-mpc default median / the backend's median (baseline: do-mpc
   default in the same run). Not modelled by either backend here: do-mpc's terminal
   term and state bounds (inactive in this scenario).
2. Every plant kind in ``plants.BUILDERS`` with its default period, settings and
   limits: a control step is an EKF step (the kind's estimator settings) on the
   noise-free measurement plus a controller step, in a closed loop of ``--plant-steps``
   periods from the nominal state toward the kind's default reference. Reported per
   backend: median and p99 of the control step, the margin period / p99 (target 10),
   the tracking cost sum_k sum_y w_y ((y - r) / s_y)^2 and the first move's
   difference from do-mpc default at the first step (same state), in input spans. The
   fast backend runs interpreted here (code generation is optional per asset). Where a
   kind's default is economic (dra_pipeline, smelter_cell), do-mpc, which has no
   economic cost or soft limits, solves only its tracking part.

Results are merged into ``bench/results.json`` under the key ``"mpc"``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime

import casadi
import msgspec
import numpy as np
import results_file

import plants
from controllers import build_estimator
from controllers.mpc_common import spans
from controllers.mpc_dompc import DoMpcController
from controllers.mpc_fast import FastMpcController
from engine.config import ControllerSettings
from plants import cstr

WARM_START = {"warm_start_init_point": "yes", "warm_start_bound_push": 1e-6,
              "warm_start_mult_bound_push": 1e-6, "mu_init": 1e-4}
CONVERGED = {"tol": 1e-12, "acceptable_tol": 1e-12}
CSTR_SETTINGS = ControllerSettings(
    horizon=20, tracking={"C_b": 1.9**2},
    move_suppression={"F": 0.1 * 95**2 / 100**2, "Q_dot": 1e-3 * 8500**2 / 2000**2},
    tolerance=1e-6)
"""do-mpc's CSTR objective in span-normalised weights (see the module docstring)."""

Builder = Callable[..., object]
BACKENDS: dict[str, Builder] = {
    "do-mpc default": lambda model, settings, limits: DoMpcController(model, settings, limits),
    "do-mpc warm start": lambda model, settings, limits: DoMpcController(
        model, settings, limits, ipopt_options=WARM_START),
    "fast SQP compiled": lambda model, settings, limits: FastMpcController(
        model, msgspec.structs.replace(settings, backend="fast", codegen=True), limits),
    "fast SQP": lambda model, settings, limits: FastMpcController(
        model, msgspec.structs.replace(settings, backend="fast"), limits),
    "fast RTI compiled": lambda model, settings, limits: FastMpcController(
        model, msgspec.structs.replace(settings, backend="fast", codegen=True,
                                       real_time_iteration=True), limits),
}
PLANT_BACKENDS = ("do-mpc default", "do-mpc warm start", "fast SQP")


def percentiles(times: list[float]) -> dict:
    return {"median_ms": 1e3 * float(np.median(times)),
            "p99_ms": 1e3 * float(np.percentile(times, 99)), "steps": len(times)}


class CstrLoop:
    """One backend's closed loop on the CSTR, stepped one period at a time; see the
    module docstring."""

    def __init__(self, name: str) -> None:
        self.model = model = cstr.build_model()
        start = time.perf_counter()
        self.controller = BACKENDS[name](model, CSTR_SETTINGS, {})
        self.build_s = time.perf_counter() - start
        self.reference = DoMpcController(model, CSTR_SETTINGS, {}, ipopt_options=CONVERGED)
        self.x = model.states.vector(cstr.INITIAL_STATE)
        self.u = model.inputs.vector(cstr.INITIAL_INPUTS)
        self.d, self.target = model.disturbances.nominal, {"C_b": cstr.C_B_TARGET}
        self.times, self.cost, self.relative, self.in_spans = [], 0.0, [], []
        self.statuses: dict[str, int] = {}

    def step(self, k: int) -> None:
        model, x, u, d = self.model, self.x, self.u, self.d
        start = time.perf_counter()
        proposal = self.controller.step(k * model.dt, x, u, d, self.target)
        self.times.append(time.perf_counter() - start)
        self.statuses[proposal.status] = self.statuses.get(proposal.status, 0) + 1
        move = model.inputs.vector(proposal.setpoints)
        if k % 5 == 0:
            best = model.inputs.vector(
                self.reference.step(k * model.dt, x, u, d, self.target).setpoints)
            self.relative.append(float(np.max(np.abs(move - best)
                                              / np.maximum(np.abs(best), 1e-12))))
            self.in_spans.append(float(np.max(np.abs(move - best) / spans(model.inputs))))
        self.cost += ((x[1] - cstr.C_B_TARGET) ** 2 + 0.1 * ((move[0] - u[0]) / 100) ** 2
                      + 1e-3 * ((move[1] - u[1]) / 2000) ** 2)
        self.u, self.x = move, model.step(x, move, d)

    def result(self) -> dict:
        result = {**percentiles(self.times), "build_s": self.build_s,
                  "closed_loop_cost": self.cost,
                  "first_move_difference_relative": max(self.relative),
                  "first_move_difference_spans": max(self.in_spans),
                  "statuses": self.statuses, "final_C_b": float(self.x[1])}
        if isinstance(self.controller, FastMpcController):
            result["compiled"] = self.controller.compiled
            result["qp_fallbacks"] = self.controller.qp_fallbacks
        return result


def plant_loop(kind: str, name: str, steps: int) -> dict:
    """One backend's estimate + control steps on one plant kind; see the docstring."""
    defaults = plants.DEFAULTS[kind]
    model = plants.build_model(kind, dt=defaults.period_s)
    settings = defaults.controller
    if name.startswith("do-mpc"):
        # do-mpc has no economic cost or soft limits: it solves the tracking part
        settings = msgspec.structs.replace(settings, economic={}, output_limits={})
    try:
        controller = BACKENDS[name](model, settings, defaults.limits)
    except ValueError as error:
        return {"error": str(error)}
    estimator = build_estimator(model, defaults.estimator)
    x, u, d = model.states.nominal, model.inputs.nominal, model.disturbances.nominal
    state = estimator.initial_state(x)
    reference = dict(defaults.reference)
    weights = np.array([defaults.controller.tracking.get(n, 1.0) if n in reference else 0.0
                        for n in model.outputs.names])
    target = model.outputs.vector(reference)
    scale = spans(model.outputs)
    times, cost, first = [], 0.0, None
    for k in range(steps):
        measurement = model.outputs.mapping(model.output(0.0, x, u, d))
        start = time.perf_counter()
        state = estimator.step(state, u, d, measurement, defaults.period_s if k else 0.0)
        estimate = state.x[: len(model.states)]  # estimated parameters follow the states
        proposal = controller.step(k * model.dt, estimate, u, d, reference)
        times.append(time.perf_counter() - start)
        u = model.inputs.vector(proposal.setpoints)
        first = u if first is None else first
        x = model.step(x, u, d)
        cost += float(np.sum(weights * ((model.output(0.0, x, u, d) - target) / scale) ** 2))
    p99 = float(np.percentile(times, 99))
    return {**percentiles(times), "period_s": defaults.period_s,
            "margin": defaults.period_s / p99, "tracking_cost": cost,
            "first_move": first.tolist(), "input_spans": spans(model.inputs).tolist()}


BLOCK = 10
"""CSTR steps a backend runs before the next backend's turn."""


def run(steps: int, plant_steps: int) -> dict:
    # the backends' loops advance in turn, BLOCK steps each, so load from other work on
    # the machine falls on all of them alike, while each controller keeps its working set
    # in cache from one step to the next, as in an asset actor that runs only its own
    loops = {name: CstrLoop(name) for name in BACKENDS}
    for block in range(0, steps, BLOCK):
        for loop in loops.values():
            for k in range(block, min(block + BLOCK, steps)):
                loop.step(k)
    cstr_results = {name: loop.result() for name, loop in loops.items()}
    baseline = cstr_results["do-mpc default"]["median_ms"]
    for result in cstr_results.values():
        result["speedup_vs_do_mpc_default"] = baseline / result["median_ms"]
    per_plant = {}
    for kind in plants.BUILDERS:
        rows = {name: plant_loop(kind, name, plant_steps) for name in PLANT_BACKENDS}
        reference = rows["do-mpc default"]
        for row in rows.values():
            if "error" not in row and "error" not in reference:
                row["first_move_difference_spans"] = float(np.max(
                    np.abs(np.subtract(row["first_move"], reference["first_move"]))
                    / np.array(row["input_spans"])))
        per_plant[kind] = rows
    fast = cstr_results["fast SQP compiled"]
    return {
        "cstr": cstr_results,
        "plants": per_plant,
        "acceptance": {
            "cstr_speedup_at_least_40": fast["speedup_vs_do_mpc_default"] >= 40,
            "cstr_median_at_most_1ms": fast["median_ms"] <= 1.0,
            "cstr_first_move_within_1e-4_relative": fast["first_move_difference_relative"] <= 1e-4,
            "every_plant_fast_margin_at_least_10": all(
                rows["fast SQP"].get("margin", 0) >= 10 for rows in per_plant.values()),
        },
    }


def save(result: dict) -> None:
    results_file.save("mpc", result)


def print_summary(r: dict) -> None:
    m = r["machine"]
    print(f"mpc: {m['cpus']} CPUs (load {m['load_average_1m_before']:.1f} before), "
          f"CasADi {m['casadi']}")
    print(f"  CSTR, {r['steps']} steps   {'median ms':>10} {'p99 ms':>9} {'x do-mpc':>9} "
          f"{'cost':>10} {'du rel':>9} {'du/span':>9}")
    for name, s in r["cstr"].items():
        print(f"  {name:<22} {s['median_ms']:>10.3f} {s['p99_ms']:>9.3f} "
              f"{s['speedup_vs_do_mpc_default']:>9.1f} {s['closed_loop_cost']:>10.5f} "
              f"{s['first_move_difference_relative']:>9.1e} "
              f"{s['first_move_difference_spans']:>9.1e}")
    print(f"  {'plant / backend':<40} {'median ms':>10} {'p99 ms':>9} {'period s':>9} "
          f"{'margin':>9} {'du/span':>9}")
    for kind, rows in r["plants"].items():
        for name, s in rows.items():
            if "error" in s:
                print(f"  {kind + ' / ' + name:<40} {s['error']}")
                continue
            print(f"  {kind + ' / ' + name:<40} {s['median_ms']:>10.3f} {s['p99_ms']:>9.3f} "
                  f"{s['period_s']:>9g} {s['margin']:>9.0f} "
                  f"{s.get('first_move_difference_spans', 0.0):>9.1e}")
    print("  acceptance:", r["acceptance"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="CSTR closed-loop steps")
    parser.add_argument("--plant-steps", type=int, default=30, help="steps per plant")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # other work on the machine skews every timing here
    result = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "casadi": casadi.__version__, "platform": platform.platform(),
                    "load_average_1m_before": load_before},
        "steps": args.steps, "plant_steps": args.plant_steps,
        **run(args.steps, args.plant_steps),
    }
    save(result)
    print_summary(result)


if __name__ == "__main__":
    main()
