"""Each kind's operator screen (plants.views via plants.view_of) at the pilot's operating
points: the numbers an operator reads must agree with the model the twin runs and with
the physics each screen draws (balances close, curves cross where the plant runs)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

import plants
from engine.config import load_site
from plants import rod_pump
from plants.asphalt_terminal import plan_positions, tank_specs
from plants.views import AssetView

PILOT = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"
SITE = plants.resolve_site(load_site(PILOT), PILOT)


def view(asset_id: str, measured: dict[str, float] | None = None, **states: float):
    asset = next(a for a in SITE.assets if a.id == asset_id)
    model = plants.model_of(asset)
    x = model.states.vector(states, default=model.states.nominal)
    answer = plants.view_of(asset, model, x, model.inputs.nominal, model.disturbances.nominal,
                            model.parameters.nominal, dict(asset.reference), measured or {})
    outputs = model.outputs.mapping(model.output(0.0, x, model.inputs.nominal,
                                                 model.disturbances.nominal))
    return answer, outputs


def test_every_view_crosses_a_process_as_its_tagged_struct():
    for asset in SITE.assets:
        answer, _ = view(asset.id)
        decoded = msgspec.json.decode(msgspec.json.encode(answer), type=AssetView)
        assert decoded == answer and msgspec.to_builtins(answer)["kind"] == asset.kind


def test_rod_pump_cards_agree_with_the_slow_model_the_twin_filters_with():
    """The wave-equation cards of the estimated well give the slow model's fillage and
    peak polished-rod load (Gibbs' damped wave equation against the algebraic load model,
    to 3 %); its minimum load, W_b less the dynamic term in the slow model, to 10 %; the
    worst taper's Goodman loading is the model's rod loading."""
    answer, y = view("well-01")
    assert answer.fillage == pytest.approx(y["fillage"], abs=0.02)
    assert max(answer.surface.y) == pytest.approx(y["peak_load"], rel=0.03)
    assert min(answer.surface.y) == pytest.approx(y["min_load"], rel=0.10)
    assert max(t.loading for t in answer.goodman) == pytest.approx(y["rod_loading"], rel=0.03)
    assert answer.surface.x[0] == answer.surface.x[-1]  # drawn as a closed card
    assert answer.card_confidence is None  # no card measured yet
    for taper in answer.goodman:  # the point sits under its allowable S_a at its S_min
        assert taper.max_stress < taper.allowable
        assert taper.allowable == pytest.approx(
            (answer.tensile_strength / 4 + 0.5625 * taper.min_stress) * answer.service_factor)


def test_rod_pump_pumped_off_shows_fluid_pound():
    """With half the inflow at the pilot's 8 SPM (the fluid level is already at the pump)
    the pump card loses its fill: fillage far below the 70 % that warrants action, and
    fluid pound is flagged."""
    answer, y = view("well-01", productivity_multiplier=0.5)
    assert answer.fillage < rod_pump.POUND_FILLAGE and answer.fluid_pound
    assert answer.fillage == pytest.approx(y["fillage"], abs=0.05)


def test_smelter_breakdown_adds_up_to_the_cell_voltage():
    """Haupin's terms, each at its own current density, sum to the model's cell voltage;
    the bath runs 5-15 K above its liquidus (PHYSICS.md section 4: superheat)."""
    answer, y = view("cell-01")
    assert sum(answer.voltage.values()) == pytest.approx(y["cell_voltage"], rel=1e-9)
    assert set(answer.voltage) == set(plants.smelter_cell.VOLTAGE_TERMS)
    assert 5.0 < answer.superheat < 15.0


def test_pump_runs_where_its_head_curve_meets_the_system_curve():
    answer, _ = view("pump-01")
    head = np.interp(answer.flow, answer.head.x, answer.head.y)
    system = np.interp(answer.flow, answer.system.x, answer.system.y)
    assert head == pytest.approx(answer.operating_head, rel=5e-3)
    assert system == pytest.approx(answer.operating_head, rel=5e-3)
    worn, _ = view("pump-01", head_factor=0.9, efficiency_factor=0.9)
    assert max(worn.head.y) == pytest.approx(0.9 * max(worn.head_new.y), rel=1e-9)
    assert {f.check: f.alarm for f in worn.health}["head_loss"]


def test_pipeline_profile_is_the_model_outputs_against_maop():
    answer, y = view("dra-line")
    for station in answer.stations:
        assert station.discharge_pressure == y[f"discharge_pressure_{station.number}"]
        assert station.discharge_pressure < station.maop
    assert [s.chainage for s in answer.stations] == [0.0, 100e3, 200e3]
    assert answer.cost_rate == y["cost_rate"]


def test_terminal_loop_balances_and_tanks_keep_their_spacing():
    """At the terminal's steady state the heater gives what the coils take; the coil
    branches and the bypass carry the whole loop flow; no two tanks in plan are closer
    shell to shell than NFPA 30's (D_i + D_j) / 6."""
    answer, _ = view("terminal")
    assert sum(t.coil_duty for t in answer.tanks) == pytest.approx(answer.heater_duty, rel=1e-6)
    assert sum(t.coil_flow for t in answer.tanks) + answer.bypass_flow == pytest.approx(
        answer.loop_flow)
    for i, a in enumerate(answer.tanks):
        for b in answer.tanks[i + 1:]:
            gap = np.hypot(a.x - b.x, a.y - b.y) - (a.diameter + b.diameter) / 2
            assert gap >= max(0.9, (a.diameter + b.diameter) / 6) - 1e-9


def test_terminal_tank_positions_from_the_site_file_are_kept():
    specs = tank_specs([{"diameter": 20.0, "shell_height": 14.0, "level": 8.0,
                         "coil_area": 70.0, "x": 100.0, "y": -40.0},
                        {"diameter": 12.0, "shell_height": 12.0, "level": 6.0,
                         "coil_area": 26.0}])
    assert plan_positions(specs)[0] == (100.0, -40.0)


def test_rod_pump_card_confidence_is_the_measured_cards():
    """The SNR confidence the simulated well's card pipeline measures reaches the screen;
    a noisier card (20x the load cell's noise) is trusted less."""
    import numpy as np

    asset = next(a for a in SITE.assets if a.id == "well-01")
    model = plants.model_of(asset)
    args = (model.states.nominal, model.inputs.nominal, model.disturbances.nominal,
            model.parameters.nominal)
    clean, _ = rod_pump.synthesize_measurement(*args, np.random.default_rng(1), noise=1.0)
    noisy, _ = rod_pump.synthesize_measurement(*args, np.random.default_rng(1), noise=20.0)
    assert noisy["card_confidence"] < clean["card_confidence"]
    answer, _ = view("well-01", measured=noisy)
    assert answer.card_confidence == noisy["card_confidence"]
