"""Rod-pump speed controller: hold pump fillage at its target by changing SPM.

A pump-off controller for a sucker-rod pump on a VFD (PHYSICS.md section 2, plant
:mod:`plants.rod_pump`). Each step it reads the fillage f and the Goodman rod loading
from the plant model's outputs at the estimated state and proposes a new speed N (SPM).

Control law. When the well is pumped off the pump lifts what flows in, q_in ≈ f PD,
and PD ∝ N, so f ∝ 1/N at fixed inflow: the sensitivity is df/dN = -f/N. The step
minimises the controller settings' one-step cost on that linearisation,

    w_y ((f + (df/dN) dN - r) / s_y)^2 + w_du (dN / s_u)^2
    => dN = -s_u w_y g e / (w_y g^2 + w_du),   g = (df/dN) s_u / s_y,  e = (f - r) / s_y

with r the fillage reference, w_y = ``tracking["fillage"]``, w_du =
``move_suppression["SPM"]`` and s the signal spans. Repeated every step on the
estimated fillage it acts like an integral controller (no steady offset). Above the
target (f = 1 while the annulus level is above the pump) the same step raises the speed
to draw the well down. Then, in order:

1. deadband: |f - r| <= ``deadband`` holds the speed (no hunting on card noise);
2. the speed changes by at most ``max_rate`` x dt per step and stays within the SPM
   limits (the tighter of the site limits and the signal bounds);
3. Goodman: a speed increase is cut back to keep the predicted rod loading (model
   output ``rod_loading``, API RP 11BR modified Goodman diagram) at or below
   ``max_rod_loading``, and held if even a small increase would exceed it; a rod
   loading above 100 % at the present speed lowers the speed, by at most one step, to
   where the predicted loading is back at ``max_rod_loading``.

Every proposal explains its move in words with the numbers, e.g.
"Fillage 64 % < 70 % -> SPM 8.0 -> 7.0 to prevent fluid pound".

Signals: reads outputs ``fillage`` [1] and ``rod_loading`` [1]; writes input ``SPM``
[1/min]; reference ``fillage`` (default 0.90).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np

from controllers.mpc_common import parameter_vector
from engine.config import ControllerSettings, SetpointLimit
from engine.messages import Proposal
from engine.model import PlantModel
from plants.rod_pump import POUND_FILLAGE

DEFAULT_FILLAGE = 0.90


class FillageController:
    """Pump-off (fillage) controller for one rod pump; see the module docstring.

    Args:
        model: the rod-pump PlantModel (input ``SPM``, outputs ``fillage`` and
            ``rod_loading``).
        settings: backend "fillage-rule"; ``tracking["fillage"]`` and
            ``move_suppression["SPM"]`` weigh the step, ``horizon`` the prediction.
        limits: site setpoint limits; ``limits["SPM"]`` bounds the speed and its rate.
        deadband: fillage band around the target with no move, 1.
        pound_fillage: fillage below which the move is to prevent fluid pound, 1.
        max_rod_loading: highest predicted Goodman loading a speed increase may reach, 1.
    """

    backend = "fillage-rule"

    def __init__(self, model: PlantModel, settings: ControllerSettings,
                 limits: Mapping[str, SetpointLimit] | None = None, *,
                 deadband: float = 0.02, pound_fillage: float = POUND_FILLAGE,
                 max_rod_loading: float = 0.95) -> None:
        if settings.backend != self.backend:
            raise ValueError(f"FillageController needs controller backend {self.backend!r}, "
                             f"got {settings.backend!r}")
        for group, names in ((model.inputs, ("SPM",)), (model.outputs, ("fillage", "rod_loading"))):
            missing = [n for n in names if n not in group]
            if missing:
                raise ValueError(f"plant {model.kind!r} lacks signal(s) {missing} the fillage "
                                 f"controller needs")
        if not 0 <= deadband < 0.5:
            raise ValueError(f"deadband must be within 0..0.5, got {deadband}")
        if not 0 < max_rod_loading <= 1.5:
            raise ValueError(f"max_rod_loading must be within 0..1.5, got {max_rod_loading}")
        self.model = model
        self.settings = settings
        self.deadband = deadband
        self.pound_fillage = pound_fillage
        self.max_rod_loading = max_rod_loading
        speed = model.inputs["SPM"]
        limit = (limits or {}).get("SPM", SetpointLimit())
        self.lower = max(speed.lower, limit.lower)
        self.upper = min(speed.upper, limit.upper)
        if not self.lower <= self.upper:
            raise ValueError(f"SPM limits {limit.lower}..{limit.upper} 1/min do not overlap the "
                             f"signal bounds {speed.lower}..{speed.upper} 1/min")
        self.max_step = limit.max_rate * model.dt
        self.tracking = settings.tracking.get("fillage", 1.0)
        self.move_suppression = settings.move_suppression.get("SPM", 0.1)
        self.speed_span = speed.upper - speed.lower
        fillage = model.outputs["fillage"]
        self.fillage_span = fillage.upper - fillage.lower
        self._spm = model.inputs.index("SPM")
        self._fillage = model.outputs.index("fillage")
        self._loading = model.outputs.index("rod_loading")

    def checkpoint(self) -> dict:
        """The rule keeps no state between steps: nothing to warm-start."""
        return {}

    def restore(self, data: Mapping) -> None:
        """Nothing to restore (see :meth:`checkpoint`)."""

    def step(self, t: float, x: np.ndarray, u: np.ndarray, d: np.ndarray,
             reference: Mapping[str, float], *, p: np.ndarray | None = None) -> Proposal:
        """Propose the SPM for the next step from the estimate ``x``, present ``u`` and
        the model parameters ``p`` (None: nominal) the predictions use."""
        started = time.perf_counter()
        p = parameter_vector(self.model, p)
        target = float(reference.get("fillage", DEFAULT_FILLAGE))
        if not 0 < target <= 1:
            raise ValueError(f"reference 'fillage' must be within 0..1, got {target}")
        speed = float(u[self._spm])
        fillage, loading = self._outputs(t, x, u, d, p, speed)
        status = "ok"
        if loading > 1.0:
            floor = self._bounded(speed - self.max_step)
            new = max(floor, self._highest_within_limit(t, x, u, d, p, floor, speed))
            reason = (f"Goodman load {_pct(loading)} of allowable > 100 % -> SPM {speed:.1f} -> "
                      f"{new:.1f} to relieve the rods")
        elif abs(fillage - target) <= self.deadband:
            new = speed
            reason = (f"Fillage {_pct(fillage)} within ±{_pct(self.deadband)} of target "
                      f"{_pct(target)} -> hold SPM {speed:.1f}")
        else:
            wanted = speed + self._step(fillage, target, speed)
            candidate = self._bounded(self._limited(speed, wanted))
            new, capped_loading = candidate, None
            if candidate > speed:
                new, capped_loading = self._goodman_cap(t, x, u, d, p, speed, candidate)
                if capped_loading is not None:
                    status = "limited"
            reason = self._explain(fillage, target, speed, candidate, new, capped_loading)
            if capped_loading is None and not math.isclose(new, wanted, abs_tol=1e-9):
                status = "limited"
                reason += f" (limited to {self.lower:.1f}..{self.upper:.1f} SPM, " \
                          f"{self.max_step:.1f} SPM per step)"
        return Proposal(asset="", time=t, setpoints={"SPM": new}, reason=reason, status=status,
                        solve_time_s=time.perf_counter() - started,
                        predicted=self._predict(x, u, d, p, new))

    # -- the law ---------------------------------------------------------------------------

    def _step(self, fillage: float, target: float, speed: float) -> float:
        """One-step weighted least-squares move on df/dN = -f/N (module docstring)."""
        gain = -(max(fillage, 1e-3) / speed) * self.speed_span / self.fillage_span
        error = (fillage - target) / self.fillage_span
        scaled = -self.tracking * gain * error / (self.tracking * gain**2 + self.move_suppression)
        return scaled * self.speed_span

    def _bounded(self, speed: float) -> float:
        return float(np.clip(speed, self.lower, self.upper))

    def _limited(self, speed: float, new: float) -> float:
        return float(np.clip(new, speed - self.max_step, speed + self.max_step))

    def _outputs(self, t, x, u, d, p, speed: float) -> tuple[float, float]:
        trial = np.array(u, dtype=float)
        trial[self._spm] = speed
        y = self.model.output(t, x, trial, d, p)
        return float(y[self._fillage]), float(y[self._loading])

    def _goodman_cap(self, t, x, u, d, p, speed: float, new: float) -> tuple[float, float | None]:
        """Largest speed in [speed, new] whose predicted rod loading stays within the
        limit (bisection; loading rises with speed). Returns the speed and, if capped,
        the loading that capped it."""
        _, loading_new = self._outputs(t, x, u, d, p, new)
        if loading_new <= self.max_rod_loading:
            return new, None
        capped = self._highest_within_limit(t, x, u, d, p, speed, new)
        return (capped if capped - speed >= 0.05 else speed), loading_new

    def _highest_within_limit(self, t, x, u, d, p, low: float, high: float) -> float:
        """Highest speed in [low, high] with predicted rod loading <= ``max_rod_loading``
        (bisection; loading rises with speed), ``low`` if none."""
        for _ in range(40):
            middle = (low + high) / 2
            if self._outputs(t, x, u, d, p, middle)[1] <= self.max_rod_loading:
                low = middle
            else:
                high = middle
        return low

    def _explain(self, fillage, target, speed, candidate, new, capped_loading) -> str:
        if capped_loading is not None:
            if new == speed:
                return (f"Fillage {_pct(fillage)} >= target {_pct(target)} but Goodman load "
                        f"{_pct(capped_loading)} of allowable at SPM {candidate:.1f} > "
                        f"{_pct(self.max_rod_loading)} -> hold SPM {speed:.1f}")
            return (f"Fillage {_pct(fillage)} >= target {_pct(target)} but Goodman load would "
                    f"reach {_pct(capped_loading)} of allowable -> SPM {speed:.1f} -> {new:.1f}")
        if fillage < self.pound_fillage:
            return (f"Fillage {_pct(fillage)} < {_pct(self.pound_fillage)} -> SPM {speed:.1f} -> "
                    f"{new:.1f} to prevent fluid pound")
        if fillage < target:
            return (f"Fillage {_pct(fillage)} < target {_pct(target)} -> SPM {speed:.1f} -> "
                    f"{new:.1f} to match the pump to the inflow")
        return (f"Fillage {_pct(fillage)} >= target {_pct(target)}: pump-off margin -> SPM "
                f"{speed:.1f} -> {new:.1f} to draw the well down")

    def _predict(self, x, u, d, p, new: float) -> dict[str, list[float]]:
        """Fillage and rod loading over the horizon with the new speed held."""
        trial = np.array(u, dtype=float)
        trial[self._spm] = new
        state = np.array(x, dtype=float)
        fillage, loading = [], []
        for _ in range(self.settings.horizon):
            state = self.model.step(state, trial, d, p)
            y = self.model.output(0.0, state, trial, d, p)
            fillage.append(float(y[self._fillage]))
            loading.append(float(y[self._loading]))
        return {"fillage": fillage, "rod_loading": loading}


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.0f} %"
