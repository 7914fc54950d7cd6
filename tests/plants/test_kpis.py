"""Each kind's KPIs (plants.kpis_of) at the pilot's operating points: the numbers the
historian records as ``kpi.<name>`` are the ones the kind's screen shows, in the units
kpi_units_of declares; the pump's health tracker stays bounded; an injected drift wears
a simulated plant."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

import plants
from engine.config import AlarmSettings, ConfigError, SimulationSettings, load_site
from engine.simulation import SimulatedPlant
from plants import pump_health
from plants.haupin import FARADAY
from plants.pump_health import PumpHealthTracker
from plants.smelter_cell import MOLAR_MASS_ALUMINIUM

PILOT = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"
SITE = plants.resolve_site(load_site(PILOT), PILOT)
KWH = 3.6e6


def asset(asset_id: str):
    return next(a for a in SITE.assets if a.id == asset_id)


def kpis_and_view(asset_id: str):
    config = asset(asset_id)
    model = plants.model_of(config)
    point = (model.states.nominal, model.inputs.nominal, model.disturbances.nominal,
             model.parameters.nominal)
    return (plants.kpis_of(config, model, *point),
            plants.view_of(config, model, *point, dict(config.reference), {}), model)


@pytest.mark.parametrize("asset_id", ["tank-01", "terminal", "dra-line", "well-01", "cell-01",
                                      "pump-01"])
def test_each_kinds_kpis_are_declared_with_their_units(asset_id):
    kpis, _, _ = kpis_and_view(asset_id)
    units = plants.kpi_units_of(asset(asset_id))
    tracked = set(pump_health.KPI_UNITS) if asset(asset_id).kind == "centrifugal_pump" else set()
    assert set(kpis) == set(units) - tracked
    assert all(np.isfinite(v) for v in kpis.values())


def test_the_rod_pumps_kpis_are_its_screens_fillage_and_worst_goodman_taper():
    kpis, view, _ = kpis_and_view("well-01")
    assert kpis["fillage"] == view.fillage
    assert kpis["goodman_loading"] == max(t.loading for t in view.goodman)
    assert 0 < kpis["goodman_loading"] < 1


def test_a_measured_card_gives_the_rod_pumps_kpis_not_the_prediction():
    """A card of the well with half the model's inflow: its KPIs are that card's fillage
    (far below the predicted one) and the worst Goodman taper the screen shows for it."""
    from plants import rod_pump

    config = asset("well-01")
    model = plants.model_of(config)
    point = (model.states.nominal, model.inputs.nominal, model.disturbances.nominal,
             model.parameters.nominal)
    truth = {**model.states.mapping(model.states.nominal), "productivity_multiplier": 0.5}
    _, surface = rod_pump.synthesize_measurement(
        truth, *point[1:], np.random.default_rng(3),
        rod_sections=config.structure.get("rod_sections"))
    card = plants.card_diagnosis_of(config)(surface, model.parameters.mapping(point[3]))
    predicted = plants.kpis_of(config, model, *point)
    kpis = plants.kpis_of(config, model, *point, card)
    view = plants.view_of(config, model, *point, dict(config.reference), {}, card)
    assert kpis["fillage"] == card.fillage == view.fillage < predicted["fillage"] - 0.3
    assert kpis["goodman_loading"] == max(t.loading for t in view.goodman)
    assert kpis["goodman_loading"] != predicted["goodman_loading"]


def test_the_pipelines_specific_energy_is_its_stations_power_over_its_flow():
    kpis, view, _ = kpis_and_view("dra-line")
    assert kpis["cost_rate"] == view.cost_rate
    assert kpis["specific_energy"] == pytest.approx(sum(s.power for s in view.stations)
                                                    / view.flow)
    assert plants.kpi_units_of(asset("dra-line"))["cost_rate"] == f"{view.currency}/h"


def test_the_cells_specific_energy_is_2980_v_over_ce_kwh_per_kg():
    """PHYSICS.md section 4: specific energy 2.980 V / CE kWh/kg Al (3 F / M_Al)."""
    kpis, view, model = kpis_and_view("cell-01")
    efficiency = model.parameters.mapping(model.parameters.nominal)["current_efficiency"]
    assert kpis["specific_energy"] == view.specific_energy
    assert 3 * FARADAY / MOLAR_MASS_ALUMINIUM / KWH == pytest.approx(2.980, abs=5e-4)
    assert kpis["specific_energy"] / KWH == pytest.approx(2.980 * view.cell_voltage / efficiency,
                                                          rel=2e-4)


def test_the_heating_kpis_are_the_screens_duties():
    tank, tank_view, _ = kpis_and_view("tank-01")
    terminal, terminal_view, _ = kpis_and_view("terminal")
    assert tank["coil_duty"] == tank_view.coil_duty > 0
    assert terminal["heater_duty"] == terminal_view.heater_duty > 0


def test_the_pumps_kpis_are_its_operating_efficiency_wear_and_energy_per_volume():
    kpis, view, model = kpis_and_view("pump-01")
    outputs = model.outputs.mapping(model.output(0.0, model.states.nominal, model.inputs.nominal,
                                                 model.disturbances.nominal))
    assert kpis["efficiency"] == view.operating_efficiency
    assert kpis["head_loss"] == pytest.approx(0.0) and kpis["efficiency_loss"] == 0.0
    assert kpis["specific_energy"] == pytest.approx(outputs["power"] / view.flow)


def test_the_health_tracker_keeps_evenly_spaced_samples_within_its_bound():
    """10,000 ticks of 10 s into a 64-sample tracker of a 1-day window: at most 64 samples,
    evenly spaced, none older than the window, the newest kept; health fitted from them."""
    model = plants.model_of(asset("pump-01"))
    tracker = PumpHealthTracker(model, window_s=86400.0, capacity=64)
    states = model.states.mapping(model.states.nominal)
    std = dict.fromkeys(states, 1e-3)
    measured = model.outputs.mapping(model.outputs.nominal)
    ambient = model.disturbances.mapping(model.disturbances.nominal)["T_ambient"]
    for tick in range(1, 10_001):
        health = tracker.add(10.0 * tick, states, std, measured, ambient)
    times = np.array([t for t, _ in tracker.samples])
    assert 32 <= times.size <= 64
    assert np.ptp(np.diff(times)) == 0 and times[-1] - times[0] <= 86400.0
    assert 1e5 - times[-1] < np.diff(times)[0]
    assert health is tracker.latest and health.health_index > 0.9


def test_the_health_tracker_refuses_a_bad_window():
    model = plants.model_of(asset("pump-01"))
    with pytest.raises(ValueError, match="window_s"):
        PumpHealthTracker(model, window_s=0.0)


def test_a_drift_wears_the_simulated_plants_state_at_its_rate():
    pump = asset("pump-01")
    model = plants.model_of(pump)
    plant = SimulatedPlant(pump.id, model, SimulationSettings(drift={"head_factor": -1e-5}),
                           x0=pump.initial, u0=pump.inputs, d=pump.disturbances)
    plant.advance(3600.0)
    assert plant.truth()["states"]["head_factor"] == pytest.approx(1.0 - 0.036)


def test_alarms_may_watch_the_kinds_kpis_and_no_other():
    """A site alarm on kpi.fillage of a well is accepted; one on a KPI the kind does not
    have, or a drift of an unknown state, is refused naming it."""
    site = load_site(PILOT)
    wells = [i for i, a in enumerate(site.assets) if a.id == "well-01"]
    well = site.assets[wells[0]]

    def with_well(changed):
        assets = list(site.assets)
        assets[wells[0]] = changed
        return plants.resolve_site(msgspec.structs.replace(site, assets=assets), PILOT)

    low = AlarmSettings(signal="kpi.fillage", kind="LO", limit=0.6, name="low_fillage")
    resolved = with_well(msgspec.structs.replace(well, alarms=[low]))
    assert "low_fillage" in [a.tag for a in resolved.assets[wells[0]].alarms]
    with pytest.raises(ConfigError, match="kpi.heater_duty"):
        with_well(msgspec.structs.replace(well, alarms=[msgspec.structs.replace(
            low, signal="kpi.heater_duty")]))
    with pytest.raises(ConfigError, match=r"simulation\.drift\.wear"):
        with_well(msgspec.structs.replace(well, simulation=SimulationSettings(
            drift={"wear": 1e-6})))
