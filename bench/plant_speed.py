"""How fast the simulated plants run, and what numba buys the rod-pump wave equation.

    python bench/plant_speed.py

Every simulated asset steps its plant once per control period, so a plant must run far
faster than real time for a fleet, or a faster-than-real-time demo, to keep up. Every
figure here is a ratio against a baseline measured in the same run:

- Real-time factor, per plant kind in ``plants.BUILDERS``: a ``SimulatedPlant`` built
  at nominal with its kind's default period (``DEFAULTS[kind].period_s``) and held at
  the nominal inputs is stepped period by period (``advance(period)`` + ``measure()``,
  the model's output plus noise); real-time factor = simulated seconds / wall seconds,
  median of 5 repeats of enough periods for about 1 s of wall time (at least 20), plus
  the wall time per period. The baseline is real time.
- The same for ``rod_pump`` when each measurement comes from
  ``plants.rod_pump.synthesize_measurement`` (default rod string, noise 1, seeded
  generator), as a simulated well does: wave-equation surface card, noise on the
  dynamometer channels, Everitt & Jennings diagnosis, pump-card fillage.
- Wave-equation kernels: ``predict_cards`` and ``diagnose_downhole_card`` with
  ``implementation="numba"`` against ``"numpy"`` (vectorised NumPy, same algorithm),
  on the default rod string at the nominal well (the inputs ``synthesize_measurement``
  passes). Median of repeated calls (about 1 s, at least 7 calls, each); speed-up =
  NumPy median / numba median, the NumPy kernel being the baseline. The first numba
  call runs before any other in this process and is reported separately (its time
  beyond the median call): the kernels use ``cache=True``, so when
  ``plants/__pycache__`` holds a valid entry this is the cache load (``cache`` says
  "hit"), otherwise the JIT compile ("miss"). Both implementations get the same input;
  their cards' largest load difference is reported relative to the card's peak |load|.

Results are merged into ``bench/results.json`` under the key ``"plants"``.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numba
import numpy as np
import results_file

import plants
from engine.simulation import SimulatedPlant
from plants import rod_pump, rod_pump_wave_numba
from plants.rod_pump_wave import (
    PumpBoundary,
    diagnose_downhole_card,
    harmonic_surface_position,
    predict_cards,
)

TARGET_WALL_S = 1.0
"""Wall time aimed at by each repeat (stepping) or each implementation (kernels)."""
REPEATS = 5
MIN_PERIODS = 20
MIN_CALLS = 7


def time_stepping(kind: str, synthesize=None) -> dict:
    """Real-time factor of a nominal SimulatedPlant of ``kind`` stepped period by period."""
    period = plants.DEFAULTS[kind].period_s
    model = plants.build_model(kind, dt=period)

    def run(periods: int) -> float:
        plant = SimulatedPlant(kind, model, synthesize=synthesize)
        start = time.perf_counter()
        for _ in range(periods):
            plant.advance(period)
            plant.measure()
        return time.perf_counter() - start

    periods = max(MIN_PERIODS, math.ceil(TARGET_WALL_S * MIN_PERIODS / run(MIN_PERIODS)))
    wall = statistics.median(run(periods) for _ in range(REPEATS))
    return {"period_s": period, "periods": periods, "wall_s": wall,
            "real_time_factor": periods * period / wall, "wall_ms_per_period": 1e3 * wall / periods}


def call_times(call: Callable[[], object]) -> list[float]:
    """Wall seconds of repeated calls: at least MIN_CALLS, until TARGET_WALL_S has passed."""
    times: list[float] = []
    while len(times) < MIN_CALLS or sum(times) < TARGET_WALL_S:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def compare_kernel(call: Callable[[str], object], loads: Callable[[object], list[np.ndarray]],
                   dispatcher) -> dict:
    """Time ``call(implementation)`` for numba (first call apart) and NumPy; compare loads."""
    start = time.perf_counter()
    first = call("numba")
    first_s = time.perf_counter() - start
    numba_s = statistics.median(call_times(lambda: call("numba")))
    numpy_s = statistics.median(call_times(lambda: call("numpy")))
    reference = call("numpy")
    difference = max(float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                     for a, b in zip(loads(first), loads(reference), strict=True))
    return {"numba_ms": 1e3 * numba_s, "numpy_ms": 1e3 * numpy_s, "speedup": numpy_s / numba_s,
            "first_call_extra_ms": 1e3 * (first_s - numba_s),
            "cache": "hit" if sum(dispatcher.stats.cache_hits.values()) else "miss",
            "max_load_difference_rel_peak": difference}


def time_kernels() -> dict:
    """numba against NumPy for both wave-equation solvers at the nominal rod-pump well."""
    rods = rod_pump.DEFAULT_ROD_STRING
    model = rod_pump.build_model()
    x, u, d, p = (group.mapping(group.nominal) for group in
                  (model.states, model.inputs, model.disturbances, model.parameters))
    well = rod_pump._well(x, u, d, p, rods)  # the slow model's formulas, as the synthesis uses
    period = 60.0 / u["SPM"]
    position = harmonic_surface_position(p["stroke_length"], rod_pump.CARD_SAMPLES)
    pump = PumpBoundary(float(well["fluid_load"]), min(1.0, float(well["fillage"])),
                        rod_pump.LOAD_TRANSFER_LENGTH)
    nu = p["damping_factor"]

    predict = compare_kernel(
        lambda impl: predict_cards(rods, position, period, pump, nu, implementation=impl),
        lambda cards: [cards.surface.load, cards.pump.load], rod_pump_wave_numba.predict)
    surface = predict_cards(rods, position, period, pump, nu).surface
    diagnose = compare_kernel(
        lambda impl: diagnose_downhole_card(rods, surface.position, surface.load, period, nu,
                                            implementation=impl),
        lambda card: [card.load], rod_pump_wave_numba.diagnose)
    return {"inputs": {"spm": u["SPM"], "stroke_length_m": p["stroke_length"],
                       "fluid_load_n": pump.fluid_load, "fillage": pump.fillage,
                       "damping_factor": nu, "card_samples": rod_pump.CARD_SAMPLES},
            "predict_cards": predict, "diagnose_downhole_card": diagnose}


def save(result: dict) -> None:
    results_file.save("plants", result)


def print_summary(r: dict) -> None:
    m = r["machine"]
    print(f"plants: {m['cpus']} CPUs (load {m['load_average_1m_before']:.1f} before), "
          f"Python {m['python']}, NumPy {m['numpy']}, numba {m['numba']}")
    print(f"  {'plant (measurement)':<36} {'period s':>8} {'periods':>8} {'ms/period':>10} "
          f"{'x real time':>12}")
    for name, s in r["stepping"].items():
        print(f"  {name:<36} {s['period_s']:>8g} {s['periods']:>8} "
              f"{s['wall_ms_per_period']:>10.3f} {s['real_time_factor']:>12,.0f}")
    print(f"  {'kernel':<24} {'numba ms':>9} {'numpy ms':>9} {'speed-up':>9} "
          f"{'1st call +ms':>13} {'max |dload|/peak':>17}")
    for name in ("predict_cards", "diagnose_downhole_card"):
        k = r["kernels"][name]
        print(f"  {name:<24} {k['numba_ms']:>9.3f} {k['numpy_ms']:>9.3f} {k['speedup']:>9.1f} "
              f"{k['first_call_extra_ms']:>9.0f} ({k['cache']}) "
              f"{k['max_load_difference_rel_peak']:>13.1e}")


def main() -> None:
    load_before = os.getloadavg()[0]  # other work on the machine skews every timing here
    kernels = time_kernels()  # first: the first numba calls of the process are timed here
    stepping = {f"{kind} (output + noise)": time_stepping(kind) for kind in plants.BUILDERS}
    stepping["rod_pump (synthesize_measurement)"] = time_stepping(
        "rod_pump", synthesize=rod_pump.synthesize_measurement)
    result = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, "numba": numba.__version__,
                    "platform": platform.platform(), "load_average_1m_before": load_before},
        "target_wall_s": TARGET_WALL_S, "repeats": REPEATS,
        "stepping": stepping,
        "kernels": kernels,
    }
    save(result)
    print_summary(result)


if __name__ == "__main__":
    main()
