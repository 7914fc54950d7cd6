"""Replay: an asset's recorded history fed back through its twin, off line, in lock-step.

An export of the historian (``twinloop history export``, engine.historian.export: one row
per series and time, columns ``asset, signal, unit, mode, time, value, std``) holds what
the plant really did: its measured outputs at their sample times, the estimates, NIS,
``requested.<input>`` and ``applied.<input>`` (what the safety gate let through),
``reference.<output>`` and ``mode`` at each tick time (engine.history). ``replay`` runs
the asset's ControlLoop over it with a new tuning (a controller change as
controllers.tuning.retune takes it, and an estimator change merged over the asset's
EstimatorSettings), open loop on the recorded plant:

    start:   x_hat = the first recorded estimate (states and estimated parameters),
             P = diag(std^2) of it (the recorded std; the covariances are not recorded);
             the last estimate at or before the first recorded applied input, if any;
             u = the last recorded applied value at or before then (else the first one
             recorded after it, else the site file's)
    every recorded tick time t_k (the times of requested/applied/reference/mode points;
    without any, the measurements' sample times):
             reference <- the recorded reference at t_k
             y_j, t_(k-1) < s_j <= t_k  (recorded measurements):
                 all but the newest: loop.observe(y_j); the newest: in the tick
             result = loop.tick(t_k, y, gate, propose=mode != OFF)   (engine.loop)
             gate: engine.gate.PolicyGate over the tuned limits and the site's
                   interlocks over the asset's own signals, in the recorded mode,
                   decides the replayed proposal (what the new tuning would have written)
                   and returns the recorded applied values as the decision: the twin
                   holds what the plant really had, and the rate limits start from it

So the estimator sees the recorded measurements and inputs, and with the recorded tuning
it reproduces the recorded estimates: exactly for a lock-step recording that starts at
the asset's start (the first correction's P is diagonal there), within a fraction of
their std after a mid-run start (the covariances are not recorded; tank-01 of
tests/sites/two_tanks.toml: 0.11 std at most over ten periods). A real-time recording
reproduces up to the input timing (its writes reached the plant after the tick time).
The controller proposes from those estimates with the new tuning; the plant is not
simulated, so its proposals are what the new tuning would have asked at each instant of
the real run, not a new closed-loop trajectory (a what-if is that). Disturbances the
historian does not record (an ambient temperature) stay at the site file's values; the
applied ones (a terminal's draws) follow the record.

Anomalies: a correction is an anomaly when NIS > chi2.ppf(1 - significance, dof) (dof:
outputs corrected with); recorded ones use the recorded NIS and the site file's
significance, replayed ones the replayed filter's flag.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv
import pyarrow.parquet
from scipy.stats import chi2

import plants
from controllers import CONTROLLER_BACKENDS, build_controller, build_estimator
from controllers.tuning import retune
from engine.config import AssetConfig, EstimatorSettings, Interlock
from engine.gate import PolicyGate, own_interlocks
from engine.history import MODE_CODES
from engine.loop import ControlLoop
from engine.messages import Decision, GateRequest, Measurement, Mode
from engine.model import PlantModel

EXPORT_COLUMNS = ("asset", "signal", "time", "value")
"""Columns an export must have (``unit`` and ``std`` are read where present)."""
TICK_ROLES = ("requested.", "applied.", "reference.", "kpi.")
"""Series recorded at a tick's time (with ``mode``), not at a sample time."""
MODES = {code: mode for mode, code in MODE_CODES.items()}


@dataclass(frozen=True)
class Series:
    """One recorded series: ``time`` (UNIX s, increasing), ``value`` and ``std`` (NaN
    where none) in ``unit`` (SI)."""

    unit: str
    time: np.ndarray
    value: np.ndarray
    std: np.ndarray

    def at(self, times: np.ndarray) -> np.ndarray:
        """The value recorded at exactly each of ``times`` (NaN where none)."""
        index = np.searchsorted(self.time, times)
        found = index < self.time.size
        found[found] = self.time[index[found]] == times[found]
        values = np.full(times.shape, np.nan)
        values[found] = self.value[index[found]]
        return values

    def held(self, times: np.ndarray) -> np.ndarray:
        """The last value recorded at or before each of ``times`` (NaN before the first)."""
        index = np.searchsorted(self.time, times, side="right") - 1
        values = np.full(times.shape, np.nan)
        values[index >= 0] = self.value[index[index >= 0]]
        return values


def read_recording(path: str | Path, asset: str) -> dict[str, Series]:
    """The series of ``asset`` in the export at ``path`` (.parquet or .csv), by history
    signal name. ValueError naming the file and what is missing: a column, the asset."""
    path = Path(path)
    if path.suffix == ".parquet":
        table = pyarrow.parquet.read_table(path)
    elif path.suffix == ".csv":
        table = pyarrow.csv.read_csv(path, convert_options=pyarrow.csv.ConvertOptions(
            column_types={"asset": pa.string(), "signal": pa.string(), "unit": pa.string(),
                          "time": pa.float64(), "value": pa.float64(), "std": pa.float64()}))
    else:
        raise ValueError(f"--from {str(path)!r}: the suffix must be .parquet or .csv")
    missing = [c for c in EXPORT_COLUMNS if c not in table.column_names]
    if missing:
        raise ValueError(f"--from {str(path)!r}: no column {', '.join(missing)} (columns: "
                         f"{', '.join(table.column_names)}); export it with `twinloop history "
                         "export --mode raw` (or interpolated)")
    rows = table.filter(pc.equal(table["asset"], asset))
    if rows.num_rows == 0:
        present = sorted(set(table["asset"].to_pylist()))
        raise ValueError(f"--from {str(path)!r}: no history of asset {asset!r}; it holds "
                         f"{', '.join(map(str, present)) or 'no rows'}")
    signals = rows["signal"].to_numpy(zero_copy_only=False)
    times = rows["time"].to_numpy(zero_copy_only=False).astype(float)
    values = rows["value"].to_numpy(zero_copy_only=False).astype(float)
    stds = (rows["std"].to_numpy(zero_copy_only=False).astype(float)
            if "std" in rows.column_names else np.full(times.size, np.nan))
    units = (rows["unit"].to_numpy(zero_copy_only=False) if "unit" in rows.column_names
             else np.full(times.size, ""))
    recording = {}
    for signal in dict.fromkeys(signals.tolist()):
        keep = (signals == signal) & np.isfinite(times) & np.isfinite(values)
        order = np.argsort(times[keep], kind="stable")
        recording[signal] = Series(str(units[keep][0]) if keep.any() else "",
                                   times[keep][order], values[keep][order], stds[keep][order])
    return recording


def tuned(asset: AssetConfig, model: PlantModel,
          tuning: Mapping[str, Any]) -> tuple[AssetConfig, EstimatorSettings]:
    """The asset with ``tuning`` applied: its controller settings and limits by
    controllers.tuning.retune (every key but ``estimator``), and its estimator settings
    with ``tuning["estimator"]`` merged over them (dict fields by name). ValueError names
    the field and the bound."""
    if not isinstance(tuning, Mapping):
        raise ValueError(f"tuning must be an object, got {type(tuning).__name__}")
    change = {k: v for k, v in tuning.items() if k != "estimator"}
    settings, limits = retune(model, asset.resolved_controller(), asset.limits, change,
                              CONTROLLER_BACKENDS)
    estimator_change = tuning.get("estimator", {})
    if not isinstance(estimator_change, Mapping):
        raise ValueError(f"estimator: must be an object, got {type(estimator_change).__name__}")
    merged = msgspec.to_builtins(asset.resolved_estimator())
    for field, value in estimator_change.items():
        both_maps = isinstance(value, Mapping) and isinstance(merged.get(field), dict)
        merged[field] = {**merged[field], **value} if both_maps else value
    try:
        estimator = msgspec.convert(merged, EstimatorSettings)
    except msgspec.ValidationError as error:
        problem, _, where = str(error).partition(" - at `$.")
        raise ValueError(f"estimator.{where.rstrip('`')}: {problem}" if where
                         else f"estimator: {problem}") from None
    return (msgspec.structs.replace(asset, controller=settings, limits=limits,
                                    estimator=estimator), estimator)


@dataclass(frozen=True)
class Replay:
    """Recorded against replayed, one entry per tick time.

    Attributes:
        asset: the asset's id.
        time: tick times, UNIX s of the twin's clock.
        units: SI unit per state and writable signal name.
        recorded_estimate, replayed_estimate, replayed_std: per state (and estimated
            parameter, as ``parameter.<name>``), at the tick's correction (NaN: no
            measurement came, or none recorded at that time).
        recorded_nis, replayed_nis: NIS of the tick's correction (NaN: none).
        recorded_anomaly, replayed_anomaly: the correction failed the NIS test.
        requested, applied: recorded, per writable signal (NaN: none at that tick).
        held: the value the plant held before the tick (the last applied), per writable
            signal: a proposal's move is proposed - held.
        proposed: the replayed controller's setpoints (NaN: none asked).
        gated: what the safety policy would have let through of them (NaN: nothing).
        recorded_kpis: mean of each recorded ``kpi.<name>`` over the replay.
    """

    asset: str
    time: np.ndarray
    units: dict[str, str]
    recorded_estimate: dict[str, np.ndarray]
    replayed_estimate: dict[str, np.ndarray]
    replayed_std: dict[str, np.ndarray]
    recorded_nis: np.ndarray
    replayed_nis: np.ndarray
    recorded_anomaly: np.ndarray
    replayed_anomaly: np.ndarray
    requested: dict[str, np.ndarray]
    applied: dict[str, np.ndarray]
    held: dict[str, np.ndarray]
    proposed: dict[str, np.ndarray]
    gated: dict[str, np.ndarray]
    recorded_kpis: dict[str, float]

    def summary(self) -> dict[str, Any]:
        """Ticks; anomalies recorded and replayed; per state the mean |replayed -
        recorded estimate|; per writable signal the mean |proposed - requested| and
        |gated - applied|, and the mean move asked per tick, |requested - held| recorded
        and |proposed - held| replayed (NaN pairs left out); the recorded KPIs' means."""
        def mean_gap(a: np.ndarray, b: np.ndarray) -> float | None:
            both = np.isfinite(a) & np.isfinite(b)
            return float(np.mean(np.abs(a[both] - b[both]))) if both.any() else None

        return {
            "ticks": int(self.time.size),
            "anomalies": {"recorded": int(self.recorded_anomaly.sum()),
                          "replayed": int(self.replayed_anomaly.sum())},
            "estimate_gap": {n: mean_gap(self.replayed_estimate[n], self.recorded_estimate[n])
                             for n in self.replayed_estimate},
            "proposal_gap": {n: mean_gap(self.proposed[n], self.requested[n])
                             for n in self.proposed},
            "applied_gap": {n: mean_gap(self.gated[n], self.applied[n]) for n in self.gated},
            "move": {n: {"recorded": mean_gap(self.requested[n], self.held[n]),
                         "replayed": mean_gap(self.proposed[n], self.held[n])}
                     for n in self.proposed},
            "recorded_kpis": dict(self.recorded_kpis),
        }


def replay(asset: AssetConfig, recording: Mapping[str, Series],
           tuning: Mapping[str, Any] | None = None,
           interlocks: Sequence[Interlock] = ()) -> Replay:
    """Replay ``recording`` (read_recording) through the resolved ``asset``'s loop with
    ``tuning`` (see ``tuned``), as the module docstring says; the gate judges the site's
    ``interlocks`` over the asset's own signals (engine.gate.own_interlocks). ValueError
    naming the signal when an output the filter corrects with, or every state estimate,
    is not recorded."""
    model = plants.model_of(asset)
    original = asset.resolved_estimator()
    asset, estimator_settings = tuned(asset, model, tuning or {})
    filtered = [n for n in model.outputs.names if n not in estimator_settings.unfiltered_outputs]
    missing = [n for n in filtered if n not in recording]
    if missing:
        raise ValueError(f"asset {asset.id!r}: measured output(s) {', '.join(missing)} not "
                         f"recorded (the filter corrects with {', '.join(filtered)}); recorded: "
                         f"{', '.join(sorted(recording))}")
    missing = [f"estimate.{n}" for n in model.states.names if f"estimate.{n}" not in recording]
    if missing:
        raise ValueError(f"asset {asset.id!r}: {', '.join(missing)} not recorded: the replay "
                         "starts from the first recorded estimate")
    estimator = build_estimator(model, estimator_settings)
    controller = build_controller(model, asset.resolved_controller(), asset.limits)
    writable = [n for n in asset.limits]
    states = [*model.states.names, *(f"parameter.{n}" for n in estimator.parameter_names)]

    first = _start_time(recording, model)
    ticks = _tick_times(recording, model, first)
    measurements = _measurements(asset.id, recording, model, first)
    u0 = {**asset.inputs}
    for name in model.inputs.names:
        inputs = _series(recording, f"applied.{name}")
        held = inputs.held(np.array([first]))[0]
        if math.isfinite(held) or inputs.time.size:
            u0[name] = float(held if math.isfinite(held) else inputs.value[0])
    loop = ControlLoop(asset.id, model, estimator, controller,
                       x0={n: recording[f"estimate.{n}"].held(np.array([first]))[0]
                           for n in model.states.names},
                       u0=u0, d=asset.disturbances, reference=asset.reference, t0=first)
    _start_estimate(loop, recording, states, first)
    initial = {**model.inputs.mapping(loop.u), **model.disturbances.mapping(loop.d)}
    gate = PolicyGate(asset, {n: initial[n] for n in writable}, first,
                      own_interlocks(interlocks, asset.id))
    keeper = gate.keeper.gate(asset.id)
    if measurements and measurements[0].time == first:  # the start estimate's: observed
        loop.last_measurement = measurements.pop(0)     # (its age), and the gate's watchdog
        keeper.note_measurement(loop.last_measurement)

    recorded = {role: {n: _series(recording, f"{role}.{n}").at(ticks) for n in writable}
                for role in ("requested", "applied")}
    references = {n: _series(recording, f"reference.{n}").held(ticks)
                  for n in model.outputs.names}
    modes = _series(recording, "mode").held(ticks)
    out = {key: np.full((ticks.size, len(names)), np.nan) for key, names in
           (("estimate", states), ("std", states), ("proposed", writable),
            ("gated", writable), ("held", writable))}
    nis = np.full(ticks.size, np.nan)
    anomaly = np.zeros(ticks.size, bool)
    estimate_times = np.full(ticks.size, np.nan)
    dofs = np.zeros(ticks.size, int)
    next_measurement = 0
    for k, t in enumerate(ticks):
        loop.set_reference({n: float(v[k]) for n, v in references.items() if math.isfinite(v[k])})
        due = []
        while next_measurement < len(measurements) and measurements[next_measurement].time <= t:
            due.append(measurements[next_measurement])
            next_measurement += 1
        for measurement in due[:-1]:
            loop.observe(measurement)
        mode = MODES.get(int(modes[k]), keeper.mode) if math.isfinite(modes[k]) else keeper.mode
        keeper.mode = mode
        applied = {n: float(v[k]) for n, v in recorded["applied"].items() if math.isfinite(v[k])}
        held = {**model.inputs.mapping(loop.u), **model.disturbances.mapping(loop.d)}
        out["held"][k] = [held[n] for n in writable]

        def recorded_gate(request: GateRequest, k: int = k,
                          applied: dict[str, float] = applied) -> Decision:
            decision = gate(request)
            for i, name in enumerate(writable):
                if name in decision.applied:
                    out["gated"][k, i] = decision.applied[name]
            keeper.take(applied, request.time)
            return msgspec.structs.replace(decision, applied=applied)

        result = loop.tick(float(t), due[-1] if due else None, recorded_gate,
                           propose=mode is not Mode.OFF)
        if result.proposal is not None:
            for i, name in enumerate(writable):
                out["proposed"][k, i] = result.proposal.setpoints.get(name, np.nan)
        if result.estimate is not None:
            out["estimate"][k] = loop.state.x
            out["std"][k] = np.sqrt(np.clip(np.diag(loop.state.P), 0.0, None))
            estimate_times[k] = result.estimate.time
            if loop.state.dof:
                nis[k], anomaly[k], dofs[k] = loop.state.nis, loop.state.anomaly, loop.state.dof

    def recorded_at_estimates(signal: str) -> np.ndarray:
        return _series(recording, signal).at(estimate_times)

    recorded_nis = np.where(dofs > 0, recorded_at_estimates("nis"), np.nan)
    thresholds = np.array([chi2.ppf(1 - original.significance, dof) if dof else np.inf
                           for dof in dofs])
    units = {**{s.name: s.unit for s in model.states},
             **{f"parameter.{n}": model.parameters[n].unit for n in estimator.parameter_names},
             **{n: (model.inputs[n] if n in model.inputs else model.disturbances[n]).unit
                for n in writable}}
    kpis = {name.removeprefix("kpi."): float(np.mean(s.value[(s.time >= first)
                                                              & (s.time <= ticks[-1])]))
            for name, s in recording.items() if name.startswith("kpi.")
            and ((s.time >= first) & (s.time <= ticks[-1])).any()}
    return Replay(
        asset=asset.id, time=ticks, units=units,
        recorded_estimate={n: recorded_at_estimates(n if n.startswith("parameter.")
                                                    else f"estimate.{n}") for n in states},
        replayed_estimate={n: out["estimate"][:, i] for i, n in enumerate(states)},
        replayed_std={n: out["std"][:, i] for i, n in enumerate(states)},
        recorded_nis=recorded_nis, replayed_nis=nis,
        recorded_anomaly=np.nan_to_num(recorded_nis, nan=-np.inf) > thresholds,
        replayed_anomaly=anomaly,
        requested=recorded["requested"], applied=recorded["applied"],
        held={n: out["held"][:, i] for i, n in enumerate(writable)},
        proposed={n: out["proposed"][:, i] for i, n in enumerate(writable)},
        gated={n: out["gated"][:, i] for i, n in enumerate(writable)},
        recorded_kpis=kpis)


def _series(recording: Mapping[str, Series], signal: str) -> Series:
    """The recorded series ``signal``, empty if it was not recorded."""
    empty = np.zeros(0)
    return recording.get(signal) or Series("", empty, empty, empty)


def _start_time(recording: Mapping[str, Series], model: PlantModel) -> float:
    """The time of the recorded estimate the replay starts from: the last one at or
    before the first recorded applied input (an export cut mid-run may begin with an
    estimate whose tick, and the inputs the plant held then, fell outside it), else the
    first one."""
    estimates = recording[f"estimate.{model.states.names[0]}"].time
    applied = [recording[f"applied.{n}"].time[0] for n in model.inputs.names
               if f"applied.{n}" in recording and recording[f"applied.{n}"].time.size]
    before = estimates[estimates <= min(applied)] if applied else estimates[:0]
    return float(before[-1] if before.size else estimates[0])


def _tick_times(recording: Mapping[str, Series], model: PlantModel,
                first: float) -> np.ndarray:
    """The recorded tick times after ``first`` (the measurements' sample times if no
    tick-time series is recorded). ValueError if there is none."""
    tick_series = [s.time for n, s in recording.items()
                   if n == "mode" or n.startswith(TICK_ROLES)]
    if not tick_series:
        tick_series = [recording[n].time for n in model.outputs.names if n in recording]
    times = np.unique(np.concatenate(tick_series))
    times = times[times > first]
    if times.size == 0:
        raise ValueError(f"nothing recorded after the first estimate (t = {first:g} s) to "
                         "replay")
    return times


def _measurements(asset: str, recording: Mapping[str, Series], model: PlantModel,
                  first: float) -> list[Measurement]:
    """The recorded measurements sampled at or after ``first``, one per sample time, each
    with the outputs recorded at that time."""
    by_time: dict[float, dict[str, float]] = {}
    for name in model.outputs.names:
        series = _series(recording, name)
        for t, v in zip(series.time.tolist(), series.value.tolist(), strict=True):
            if t >= first:
                by_time.setdefault(t, {})[name] = v
    return [Measurement(asset=asset, time=t, values=values)
            for t, values in sorted(by_time.items())]


def _start_estimate(loop: ControlLoop, recording: Mapping[str, Series], states: Sequence[str],
                    first: float) -> None:
    """Set the loop's estimate to the recorded one at ``first``: values, and P the
    diagonal of the recorded std squared (the estimator's own initial std where none)."""
    at = np.array([first])
    x, P = loop.state.x.copy(), loop.state.P.copy()
    for i, name in enumerate(states):
        series = _series(recording, name if name.startswith("parameter.") else f"estimate.{name}")
        value = series.held(at)[0]
        if math.isfinite(value):
            x[i] = value
        index = np.searchsorted(series.time, first, side="right") - 1
        std = series.std[index] if index >= 0 else math.nan
        if math.isfinite(std):
            P[i, :] = 0.0
            P[:, i] = 0.0
            P[i, i] = std ** 2
    loop.state.x, loop.state.P = x, P
