"""What each kind's operator screen shows, computed from the twin's estimate.

``GET /assets/{id}/view`` answers one of these Structs (tagged by ``kind``). Each is
computed by its plant module's ``view(model, asset, x, u, d, p, y, reference, measured)``
from named SI values: the estimated states and parameters, the applied inputs, the
disturbances, the model's outputs there, the controller's reference and the latest
measurement, with the asset's configuration (structure, nomination).
Nothing here is measured directly; each field says what model relation it comes from.
Values are SI (the console converts for display).
"""

from __future__ import annotations

import msgspec


class Curve(msgspec.Struct, frozen=True, kw_only=True):
    """A sampled curve: ``y`` against ``x``, in the units given."""

    x: list[float]
    y: list[float]
    x_unit: str
    y_unit: str


class GoodmanTaper(msgspec.Struct, frozen=True, kw_only=True):
    """One rod taper section on the modified Goodman diagram (API RP 11BR), Pa.

    ``min_stress`` and ``max_stress`` at the top of the section (polished-rod loads less
    the buoyant weight of the sections above, over its area); ``allowable`` the diagram's
    S_a = (T/4 + 0.5625 S_min) SF at that S_min; ``loading`` = (S_max - S_min) /
    (S_a - S_min), above 1 outside the diagram."""

    section: int
    diameter: float
    length: float
    min_stress: float
    max_stress: float
    allowable: float
    loading: float


class RodPumpView(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="rod_pump"):
    """Dual dynacard, fillage and Goodman diagram of a sucker-rod pump.

    ``surface``: polished-rod load (N, static weight included) against position (m)
    predicted by the wave equation (Gibbs, lumped masses) for the estimated well;
    ``downhole``: the pump card diagnosed from that surface card (Everitt & Jennings),
    load in excess of the buoyant weight. ``fillage`` from the pump card's analysis,
    ``fillage_target`` the controller's reference (None without one), ``spm`` strokes per
    minute applied. ``goodman_envelope``: S_a against S_min for the grade, Pa.
    ``card_confidence``: 0..1 from the latest measured card's SNR (the lower of its load
    and position channels'; None before the first measurement).
    ``card_source``: "measured" when ``surface`` is the last surface card received (from
    the rod-pump controller: MQTT, HTTP or the simulated plant) and ``downhole``, ``fillage``
    and ``fluid_pound`` are diagnosed from it, with ``card_time`` its stroke's start (UNIX
    s); "predicted" when none was received (``card_time`` None)."""

    spm: float
    fillage: float
    fillage_target: float | None
    fluid_pound: bool
    surface: Curve
    downhole: Curve
    tensile_strength: float
    service_factor: float
    goodman: list[GoodmanTaper]
    goodman_envelope: Curve
    card_confidence: float | None
    card_source: str = "predicted"
    card_time: float | None = None




class SmelterView(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="smelter_cell"):
    """Haupin's voltage breakdown (V, each term at its own current density; they add up
    to ``cell_voltage``), the bath's superheat over its liquidus (Solheim et al. 1996), the
    dissolved alumina (mass fraction), the ACD (m) and the specific energy (J/kg Al)."""

    voltage: dict[str, float]
    cell_voltage: float
    bath_temperature: float
    liquidus: float
    superheat: float
    alumina: float
    acd: float
    specific_energy: float
    anode_effect_indicator: float


class HealthFinding(msgspec.Struct, frozen=True):
    """One health check of a pump (plants.centrifugal_pump.health_report): the value, the
    limit it is held against, and why it alarms or not."""

    check: str
    value: float
    limit: float
    unit: str
    alarm: bool
    reason: str


class PumpView(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="centrifugal_pump"):
    """The pump's head and efficiency against flow at the running speed, as degraded
    (estimated head and efficiency factors) and as new, the system curve through the valve,
    the operating point, and the health report."""

    head: Curve
    head_new: Curve
    efficiency: Curve
    efficiency_new: Curve
    system: Curve
    flow: float
    operating_head: float
    operating_efficiency: float
    health: list[HealthFinding]


class Station(msgspec.Struct, frozen=True, kw_only=True):
    """One pump station of the pipeline: where it is (m from the inlet), its suction and
    discharge pressures (Pa) against its MAOP, its power (W) and pump speed (1 = rated),
    and the DRA it injects (L/h) with the concentration by segment of the leg after it."""

    number: int
    chainage: float
    suction_pressure: float
    discharge_pressure: float
    maop: float
    power: float
    pump_speed: float
    dra_injection: float
    dra_concentration: list[float]


class PipelineView(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="dra_pipeline"):
    """The pressure profile along the line against MAOP, DRA by leg, the delivered flow
    (m^3/s) against the nominated one (m^3/s from the day's volume; None without one) and
    the cost rate (currency/h)."""

    stations: list[Station]
    length: float
    terminal_pressure: float
    flow: float
    nominated_flow: float | None
    cost_rate: float
    currency: str


class Tank(msgspec.Struct, frozen=True, kw_only=True):
    """One storage tank: plan position of its centre (m), diameter and shell height (m),
    level (m), bulk and top-layer temperatures (K), viscosity (m^2/s), its coil's hot-oil
    flow (kg/s) and duty (W), and the draw and receipt (kg/s) running now."""

    tag: str
    x: float
    y: float
    diameter: float
    shell_height: float
    level: float
    T_bulk: float
    T_top: float
    viscosity: float
    coil_flow: float
    coil_duty: float
    draw: float
    receipt: float


class TerminalView(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind",
                   tag="asphalt_terminal"):
    """The tank farm in plan, the hot-oil loop (supply and return K, circulation kg/s,
    heater duty W, bypass kg/s) and the loading stations (how many pumps, which tanks draw)."""

    tanks: list[Tank]
    T_supply: float
    T_return: float
    loop_flow: float
    bypass_flow: float
    heater_duty: float
    stations: int


class TankView(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="asphalt_tank"):
    """A single heated tank: bulk and coil-return temperatures (K), hot-oil flow (kg/s)
    and coil duty m c (T_supply - T_return) (W)."""

    T_bulk: float
    T_return: float
    T_supply: float
    oil_flow: float
    coil_duty: float


AssetView = (RodPumpView | SmelterView | PumpView | PipelineView | TerminalView | TankView)
"""Every kind's view, tagged by ``kind``."""
