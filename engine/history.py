"""What the historian records: one typed record per asset per tick, and its points.

A :class:`TickRecord` is what an asset's tick hands to the historian (it crosses
processes, so it is a msgspec Struct). The store keeps it as *points* in the long/narrow
model of process historians (PI, Ignition, TimescaleDB's own advice)::

    series (asset, signal, unit, discrete)   point (series, time, value, std)

one row per recorded value. Why long/narrow rather than one wide row per tick: the
signals differ per kind and change when a model gains a state or a KPI (no schema
migration), each signal keeps its own sample time (a measurement's sample time is not the
tick's), exception and compression filtering drop values per signal (a wide row would be
mostly NULL), and rollups and queries are per signal. Columnar stores keep the narrow
model small: the series column is run-length encoded and time and value compress well.

History signal names within an asset (SI units, from the plant model's signal specs)::

    <output>               a measured output, at its sample time        output unit
    estimate.<state>       the state estimate, with its one-sigma std   state unit
    parameter.<name>       an estimated parameter, with its std         parameter unit
    nis                    the last innovation's NIS                    "1"
    requested.<input>      what the controller or an operator asked     input unit
    applied.<input>        what the safety gate let through             input unit
    reference.<output>     the output's target                          output unit
    mode                   Mode as its code in MODE_CODES (discrete)    ""
    kpi.<name>             a kind's KPI (cost rate, fillage, ...)       unit given by the kind

Times are UNIX seconds of the twin's clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from engine.messages import Estimate, Measurement, Mode

if TYPE_CHECKING:
    from engine.model import PlantModel
    from engine.signals import Signal

MODE_CODES: dict[Mode, int] = {Mode.OFF: 0, Mode.MANUAL: 1, Mode.ADVISORY: 2,
                               Mode.AUTONOMOUS: 3}
"""The value recorded for each mode in the discrete signal ``mode``."""


class TickRecord(msgspec.Struct, frozen=True):
    """Everything recorded for one asset at one tick instant ``time`` (twin UNIX s).

    ``measurement`` keeps its own sample time; the other values are recorded at ``time``.
    ``requested`` are the setpoints asked for this tick (controller or operator),
    ``applied`` those the safety gate let through, both in input units; ``reference``
    the output targets; ``kpis`` the kind's KPIs by name, in the units its
    ``history_signals(..., kpi_units)`` declares.
    """

    asset: str
    time: float
    measurement: Measurement | None = None
    estimate: Estimate | None = None
    requested: dict[str, float] = {}
    applied: dict[str, float] = {}
    reference: dict[str, float] = {}
    mode: Mode | None = None
    kpis: dict[str, float] = {}


class SeriesSpec(msgspec.Struct, frozen=True):
    """One recorded signal of one asset: its SI unit, whether it is discrete (a discrete
    signal is interpolated as a step, never linearly) and its span (upper - lower
    engineering bound, SI; NaN where unbounded), the base of percent deadbands."""

    asset: str
    signal: str
    unit: str
    discrete: bool = False
    span: float = math.nan


@dataclass(frozen=True)
class SeriesPoints:
    """Points of one series: ``time`` (UNIX s, increasing), ``value`` (SI) and ``std``
    (one sigma, SI; None for a series without one), equally long float64 arrays."""

    asset: str
    signal: str
    time: np.ndarray
    value: np.ndarray
    std: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.time.shape != self.value.shape or (
                self.std is not None and self.std.shape != self.time.shape):
            raise ValueError(f"series {self.asset}/{self.signal}: time, value and std must "
                             f"be equally long, got {self.time.shape}, {self.value.shape}, "
                             f"{None if self.std is None else self.std.shape}")

    def __len__(self) -> int:
        return int(self.time.size)

    def take(self, keep: np.ndarray) -> SeriesPoints:
        """The points selected by index or mask ``keep``."""
        return SeriesPoints(self.asset, self.signal, self.time[keep], self.value[keep],
                            None if self.std is None else self.std[keep])


def history_signals(asset: str, model: PlantModel, *, estimated: Iterable[str] = (),
                    kpi_units: Mapping[str, str] | None = None) -> list[SeriesSpec]:
    """The series an asset of ``model`` records, with their SI units: its outputs,
    state estimates, the ``estimated`` parameters, NIS, requested and applied inputs (and
    the disturbances an operator may set), references, mode and ``kpi_units``'s KPIs."""
    def spec(name: str, signal: Signal) -> SeriesSpec:
        span = signal.upper - signal.lower
        return SeriesSpec(asset, name, signal.unit, span=span if math.isfinite(span) else math.nan)

    writable = [*model.inputs, *model.disturbances]
    specs = [spec(s.name, s) for s in model.outputs]
    specs += [spec(f"estimate.{s.name}", s) for s in model.states]
    specs += [spec(f"parameter.{name}", model.parameters[name]) for name in estimated]
    specs.append(SeriesSpec(asset, "nis", "1"))
    specs += [spec(f"{role}.{s.name}", s) for role in ("requested", "applied") for s in writable]
    specs += [spec(f"reference.{s.name}", s) for s in model.outputs]
    specs.append(SeriesSpec(asset, "mode", "", discrete=True))
    specs += [SeriesSpec(asset, f"kpi.{name}", unit) for name, unit in (kpi_units or {}).items()]
    return specs


def points_of(records: Iterable[TickRecord]) -> list[SeriesPoints]:
    """The points of ``records``, grouped per series, in time order of the records."""
    columns: dict[tuple[str, str], tuple[list[float], list[float], list[float] | None]] = {}

    def add(asset: str, signal: str, t: float, value: float, std: float | None = None) -> None:
        column = columns.get((asset, signal))
        if column is None:
            column = columns[(asset, signal)] = ([], [], None if std is None else [])
        column[0].append(t)
        column[1].append(value)
        if column[2] is not None:
            column[2].append(std if std is not None else np.nan)

    for record in records:
        asset, t = record.asset, record.time
        if record.measurement is not None:
            for name, value in record.measurement.values.items():
                add(asset, name, record.measurement.time, value)
        if record.estimate is not None:
            estimate = record.estimate
            for name, value in estimate.values.items():
                add(asset, f"estimate.{name}", estimate.time, value, estimate.std.get(name))
            for name, value in estimate.parameters.items():
                add(asset, f"parameter.{name}", estimate.time, value,
                    estimate.parameter_std.get(name))
            add(asset, "nis", estimate.time, estimate.nis)
        for role, values in (("requested", record.requested), ("applied", record.applied),
                             ("reference", record.reference), ("kpi", record.kpis)):
            for name, value in values.items():
                add(asset, f"{role}.{name}", t, value)
        if record.mode is not None:
            add(asset, "mode", t, float(MODE_CODES[record.mode]))
    return [SeriesPoints(asset, signal, np.asarray(t, float), np.asarray(v, float),
                         None if s is None else np.asarray(s, float))
            for (asset, signal), (t, v, s) in columns.items()]
