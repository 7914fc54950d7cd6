"""How long one estimator step takes, per plant kind, against do-mpc's EKF.

    python bench/estimators.py

Each asset runs one estimator step per control period, before its MPC solve, so the
step must be a small fraction of the period. For every plant kind in
``plants.BUILDERS`` (its default period and estimator tuning), and for a ten-state
plant (ten heated tanks in series, the size the acceptance criterion names):

- Data: a nominal ``SimulatedPlant`` with its default measurement noise, the inputs
  stepped +-10 % every 20 periods, recorded for STEPS periods (measurements, inputs).
- Timing: the estimator is fed the recorded data step by step (``step(state, u, d, y,
  period)``); each step is timed with ``time.perf_counter`` after WARMUP untimed steps,
  over REPEATS passes. Reported: median and p99 step time in microseconds for the
  linear KF, the EKF, the EKF with the prediction compiled to native code
  (``EstimatorSettings.compiled``; built before timing) and the UKF.
- Baseline, on every plant of up to MAX_STATES states: ``do_mpc.estimator.EKF`` on an
  equivalent do-mpc model: a discrete do-mpc model whose right-hand side is the same
  PlantModel RK4 step (nominal parameters and disturbances), with the same Q dt, R and
  P0, fed the same data (``make_step(y, u, Q_k, R_k)``), one pass of at most
  DOMPC_BUDGET_S of timed steps (it inverts S by cofactor expansion, which takes tens
  to hundreds of milliseconds from six outputs up). Speed-ups are do-mpc's median (and
  p99) over ours, in the same run. The largest difference between the two EKFs'
  estimates over the pass, in units of our EKF's standard deviation, shows they
  compute the same thing: to rounding where the outputs are linear in the state (tank,
  tanks in series); where they are not, do-mpc evaluates C = dh/dx at the previous
  posterior instead of the prior, and the two differ by a fraction of a std.

The acceptance criterion (EKF step at most 50 us median for plants of up to 10 states)
is evaluated per plant, for the interpreted and the compiled EKF. Results are merged
into ``bench/results.json`` under the key ``"estimators"``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
import warnings
from datetime import UTC, datetime

import casadi as ca
import msgspec
import numpy as np
import results_file

import plants
from controllers import build_estimator
from engine.config import EstimatorSettings, SimulationSettings
from engine.model import PlantModel
from engine.signals import Signal
from engine.simulation import SimulatedPlant

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*(ONNX|PyTorch).*", category=UserWarning)
    import do_mpc

STEPS = 400
WARMUP = 20
REPEATS = 5
LIMIT_US = 50.0
MAX_STATES = 10
DOMPC_BUDGET_S = 3.0
MIN_DOMPC_STEPS = 20
VARIANTS = {"kf": {"kind": "kf"}, "ekf": {"kind": "ekf"},
            "ekf_compiled": {"kind": "ekf", "compiled": True}, "ukf": {"kind": "ukf"}}


def tanks_in_series(n: int = MAX_STATES, dt: float = 30.0) -> PlantModel:
    """``n`` well-mixed heated tanks in series: volume V, flow q, heater power Q on the
    first, losses k (T - T_amb)^1.25 each; outputs the first, middle and last
    temperatures. dT_1/dt = q/V (T_in - T_1) + Q/(rho c V) - k (T_1 - T_amb)^1.25 /(rho c V),
    dT_i/dt = q/V (T_{i-1} - T_i) - k (T_i - T_amb)^1.25 / (rho c V)."""
    names = [f"T{i + 1}" for i in range(n)]
    measured = [names[0], names[n // 2], names[-1]]

    def dynamics(x, u, d, p):
        capacity = 1000.0 * 4180.0 * p["V"]
        rates, upstream = {}, d["T_in"]
        for i, name in enumerate(names):
            loss = p["k"] * ca.fmax(x[name] - d["T_amb"], 0.0) ** 1.25 / capacity
            heat = u["Q"] / capacity if i == 0 else 0.0
            rates[name] = u["q"] / p["V"] * (upstream - x[name]) + heat - loss
            upstream = x[name]
        return rates

    return PlantModel.build(
        "tanks_in_series",
        states=[Signal(s, "K", 320.0, 273.15, 373.15, std=1e-3) for s in names],
        inputs=[Signal("q", "m^3/s", 0.01, 0.0, 0.1), Signal("Q", "W", 2.0e5, 0.0, 1.0e6)],
        disturbances=[Signal("T_in", "K", 300.0), Signal("T_amb", "K", 290.0)],
        parameters=[Signal("V", "m^3", 2.0), Signal("k", "W/K^1.25", 50.0)],
        outputs=[Signal(s, "K", 320.0, 273.15, 373.15, std=0.1) for s in measured],
        dynamics=dynamics,
        output=lambda x, u, d, p: {s: x[s] for s in measured},
        dt=dt,
    )


def models() -> dict[str, tuple[PlantModel, EstimatorSettings]]:
    """Every kind with its default filter settings, on its states alone (without the
    parameters a kind may estimate as augmented states), as do-mpc's EKF runs them."""
    out = {kind: (plants.build_model(kind, dt=plants.DEFAULTS[kind].period_s),
                  msgspec.structs.replace(plants.DEFAULTS[kind].estimator,
                                          estimate_parameters={}))
           for kind in plants.BUILDERS}
    out["tanks_in_series (10 states)"] = (tanks_in_series(), EstimatorSettings())
    return out


def record(model: PlantModel) -> list[tuple[np.ndarray, np.ndarray, dict[str, float]]]:
    """(u, d, y) of a nominal simulated plant, inputs stepped +-10 % every 20 periods."""
    plant = SimulatedPlant("bench", model, SimulationSettings(seed=1))
    nominal = model.inputs.nominal
    data = []
    for k in range(STEPS + WARMUP):
        u = np.clip(nominal * (1.1 if k // 20 % 2 else 0.9), model.inputs.lower,
                    model.inputs.upper)
        plant.apply(model.inputs.mapping(u))
        plant.advance(model.dt)
        data.append((plant.u.copy(), plant.d.copy(), plant.measure().values))
    return data


def percentiles(times: list[float]) -> dict[str, float]:
    return {"median_us": 1e6 * statistics.median(times),
            "p99_us": 1e6 * float(np.percentile(times, 99))}


def time_ours(model: PlantModel, settings: EstimatorSettings, data) -> tuple[dict, np.ndarray]:
    estimator = build_estimator(model, settings)
    times, estimates = [], []
    for _ in range(REPEATS):
        state = estimator.initial_state(model.states.nominal)
        for k, (u, d, y) in enumerate(data):
            start = time.perf_counter()
            state = estimator.step(state, u, d, y, model.dt)
            elapsed = time.perf_counter() - start
            if k >= WARMUP:
                times.append(elapsed)
            estimates.append(np.r_[state.x, np.sqrt(np.diag(state.P))])
    return percentiles(times), np.array(estimates[: len(data)])


def dompc_ekf(model: PlantModel, settings: EstimatorSettings):
    """do-mpc's EKF on a discrete do-mpc model with the PlantModel's RK4 step, and the
    Q dt, R and P0 our EKF uses (taken from our filter so both start equal)."""
    ours = build_estimator(model, msgspec.structs.replace(settings, kind="ekf"))
    dompc_model = do_mpc.model.Model("discrete", "SX")
    x = dompc_model.set_variable("_x", "x", shape=(len(model.states), 1))
    u = dompc_model.set_variable("_u", "u", shape=(len(model.inputs), 1))
    d, p = ca.DM(model.disturbances.nominal), ca.DM(model.parameters.nominal)
    dompc_model.set_rhs("x", model.F(x, u, d, p, model.dt))
    dompc_model.set_meas("y", model.h(x, u, d, p))  # with its (zero) noise input v
    dompc_model.setup()
    ekf = do_mpc.estimator.EKF(dompc_model)
    ekf.settings.t_step = model.dt
    ekf.x0 = model.states.nominal
    ekf.P0 = ours.filter.initial_covariance.copy()
    ekf.setup()
    ekf.set_initial_guess()
    Q = ours.filter.process_noise_rate * model.dt
    R = np.diag(ours.filter.measurement_variance)
    return ekf, Q, R


def time_dompc(model: PlantModel, settings: EstimatorSettings, data) -> tuple[dict, np.ndarray]:
    """One pass over ``data`` (do-mpc's EKF is slow on plants with several outputs: its
    gain inverts S by cofactor expansion), stopping after DOMPC_BUDGET_S of timed steps
    but not before MIN_DOMPC_STEPS."""
    ekf, Q, R = dompc_ekf(model, settings)
    times, estimates = [], []
    for k, (u, _, y) in enumerate(data):  # d is held nominal in do-mpc's model
        y_column = np.array([y[name] for name in model.outputs.names])[:, None]
        start = time.perf_counter()
        x = ekf.make_step(y_column, u[:, None], Q, R)
        elapsed = time.perf_counter() - start
        if k >= WARMUP:
            times.append(elapsed)
        estimates.append(x.ravel())
        if len(times) >= MIN_DOMPC_STEPS and sum(times) > DOMPC_BUDGET_S:
            break
    return {**percentiles(times), "steps": len(times)}, np.array(estimates)


def compare_with_dompc(model: PlantModel, settings: EstimatorSettings, data, entry: dict,
                       ekf_estimates: np.ndarray) -> dict:
    """do-mpc's EKF on the same data: its step times, our speed-up over it (its median
    and p99 over ours) and the largest estimate difference in units of our EKF's std."""
    dompc, estimates = time_dompc(model, settings, data)
    n = len(model.states)
    ours = ekf_estimates[: len(estimates)]
    difference = float(np.max(np.abs(estimates - ours[:, :n]) / ours[:, n:]))
    speedup = {variant: {"median": dompc["median_us"] / entry[variant]["median_us"],
                         "p99": dompc["p99_us"] / entry[variant]["p99_us"]}
               for variant in VARIANTS}
    return {**dompc, "speedup": speedup, "max_estimate_difference_in_ekf_std": difference}


def save(result: dict) -> None:
    results_file.save("estimators", result)


def measure_plant(model: PlantModel, settings: EstimatorSettings) -> dict:
    """Every variant's step times on one plant's recorded data; for plants of up to
    MAX_STATES states also the comparison with do-mpc's EKF and the 50 us verdicts."""
    data = record(model)
    entry = {"states": len(model.states), "outputs": len(model.outputs), "period_s": model.dt}
    for variant, options in VARIANTS.items():
        timing, estimates = time_ours(model, msgspec.structs.replace(settings, **options), data)
        entry[variant] = timing
        if variant == "ekf":
            ekf_estimates = estimates
    if len(model.states) <= MAX_STATES:
        entry["ekf_within_50us"] = entry["ekf"]["median_us"] <= LIMIT_US
        entry["ekf_compiled_within_50us"] = entry["ekf_compiled"]["median_us"] <= LIMIT_US
        entry["dompc_ekf"] = compare_with_dompc(model, settings, data, entry, ekf_estimates)
    entry["ekf_fraction_of_period"] = entry["ekf"]["median_us"] * 1e-6 / model.dt
    return entry


def main() -> None:
    load_before = os.getloadavg()[0]  # other work on the machine skews every timing here
    per_plant = {}
    for name, (model, settings) in models().items():
        per_plant[name] = entry = measure_plant(model, settings)
        print(f"  {name:<28} n_x {entry['states']:>2} n_y {entry['outputs']:>2}  " + "  ".join(
            f"{v} {entry[v]['median_us']:6.1f}/{entry[v]['p99_us']:6.1f}" for v in VARIANTS),
            flush=True)
        if "dompc_ekf" in entry:
            dompc = entry["dompc_ekf"]
            print(f"  {'':<28} do-mpc EKF {dompc['median_us']:.1f}/{dompc['p99_us']:.1f} us "
                  f"({dompc['steps']} steps): " + ", ".join(
                      f"{v} {r['median']:.0f}x" for v, r in dompc["speedup"].items())
                  + f" at the median; estimates agree to "
                  f"{dompc['max_estimate_difference_in_ekf_std']:.1e} std", flush=True)
    within = [p for p in per_plant.values() if p["states"] <= MAX_STATES]
    result = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "casadi": ca.__version__,
                    "do_mpc": do_mpc.__version__, "platform": platform.platform(),
                    "load_average_1m_before": load_before},
        "steps": STEPS, "warmup": WARMUP, "repeats": REPEATS,
        "plants": per_plant,
        "acceptance": {
            "ekf_median_at_most_50us_up_to_10_states": all(p["ekf_within_50us"] for p in within),
            "compiled_ekf_median_at_most_50us_up_to_10_states":
                all(p["ekf_compiled_within_50us"] for p in within),
            "slowest_ekf_median_us_up_to_10_states": max(p["ekf"]["median_us"] for p in within),
            "slowest_compiled_ekf_median_us_up_to_10_states":
                max(p["ekf_compiled"]["median_us"] for p in within),
        },
    }
    save(result)
    print(f"  acceptance: {result['acceptance']}")


if __name__ == "__main__":
    print(f"estimators: median/p99 step time in microseconds ({STEPS} steps x {REPEATS})")
    main()
