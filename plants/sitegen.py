"""Generated sites: a complete site file for many assets from a count per kind and a seed.

    twinloop site generate --wells 1000 --cells 300 --pumps 100 --tanks 20 --pipelines 2 \
        --seed 7 > field.toml

:func:`generate_site` writes the TOML text that ``examples/pilot.toml`` would be if it
were written by hand for that many assets: ``[site]``, ``[http]``, one ``[[assets]]``
table per asset (structure, parameters, reference, limits, ``[assets.simulation]`` with
its noise seed, the plant/twin mismatch and the plant's true initial states) and the
interlocks each kind needs (a pipeline's MAOP trip, a terminal's high-high levels and
loading-pump count). Settings an asset leaves out are its kind's defaults
(plants/<kind>.py). Ids are ``<prefix>-<n>`` zero-padded (well-0001, cell-001, pump-001).

Every asset draws from its own generator, ``random.Random(f"{seed}:{asset id}")``
(seeded through SHA-512 of the string, independent of PYTHONHASHSEED), so one seed
gives byte-identical output and an asset's values do not depend on how many other
assets the site has. Variation is physically sensible and stays inside every signal's
bounds:

* rod pumps (``--wells``): pump depth from :data:`ROD_STRING_DEPTHS`, reservoir
  pressure p_res = G depth with a gradient G of 5.5-7.5 kPa/m (depleted; the default
  well has 6.7), productivity index log-normal around the default (sigma 0.4, clipped
  to 0.4-2.5x), fluid density 900-1010 kg/m^3, and the rod taper (:data:`ROD_TAPERS`),
  pumping-unit stroke (:data:`STROKE_LENGTHS`, at least the one drawn) and plunger
  (:data:`PLUNGER_DIAMETERS`) sized as a production engineer would (:func:`size_well`):
  90 % fillage at no more than 8 SPM with a Goodman rod loading of at most 1 (a
  productivity no rod pump can lift is drawn again). The plant's productivity differs
  from the twin's by a log-normal ratio (sigma 0.2), its pump leaks 2-12 %.
* smelter cells (``--cells``): one potline, so one line current for every cell
  (300 kA x 0.98-1.02: the cells are in series); per cell the anode (1.0-1.4 uOhm)
  and cathode (0.8-1.1 uOhm, rising with pot age) resistances, the current efficiency
  (0.93-0.955) and the ACD when the twin takes over (42-52 mm around the 47 mm that
  closes the nominal heat balance; the plant's is up to 2 mm off the twin's, the ACD is
  not measured); the plant's current efficiency differs by 0.97-1.01 (at most 0.965,
  below the 0.99 bound) and its ledge heat-transfer coefficient by 0.9-1.1.
* centrifugal pumps (``--pumps``): pipeline friction 0.9-1.1x, suction tank level
  3-8 m, a delivery nomination of 0.090-0.100 m^3/s; the plant's impeller is worn
  (head factor 0.90-1.00, efficiency factor 0.90-1.00, correlated) and its line
  friction differs by 0.95-1.05; one pump in ten has a vibration drift of 0.2-1.5 mm/s.
* asphalt tanks (``--tanks``): inventory 400-1,000 t, the coil area and shell conductance
  and the hot-oil valve's range scaled with the surface (mass^(2/3)), a storage grade
  of 155, 160 or 165 °C; the plant's coil is fouled (0.85-1.02), its insulation
  0.9-1.2x, its inventory 0.97-1.05x the twin's.
* asphalt terminals (``--terminals``): the seed terminal (10 tanks, 3 truck
  stations), one to three fouled coils (0.7-0.95) and one or two tanks losing more heat
  (1.05-1.25); operator limits on draws and receipts, a high-high level trip per tank
  (0.7 m below its shell top) and at most 3 loading pumps at once.
* DRA pipelines (``--pipelines``): three stations; legs of 80-120 km with
  -50..+150 m of elevation gain; the plant's DRA is weaker (DR_max 0.85-1.0x) and its
  friction 0-8 % higher. At the nomination with the nominal 15 ppm of that weaker DRA
  the worst of 300 generated lines needs 0.94 of rated speed and 5.6 MPa (soft MAOP
  9.2 MPa); without DRA up to 1.06 of rated speed, so there DRA pays. An MAOP trip
  (9.6 MPa) holds the pump speeds of each pipeline.

Structural options (rod strings, station and tank counts) come from a few designs
only, so a process that caches compiled models per kind and structure builds a handful
per kind, however many assets it hosts; everything else is a parameter value.

A control period is at least :data:`MIN_WALL_PERIOD_S` wall seconds at the site's
speed (the pilot's pumps run 30 s periods at 60x for this reason).
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from engine.config import ModbusSettings
from engine.model import PlantModel
from plants import (
    BUILDERS,
    DEFAULTS,
    asphalt_tank,
    asphalt_terminal,
    centrifugal_pump,
    dra_pipeline,
    rod_pump,
    smelter_cell,
)

MIN_WALL_PERIOD_S = 0.5
"""Least wall time per control period at the site's speed, s: period >= this x speed."""
SIGNIFICANT_DIGITS = 4
"""Generated values are rounded to this many significant digits (readable files)."""


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


MAOP_TRIP = 9.6e6
"""Pa: a pipeline's discharge-pressure trip, as in the pilot (MAOP 9.93 MPa less a
margin, above the controller's soft limit dra_pipeline.SOFT_MAOP)."""
HIGH_HIGH_MARGIN = 0.7
"""m: a terminal tank's high-high level lies this far below its shell top (pilot)."""

INCH = rod_pump.INCH
ROD_STRING_DEPTHS = (1200.0, 1350.0, 1500.0, 1650.0, 1800.0)
"""Pump depths of the rod-string designs, m; 1500 m is the default well's."""
ROD_TAPERS = (((0.875, 0.4), (0.75, 0.6)), ((1.0, 0.25), (0.875, 0.3), (0.75, 0.45)))
"""Rod strings, lightest first: (rod diameter in inches, share of the length), top first.
API taper 76 as the default well, and taper 86 for wells whose loads it cannot carry."""
PLUNGER_DIAMETERS = tuple(_round(d * INCH) for d in (1.25, 1.5, 1.75, 2.0, 2.25))
"""API tubing-pump plunger sizes, m (as written: sized with the values the file holds)."""
STROKE_LENGTHS = tuple(_round(s * INCH) for s in (64.0, 74.0, 86.0, 100.0, 120.0, 144.0))
"""Polished-rod strokes of common pumping-unit sizes, m (as written)."""
DESIGN_SPM = 8.0
"""Highest speed a well is sized for at its reference fillage, 1/min (the VFD's range
is 2-12: headroom for a better well than the data says)."""
MAX_ROD_LOADING = 1.0
"""Goodman loading a sized well may reach at its design speed, pumped off."""
POTLINE_CURRENT = smelter_cell.NOMINAL_CURRENT
"""A, the line current the site's potline current is drawn around (x 0.98-1.02)."""


class SiteCounts(msgspec.Struct, frozen=True, kw_only=True):
    """How many assets of each kind; a kind with 0 is left out.

    Attributes:
        wells: sucker-rod pumps (rod_pump).
        cells: aluminium smelting cells of one potline (smelter_cell).
        pumps: pipeline centrifugal pumps (centrifugal_pump).
        tanks: stand-alone bitumen tanks (asphalt_tank).
        terminals: 10-tank asphalt terminals (asphalt_terminal).
        pipelines: three-station DRA pipeline sections (dra_pipeline).
    """

    wells: int = 0
    cells: int = 0
    pumps: int = 0
    tanks: int = 0
    terminals: int = 0
    pipelines: int = 0


COUNTS: dict[str, tuple[str, str, int]] = {
    "wells": (rod_pump.KIND, "well", 4),
    "cells": (smelter_cell.KIND, "cell", 3),
    "pumps": (centrifugal_pump.KIND, "pump", 3),
    "tanks": (asphalt_tank.KIND, "tank", 3),
    "terminals": (asphalt_terminal.KIND, "terminal", 2),
    "pipelines": (dra_pipeline.KIND, "line", 2),
}
"""SiteCounts field -> (asset kind, id prefix, least digits of the id number)."""


def generate_site(counts: SiteCounts, *, seed: int, name: str = "field",
                  speed: float = 60.0) -> str:
    """The site file (TOML text) for ``counts`` assets, varied from ``seed``.

    ``speed`` is the twin's clock rate (twin s per wall s). Raises ValueError for a
    negative count, no assets at all, more assets than Modbus ports above the default
    base port (one PLC per asset), a speed that is not positive or a name that is not a word."""
    if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
        raise ValueError(f"speed: must be a positive number of twin seconds per wall "
                         f"second, got {speed!r}")
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"name: {name!r} must be letters, digits, '-', '_', '.'")
    for field in COUNTS:
        count = getattr(counts, field)
        if not (isinstance(count, int) and count >= 0):
            raise ValueError(f"{field}: {count!r} must be a whole number >= 0")
    total = sum(getattr(counts, field) for field in COUNTS)
    if total == 0:
        raise ValueError(f"no assets: give at least one of {', '.join(COUNTS)} above 0")
    base_port = ModbusSettings().base_port
    if total > 65536 - base_port:
        raise ValueError(f"{total} assets need {total} Modbus ports (one PLC each) from "
                         f"{base_port}; at most {65536 - base_port} fit")
    site = _Site(designs=_Designs(), potline_current=_round(
        POTLINE_CURRENT * random.Random(f"{seed}:potline").uniform(0.98, 1.02)))
    blocks = [_header(counts, seed, name, speed)]
    interlocks: list[dict[str, Any]] = []
    for field, (kind, prefix, digits) in COUNTS.items():
        count = getattr(counts, field)
        if count == 0:
            continue
        width = max(digits, len(str(count)))
        blocks.append(f"# -- {count} x {kind} --")
        for n in range(1, count + 1):
            asset_id = f"{prefix}-{n:0{width}d}"
            asset = _GENERATORS[kind](random.Random(f"{seed}:{asset_id}"), site)
            period = DEFAULTS[kind].period_s
            if MIN_WALL_PERIOD_S * speed > period:
                asset = {**asset, "period_s": _round(MIN_WALL_PERIOD_S * speed)}
            interlocks += _INTERLOCKS.get(kind, _no_interlocks)(asset_id)
            blocks.append(_asset_table(asset_id, kind, asset))
    blocks += [_interlock_table(lock) for lock in interlocks]
    return "\n\n".join(blocks) + "\n"


# -- one asset per kind -------------------------------------------------------------------


def _rod_pump(rng: random.Random, site: _Site) -> dict[str, Any]:
    depth = rng.choice(ROD_STRING_DEPTHS)
    parameters = {
        "reservoir_pressure": _round(rng.uniform(5.5e3, 7.5e3) * depth),
        "fluid_density": _round(rng.uniform(900.0, 1010.0)),
    }
    stroke = rng.choice(STROKE_LENGTHS)
    design = None
    while design is None:  # a well no rod pump can lift is not rod-pumped: draw again
        parameters["productivity_index"] = _round(
            _nominal("rod_pump", "productivity_index")
            * min(2.5, max(0.4, rng.lognormvariate(0.0, 0.4))))
        design = size_well(site.designs, depth, parameters, stroke)
    structure, stroke, plunger = design
    parameters.update(stroke_length=stroke, plunger_diameter=plunger)
    return {
        "structure": structure,
        "parameters": parameters,
        "simulation": {
            "seed": rng.randrange(2**31),
            "mismatch": {"productivity_index": _round(rng.lognormvariate(0.0, 0.2))},
            "initial": {"pump_leak": _round(rng.uniform(0.02, 0.12))},
        },
    }


def rod_sections(depth: float, taper: tuple[tuple[float, float], ...]) -> list[dict[str, float]]:
    """A rod string of ``taper`` ((diameter in inches, share of the length), top first)
    to a pump at ``depth`` m, as a site file's ``structure.rod_sections``; whole metres."""
    lengths = [float(round(share * depth)) for _, share in taper[:-1]]
    lengths.append(depth - sum(lengths))
    return [{"length": length, "diameter": round(inches * INCH, 6)}
            for (inches, _), length in zip(taper, lengths, strict=True)]


def size_well(designs: _Designs, depth: float, parameters: Mapping[str, float],
              stroke_length: float) -> tuple[dict[str, Any], float, float] | None:
    """(structure, stroke length m, plunger diameter m) for a well with pump at ``depth``
    and ``parameters``, on a pumping unit of at least ``stroke_length``.

    The first, in the order rod taper (:data:`ROD_TAPERS`), unit stroke
    (:data:`STROKE_LENGTHS` from ``stroke_length`` up), plunger (:data:`PLUNGER_DIAMETERS`),
    that reaches the kind's reference fillage f_ref at a speed N of at most
    :data:`DESIGN_SPM` with a Goodman rod loading of at most :data:`MAX_ROD_LOADING`,
    both from the model's outputs pumped off (no submergence, the steady state below
    full fillage): fillage is inversely proportional to the speed there, so
    N = DESIGN_SPM f(DESIGN_SPM) / f_ref. None if there is none (the well needs another
    lift method)."""
    reference = DEFAULTS["rod_pump"].reference["fillage"]
    strokes = [S for S in STROKE_LENGTHS if S >= stroke_length]
    for taper in ROD_TAPERS:
        structure = {"rod_sections": rod_sections(depth, taper)}
        model = designs.model("rod_pump", structure)
        for S in strokes:
            for D in PLUNGER_DIAMETERS:
                fillage = _pumped_off(model, parameters, S, D, DESIGN_SPM)["fillage"]
                if fillage <= reference:
                    spm = max(2.0, DESIGN_SPM * fillage / reference)
                    if _pumped_off(model, parameters, S, D, spm)["rod_loading"] \
                            <= MAX_ROD_LOADING:
                        return structure, S, D
                    break  # a larger plunger only loads the rods more
    return None


def _pumped_off(model: PlantModel, parameters: Mapping[str, float], stroke: float,
                diameter: float, spm: float) -> dict[str, float]:
    """The model's outputs with no fluid above the pump intake, at ``spm``."""
    x = model.states.mapping(model.states.nominal)
    y = model.output(0.0, model.states.vector({**x, "submergence": 0.0}),
                     model.inputs.vector({"SPM": spm}), model.disturbances.nominal,
                     model.parameters.vector({**parameters, "stroke_length": stroke,
                                              "plunger_diameter": diameter}))
    return model.outputs.mapping(y)


def _smelter_cell(rng: random.Random, site: _Site) -> dict[str, Any]:
    acd = rng.uniform(0.042, 0.052)
    efficiency = rng.uniform(0.93, 0.955)
    return {
        "parameters": {
            "anode_resistance": _round(rng.uniform(1.0e-6, 1.4e-6)),
            "cathode_resistance": _round(rng.uniform(0.8e-6, 1.1e-6)),
            "current_efficiency": _round(efficiency),
        },
        "initial": {"acd": _round(acd)},
        "disturbances": {"line_current": site.potline_current},
        "simulation": {
            "seed": rng.randrange(2**31),
            "mismatch": {"current_efficiency": _round(rng.uniform(0.97, 1.01)),
                         "ledge_htc": _round(rng.uniform(0.9, 1.1))},
            "initial": {"acd": _round(acd + rng.uniform(-0.002, 0.002))},
        },
    }


def _centrifugal_pump(rng: random.Random, site: _Site) -> dict[str, Any]:
    wear = rng.uniform(0.0, 0.10)
    initial = {"head_factor": _round(1.0 - wear),
               "efficiency_factor": _round(1.0 - min(0.10, wear * rng.uniform(0.7, 1.3)))}
    if rng.random() < 0.1:
        initial["vibration_drift"] = _round(rng.uniform(2e-4, 1.5e-3))
    return {
        "parameters": {"pipe_loss": _round(_nominal("centrifugal_pump", "pipe_loss")
                                           * rng.uniform(0.9, 1.1))},
        "disturbances": {"suction_level": _round(rng.uniform(3.0, 8.0))},
        "reference": {"flow": _round(rng.uniform(0.090, 0.100))},
        "simulation": {
            "seed": rng.randrange(2**31),
            "mismatch": {"pipe_loss": _round(rng.uniform(0.95, 1.05))},
            "initial": initial,
        },
    }


def _asphalt_tank(rng: random.Random, site: _Site) -> dict[str, Any]:
    mass = _nominal("asphalt_tank", "mass") * rng.uniform(0.5, 1.25)
    surface = (mass / _nominal("asphalt_tank", "mass")) ** (2 / 3)
    reference = rng.choice((428.15, 433.15, 438.15))
    bulk = reference - rng.uniform(2.0, 12.0)
    default = DEFAULTS["asphalt_tank"].limits["m_oil"]
    return {
        "max_measurement_age_s": 600.0,
        "parameters": {
            "mass": _round(mass),
            "coil_area": _round(_nominal("asphalt_tank", "coil_area") * surface
                              * rng.uniform(0.9, 1.1)),
            "UA_loss": _round(_nominal("asphalt_tank", "UA_loss") * surface
                              * rng.uniform(0.9, 1.15)),
        },
        "initial": {"T_bulk": _round(bulk), "T_return": _round(bulk + rng.uniform(5.0, 9.0))},
        "inputs": {"m_oil": _round(0.6 * surface)},
        "reference": {"T_bulk": reference},
        "limits": {"m_oil": {"lower": default.lower,
                             "upper": _round(min(12.0, default.upper * surface)),
                             "max_rate": default.max_rate}},
        "simulation": {
            "seed": rng.randrange(2**31),
            "mismatch": {"k_foul": _round(rng.uniform(0.85, 1.02)),
                         "k_loss": _round(rng.uniform(0.9, 1.2)),
                         "mass": _round(rng.uniform(0.97, 1.05))},
        },
    }


def _asphalt_terminal(rng: random.Random, site: _Site) -> dict[str, Any]:
    tags = [f"{i + 1:02d}" for i in range(len(asphalt_terminal.SEED_TANKS))]
    limits = {}
    for tag in tags:
        limits[f"draw_{tag}"] = {"lower": 0.0, "upper": asphalt_terminal.STATION_PUMP_FLOW}
        limits[f"receipt_{tag}"] = {"lower": 0.0, "upper": asphalt_terminal.RECEIPT_FLOW}
    fouled = sorted(rng.sample(tags, rng.randint(1, 3)))
    lossy = sorted(rng.sample(tags, rng.randint(1, 2)))
    mismatch = {**{f"k_foul_{tag}": _round(rng.uniform(0.7, 0.95)) for tag in fouled},
                **{f"k_loss_{tag}": _round(rng.uniform(1.05, 1.25)) for tag in lossy}}
    return {
        "max_measurement_age_s": 1800.0,
        "limits": limits,
        "simulation": {"seed": rng.randrange(2**31), "mismatch": mismatch},
    }


def _dra_pipeline(rng: random.Random, site: _Site) -> dict[str, Any]:
    legs = range(1, 4)
    parameters: dict[str, float] = {}
    for i in legs:
        parameters[f"length_{i}"] = _round(rng.uniform(80.0e3, 120.0e3))
        parameters[f"elevation_gain_{i}"] = _round(rng.uniform(-50.0, 150.0))
    return {
        "max_measurement_age_s": 3600.0,
        "parameters": parameters,
        "simulation": {
            "seed": rng.randrange(2**31),
            "mismatch": {"dr_max": _round(rng.uniform(0.85, 1.0))},
            "initial": {"friction_multiplier": _round(rng.uniform(1.0, 1.08))},
        },
    }


_GENERATORS: dict[str, Callable[[random.Random, _Site], dict[str, Any]]] = {
    rod_pump.KIND: _rod_pump,
    smelter_cell.KIND: _smelter_cell,
    centrifugal_pump.KIND: _centrifugal_pump,
    asphalt_tank.KIND: _asphalt_tank,
    asphalt_terminal.KIND: _asphalt_terminal,
    dra_pipeline.KIND: _dra_pipeline,
}


# -- interlocks ---------------------------------------------------------------------------


def _no_interlocks(asset_id: str) -> list[dict[str, Any]]:
    return []


def _pipeline_interlocks(asset_id: str) -> list[dict[str, Any]]:
    """MAOP across the stations: any discharge pressure at the trip holds every pump."""
    legs = range(1, 4)
    return [{"kind": "trip", "name": f"{asset_id} MAOP",
             "when": [f"{asset_id}.discharge_pressure_{i}" for i in legs],
             "above": MAOP_TRIP,
             "hold": [f"{asset_id}.pump_speed_{i}" for i in legs]}]


def _terminal_interlocks(asset_id: str) -> list[dict[str, Any]]:
    """At most three tanks loading at once (three truck stations); each tank's
    high-high level closes its receipt."""
    tags = [f"{i + 1:02d}" for i in range(len(asphalt_terminal.SEED_TANKS))]
    locks: list[dict[str, Any]] = [{
        "kind": "max_active", "name": f"{asset_id} loading pumps",
        "signals": [f"{asset_id}.draw_{tag}" for tag in tags],
        "max_active": 3,
    }]
    for tag, tank in zip(tags, asphalt_terminal.SEED_TANKS, strict=True):
        locks.append({"kind": "trip", "name": f"{asset_id} tank {tag} high-high level",
                      "when": [f"{asset_id}.level_{tag}"],
                      "above": tank.shell_height - HIGH_HIGH_MARGIN,
                      "close": [f"{asset_id}.receipt_{tag}"]})
    return locks


_INTERLOCKS: dict[str, Callable[[str], list[dict[str, Any]]]] = {
    dra_pipeline.KIND: _pipeline_interlocks,
    asphalt_terminal.KIND: _terminal_interlocks,
}


# -- what the assets of one site share ----------------------------------------------------


class _Designs:
    """Models per (kind, structure), built once per generated site."""

    def __init__(self) -> None:
        self._models: dict[str, PlantModel] = {}

    def model(self, kind: str, structure: Mapping[str, Any]) -> PlantModel:
        key = kind + msgspec.json.encode(structure).decode()
        if key not in self._models:
            self._models[key] = BUILDERS[kind](dt=DEFAULTS[kind].period_s, **structure)
        return self._models[key]


@dataclass(frozen=True)
class _Site:
    """What every asset generator of one site sees: the models built for sizing, and
    the potline's current (its cells are in series), A."""

    designs: _Designs
    potline_current: float


def _nominal(kind: str, parameter: str) -> float:
    """A parameter's default value in the kind's default model."""
    return _nominal_parameters(kind)[parameter]


@functools.cache
def _nominal_parameters(kind: str) -> dict[str, float]:
    model = BUILDERS[kind](dt=DEFAULTS[kind].period_s)
    return model.parameters.mapping(model.parameters.nominal)


# -- TOML text ----------------------------------------------------------------------------


def _header(counts: SiteCounts, seed: int, name: str, speed: float) -> str:
    given = " ".join(f"--{field} {getattr(counts, field)}" for field in COUNTS
                     if getattr(counts, field))
    return "\n".join([
        f"# Generated by `twinloop site generate {given} --seed {seed} --name {name} "
        f"--speed {speed:g}`",
        "# (plants/sitegen.py): every asset behind a simulated plant that differs from its",
        "# twin (seeded mismatch, worn or fouled equipment, noisy sensors). Values are SI.",
        "# Settings an asset leaves out come from its kind's defaults in plants/<kind>.py.",
        "",
        "[site]",
        f"name = {_value(name)}",
        f"speed = {_value(float(speed))}",
        f"audit_db = {_value(f'var/{name}-audit.db')}",
        "",
        "[http]",
        'host = "127.0.0.1"',
        "port = 8000",
    ])


def _asset_table(asset_id: str, kind: str, asset: Mapping[str, Any]) -> str:
    lines = ["[[assets]]", f"id = {_value(asset_id)}", f"kind = {_value(kind)}"]
    for key in ("period_s", "max_measurement_age_s", "structure", "parameters", "initial",
                "inputs", "disturbances", "reference"):
        if key in asset:
            lines.append(f"{key} = {_value(asset[key])}")
    if asset.get("limits"):
        lines.append("[assets.limits]")
        lines += [f"{signal} = {_value(limit)}" for signal, limit in asset["limits"].items()]
    lines.append("[assets.simulation]")
    lines += [f"{key} = {_value(value)}" for key, value in asset["simulation"].items()]
    return "\n".join(lines)


def _interlock_table(lock: Mapping[str, Any]) -> str:
    return "\n".join(["[[interlocks]]", *(f"{key} = {_value(value)}"
                                          for key, value in lock.items())])


def _value(value: Any) -> str:
    """A TOML value: strings quoted (JSON escapes are TOML's), floats in Python's
    shortest round-trip form with a point or an exponent, mappings as inline tables."""
    if isinstance(value, str):
        return msgspec.json.encode(value).decode()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write the non-finite value {value} to a site file")
        return repr(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }" \
            if value else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to a site file")
