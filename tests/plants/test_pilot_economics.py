"""The pilot's economic controllers (the kinds' defaults, backend "fast") against the
tracking-only controller they replace, each in closed loop with the pilot asset's
mismatched, noisy simulated plant (ControlLoop: EKF -> MPC -> engine.safety.decide ->
plant). Costs and bands are judged on the plant's true outputs h(x; true p), not on
the noisy measurements or the twin's estimate."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

import plants
from controllers import build_controller, build_estimator
from engine.config import OutputLimit, load_site
from engine.loop import ControlLoop
from engine.safety import Applied, decide
from engine.simulation import SimulatedPlant
from plants import dra_pipeline, smelter_cell

PILOT = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"
SITE = plants.resolve_site(load_site(PILOT), PILOT)
ASSETS = {asset.id: asset for asset in SITE.assets}
STATIONS = (1, 2, 3)


def closed_loop(asset, settings, ticks: int, reference=None) -> dict[str, np.ndarray]:
    """Run ``ticks`` periods; the plant's true states, outputs (a state measured as an
    output has one name) and applied inputs by name, one value per tick."""
    model = plants.model_of(asset)
    loop = ControlLoop(asset.id, model, build_estimator(model, asset.estimator),
                       build_controller(model, settings, asset.limits),
                       x0=asset.initial, u0=asset.inputs, d=asset.disturbances,
                       reference=asset.reference if reference is None else reference)
    plant = SimulatedPlant(asset.id, model, asset.simulation, x0=asset.initial,
                           u0=asset.inputs, d=asset.disturbances)
    last = {name: Applied(value, 0.0) for name, value in model.inputs.mapping(plant.u).items()}
    outputs, states, inputs = [], [], []
    for k in range(1, ticks + 1):
        t = k * asset.period_s
        plant.advance_to(t)
        outputs.append(model.output(t, plant.x, plant.u, plant.d, plant.p))
        states.append(plant.x.copy())
        loop.observe(plant.measure())
        proposal = loop.propose(t)
        assert not proposal.status.startswith("failed"), proposal.reason
        decision = decide(proposal, mode=asset.mode, limits=asset.limits, last_applied=last,
                          measurement_age=0.0)
        plant.apply(decision.applied)
        loop.applied(decision.applied)
        last.update({n: Applied(v, t) for n, v in decision.applied.items()})
        inputs.append(plant.u.copy())
    trace = {}
    for signals, rows in ((model.states, states), (model.inputs, inputs),
                          (model.outputs, outputs)):
        trace.update(zip(signals.names, np.array(rows).T, strict=True))
    return trace


def tracking_only(settings):
    """The same controller without the economic cost and soft limits."""
    return msgspec.structs.replace(settings, economic={}, output_limits={})


def usd_per_m3(y: dict[str, np.ndarray]) -> float:
    """Pumping plus DRA cost per m^3 delivered: sum cost_rate / sum (3600 Q), equal ticks."""
    return float(y["cost_rate"].sum() / (3600.0 * y["delivery_flow"].sum()))


# -- DRA pipeline --------------------------------------------------------------------------

DRA_TICKS = 32
"""8 h of 15 min periods: two horizons."""


@pytest.fixture(scope="module")
def dra_runs():
    asset = ASSETS["dra-line"]
    assert asset.controller == dra_pipeline.DEFAULTS.controller, "the pilot runs the default"
    return (closed_loop(asset, tracking_only(asset.controller), DRA_TICKS),
            closed_loop(asset, asset.controller, DRA_TICKS))


def test_dra_line_economic_controller_delivers_cheaper_than_tracking(dra_runs):
    """Over the same 8 h the economic controller's pumping + DRA cost per m^3 is at
    least 20 % below the tracking controller's, which holds the kind's nominal 15 ppm at
    each skid (measured: 0.37 against 0.64 USD/m^3, 43 %; at 0.10 USD/kWh and 7 USD/L,
    DRA does not pay at 1200 m^3/h, so the controller winds it down and speeds the pumps
    up)."""
    tracked, economic = dra_runs
    assert usd_per_m3(economic) <= 0.8 * usd_per_m3(tracked), \
        (usd_per_m3(economic), usd_per_m3(tracked))


def test_dra_line_economic_controller_meets_the_nomination_below_the_soft_maop(dra_runs):
    """The delivery stays within 3 % of the 1200 m^3/h nomination at every tick (the
    plant starts with 4 % more friction than the twin believes, which costs about 2.5 %
    for the first periods, as it does the tracking controller), and every discharge
    pressure below the soft limit SOFT_MAOP (9.2 MPa, under the site's 9.6 MPa trip)."""
    _, economic = dra_runs
    nomination = dra_pipeline.NOMINAL_FLOW
    assert np.all(np.abs(economic["delivery_flow"] / nomination - 1) <= 0.03)
    for i in STATIONS:
        assert economic[f"discharge_pressure_{i}"].max() < dra_pipeline.SOFT_MAOP


def test_dra_line_buys_dra_to_hold_a_tighter_pressure_limit(dra_runs):
    """A derated line (soft limit 3.4 MPa, below the 3.4–3.8 MPa the default economic
    controller runs at over the 4 h): the controller keeps every discharge pressure
    within 0.05 MPa (2.5 noise std of the pressure measurements) of the limit by
    injecting DRA where, unconstrained, it injects none, still on nomination within 3 %."""
    asset = ASSETS["dra-line"]
    derated = 3.4e6
    settings = msgspec.structs.replace(asset.controller, output_limits={
        f"discharge_pressure_{i}": OutputLimit(upper=derated, penalty=1e3) for i in STATIONS})
    held = closed_loop(asset, settings, 16)
    _, unconstrained = dra_runs
    for i in STATIONS:
        assert held[f"discharge_pressure_{i}"].max() <= derated + 0.05e6
    assert unconstrained[f"discharge_pressure_{1}"][:16].max() > derated + 0.05e6
    injected = sum(held[f"dra_injection_{i}"][8:16].mean() for i in STATIONS)
    assert injected > 1.0 and sum(unconstrained[f"dra_injection_{i}"][8:16].mean()
                                  for i in STATIONS) < 0.1 * injected
    assert np.all(np.abs(held["delivery_flow"] / dra_pipeline.NOMINAL_FLOW - 1) <= 0.03)


# -- smelter cells -------------------------------------------------------------------------

CELL_TICKS = 120
"""2 h of 1 min periods: four horizons, and over one time constant of the bath's heat
balance (C / (A_side h + UA_top) = 4.2e7 / 16 540 W/K, about 42 min)."""
KWH_PER_JOULE = 1 / 3.6e6


@pytest.fixture(scope="module", params=["cell-01", "cell-02"])
def cell_runs(request):
    asset = ASSETS[request.param]
    assert asset.controller == smelter_cell.DEFAULTS.controller, "the pilot runs the default"
    tracking = msgspec.structs.replace(
        tracking_only(asset.controller),
        tracking={"bath_temperature": 1.0, "alumina_fraction": 1.0})
    nominal = {"bath_temperature": smelter_cell.NOMINAL_TEMPERATURE,
               "alumina_fraction": smelter_cell.NOMINAL_ALUMINA}
    return (closed_loop(asset, tracking, CELL_TICKS, reference=nominal),
            closed_loop(asset, asset.controller, CELL_TICKS))


def test_smelter_economic_controller_uses_less_energy_per_kg(cell_runs):
    """Over the same 2 h the economic controller's mean specific energy (constant line
    current and CE, so equal metal per tick: the mean is kWh per kg Al of the run) is at
    least 4 % below that of the controller tracking 960 °C and 3 % alumina (measured:
    12.11 against 13.19 kWh/kg on cell-01, 12.28 against 13.37 on cell-02, 8.2 %). The
    heat balance fixes the voltage at a bath temperature, so the lasting saving is the
    cooler bath's smaller side loss (5 K less superheat: 80 kW, 0.27 V, 6.4 %); over the
    first hours the heat the bath gives up as it cools adds to it, and the alumina held
    a little under 3 % (2.7–2.8 %) raises the liquidus and takes a little more superheat
    off."""
    tracked, economic = cell_runs
    tracked_kwh = tracked["specific_energy"].mean() * KWH_PER_JOULE
    economic_kwh = economic["specific_energy"].mean() * KWH_PER_JOULE
    assert economic_kwh <= 0.96 * tracked_kwh, (economic_kwh, tracked_kwh)


def test_smelter_economic_controller_keeps_bath_alumina_and_acd_in_their_bands(cell_runs):
    """True bath temperature within BATH_TEMPERATURE_BAND (955–965 °C) widened by 0.5 K
    (a third of the thermocouple's 1.5 K noise std, which the controller acts on),
    alumina within ALUMINA_BAND (2–4 %), and the ACD, which is not measured, above 30 mm
    (the pseudo-resistance floor aims at 32 mm; the state's bound is 20 mm) under both
    controllers. Measured: the economic controller holds the ACD on its floor, 31.5 mm
    (cell-01) and 30.8 mm (cell-02), at the slightly leaner alumina it keeps."""
    low, high = smelter_cell.BATH_TEMPERATURE_BAND
    for run in cell_runs:
        assert low - 0.5 <= run["bath_temperature"].min()
        assert run["bath_temperature"].max() <= high + 0.5
        assert smelter_cell.ALUMINA_BAND[0] <= run["alumina_fraction"].min()
        assert run["alumina_fraction"].max() <= smelter_cell.ALUMINA_BAND[1]
        assert run["acd"].min() >= 0.030, run["acd"].min()


def test_without_the_pseudo_resistance_floor_the_controller_dives_the_acd():
    """Why the default has a pseudo-resistance floor: without it the energy-minimising
    controller cools the bath fastest by driving the beam down at its rate limit, and
    the plant's ACD (not only its estimate) falls below the state's 20 mm bound within
    20 min (measured: 7.6 mm after 15 min, still 21 mm after 2 h), where a real cell
    shorts."""
    asset = ASSETS["cell-01"]
    limits = {name: limit for name, limit in asset.controller.output_limits.items()
              if name != "pseudo_resistance"}
    run = closed_loop(asset, msgspec.structs.replace(asset.controller, output_limits=limits), 20)
    assert run["acd"].min() < 0.020
