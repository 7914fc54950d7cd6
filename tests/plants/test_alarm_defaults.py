"""Every kind's default alarms: they resolve on the pilot site, stay quiet at the kind's
nominal point, raise past their limits, hold the published figures they cite, and a site
file overrides them by name."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import plants
from controllers import build_controller, build_estimator
from engine.alarm_sources import CONDITIONS, ESTIMATE_PREFIX, interlock_tripped, tick_values
from engine.alarm_states import AlarmState
from engine.alarms import AlarmSet
from engine.config import ConfigError, load_site, parse_site
from engine.loop import ControlLoop
from engine.messages import Mode, Proposal
from engine.simulation import SimulatedPlant
from plants import asphalt_tank, centrifugal_pump, rod_pump, smelter_cell
from plants.asphalt_terminal import SEED_TANKS

PILOT = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"
SITE = plants.resolve_site(load_site(PILOT), PILOT)
ONE_PER_KIND = list({asset.kind: asset for asset in reversed(SITE.assets)}.values())


def nominal_values(asset) -> dict[str, float]:
    """The kind's nominal outputs and state estimates, every condition flag clear."""
    model = plants.model_of(asset)
    values = {s.name: s.nominal for s in model.outputs}
    values.update({ESTIMATE_PREFIX + s.name: s.nominal for s in model.states})
    values.update({name: 0.0 for name in CONDITIONS})
    return values


@pytest.mark.parametrize("asset", ONE_PER_KIND, ids=lambda a: a.kind)
def test_each_kind_resolves_its_alarms_and_is_quiet_at_its_nominal_point(asset):
    alarms = AlarmSet(asset.id, asset.alarms)
    assert set(CONDITIONS) - {"asset_off"} <= set(alarms.settings)  # the standard alarms
    assert any(s.kind != "condition" for s in alarms.settings.values())  # and its own
    assert alarms.evaluate(0.0, nominal_values(asset)) == []
    assert all(a.state == AlarmState.NORMAL for a in alarms.status())


@pytest.mark.parametrize("asset", ONE_PER_KIND, ids=lambda a: a.kind)
def test_each_default_alarm_raises_past_its_limit_and_clears_past_its_deadband(asset):
    for settings in AlarmSet(asset.id, asset.alarms).settings.values():
        alarms = AlarmSet(asset.id, [msgspec.structs.replace(settings, suppressed_by=[])])
        values = nominal_values(asset)
        alarms.evaluate(0.0, values)
        if settings.kind == "condition":
            beyond, back = 1.0, 0.0
        else:
            step = max(settings.deadband, 1e-6 * abs(settings.limit)) * 2
            sign = 1.0 if settings.kind in ("HI", "HIHI") else -1.0
            beyond, back = settings.limit + sign * step, settings.limit - sign * step
        values[settings.signal] = beyond
        alarms.evaluate(1.0, values)
        alarms.evaluate(1.0 + settings.on_delay_s, values)
        assert alarms.state(settings.tag) == AlarmState.UNACKNOWLEDGED, settings.tag
        values[settings.signal] = back
        alarms.evaluate(2.0 + settings.on_delay_s, values)
        alarms.evaluate(2.0 + settings.on_delay_s + settings.off_delay_s, values)
        assert alarms.state(settings.tag) == AlarmState.RTNUN, settings.tag


def test_the_standard_delays_follow_the_assets_period():
    """The persistent anomaly is the fifth consecutive flagged tick at any period: the
    pilot's pumps run at 30 s, not their kind's 10 s."""
    pump = next(a for a in SITE.assets if a.id == "pump-01")
    anomaly = next(s for s in pump.alarms if s.tag == "estimator_anomaly")
    assert pump.period_s == 30.0 and anomaly.on_delay_s == 3.5 * 30.0
    alarms = AlarmSet(pump.id, pump.alarms)
    ticks = [30.0 * k for k in range(6)]
    raised = [t for t in ticks for e in alarms.evaluate(t, {"estimator_anomaly": True})]
    assert raised == [120.0]


def limits(kind: str) -> dict[str, float]:
    return {s.tag: s.limit for s in plants.DEFAULTS[kind].alarms}


def test_the_default_limits_are_the_published_figures_they_cite():
    celsius = asphalt_tank.CELSIUS
    tank = limits("asphalt_tank")  # storage band 140-180 °C, coking at 200 °C (PHYSICS.md 3)
    assert (tank["T_bulk.LO"], tank["T_bulk.HI"]) == (140.0 + celsius, 180.0 + celsius)
    assert tank["T_bulk.HIHI"] < 200.0 + celsius
    health = centrifugal_pump.HealthLimits()  # API 610 vibration, API 612/619 oil rise
    pump = limits("centrifugal_pump")
    assert pump["vibration.HI"] == health.vibration == 3.0e-3
    assert pump["npsh_margin.LO"] == health.npsh_margin
    assert pump["T_bearing.HI"] == 298.15 + health.oil_rise
    assert pump["head_loss"] == 1.0 - health.head_loss
    assert pump["efficiency_loss"] == 1.0 - health.efficiency_loss
    well = limits("rod_pump")  # fluid pound under 70 % fillage; Goodman loading 1 (API RP 11BR)
    assert (well["fluid_pound"], well["goodman_overload"]) == (rod_pump.POUND_FILLAGE, 1.0)
    cell = limits("smelter_cell")
    alumina = (cell["alumina_fraction.LO"], cell["alumina_fraction.HI"])
    assert alumina == smelter_cell.ALUMINA_BAND
    assert cell["bath_temperature.LO"] == 950.0 + celsius + 2.0  # 2 K over the liquidus
    terminal = limits("asphalt_terminal")
    for tag, tank in zip([f"{i + 1:02d}" for i in range(10)], SEED_TANKS, strict=True):
        assert terminal[f"level_{tag}.HI"] == tank.shell_height - 1.0
        # below the pilot site's high-high trips (shell - 0.7 m): the operator acts first
        trip = next(lock for lock in SITE.interlocks
                    if getattr(lock, "when", None) == [f"terminal.level_{tag}"])
        assert terminal[f"level_{tag}.HI"] < trip.above


SITE_FILE = """
[site]
name = "t"
[[assets]]
id = "tank-01"
kind = "asphalt_tank"
[[assets.alarms]]
signal = "T_bulk"
kind = "HI"
limit = 450.0
deadband = 2.0
priority = "HIGH"
[[assets.alarms]]
signal = "T_bulk"
kind = "LO"
enabled = false
[[assets.alarms]]
name = "coil_fouling"
signal = "estimate.k_foul"
kind = "LO"
limit = 0.8
"""


def test_a_site_file_overrides_adds_and_disables_alarms_by_name():
    asset = plants.resolve_site(parse_site(SITE_FILE, "site.toml"), "site.toml").assets[0]
    alarms = AlarmSet(asset.id, asset.alarms)
    assert "T_bulk.LO" not in alarms.settings
    hi = alarms.settings["T_bulk.HI"]
    assert (hi.limit, hi.deadband, hi.priority, hi.suppressed_by) == (450.0, 2.0, "HIGH", [])
    assert "T_bulk.HIHI" in alarms.settings and "coil_fouling" in alarms.settings
    again = plants.resolve_site(plants.resolve_site(parse_site(SITE_FILE, "s"), "s"), "s")
    assert again.assets[0].alarms == asset.alarms  # resolving twice changes nothing


@pytest.mark.parametrize(("alarm", "message"), [
    ('signal = "T_top"\nkind = "HI"\nlimit = 1.0',
     r"assets\[0\].alarms\['T_top.HI'\].signal: unknown signal 'T_top'; known: .*T_bulk"),
    ('signal = "T_bulk"\nkind = "HI"', r"alarms\['T_bulk.HI'\].limit: a HI alarm needs"),
    ('signal = "T_bulk"\nkind = "HI"\nlimit = 1.0\nsuppressed_by = ["pump_off"]',
     r"alarms\['T_bulk.HI'\].suppressed_by: 'pump_off' is neither"),
    ('signal = "T_bulk"\nkind = "HIGH"\nlimit = 1.0', r"assets\[0\].alarms\[0\].kind"),
])
def test_a_bad_site_alarm_names_the_asset_the_alarm_and_the_setting(alarm, message):
    text = SITE_FILE.split("[[assets.alarms]]")[0] + "[[assets.alarms]]\n" + alarm + "\n"
    with pytest.raises(ConfigError, match=message):
        plants.resolve_site(parse_site(text, "site.toml"), "site.toml")


# -- from a tick ---------------------------------------------------------------------------------

def test_a_tank_tick_past_its_hi_limit_raises_the_hi_alarm_through_tick_values():
    """A simulated tank at 183 °C (the twin believes 150 °C): the first tick's measurement
    raises T_bulk.HI (180 °C), nothing else of the tank's process alarms."""
    asset = next(a for a in SITE.assets if a.id == "tank-01")
    model = plants.model_of(asset)
    simulation = msgspec.structs.replace(asset.simulation, initial={"T_bulk": 456.15})
    plant = SimulatedPlant(asset.id, model, simulation, x0=asset.initial, u0=asset.inputs,
                           d=asset.disturbances)
    loop = ControlLoop(asset.id, model, build_estimator(model, asset.estimator),
                       build_controller(model, asset.controller, asset.limits),
                       x0=asset.initial, u0=asset.inputs, d=asset.disturbances,
                       reference=asset.reference)
    alarms = AlarmSet(asset.id, asset.alarms)
    t = asset.period_s
    plant.advance_to(t)
    measurement = plant.measure()
    estimate = loop.observe(measurement)
    values = tick_values(measurement=measurement, estimate=estimate, proposal=loop.propose(t),
                         mode=asset.mode, measurement_age=0.0,
                         max_measurement_age=asset.max_measurement_age_s,
                         interlock_tripped=interlock_tripped(asset.id, SITE.interlocks, {}))
    events = alarms.evaluate(t, values)
    raised = {e.alarm for e in events if e.to_state == AlarmState.UNACKNOWLEDGED}
    assert "tank-01:T_bulk.HI" in raised
    assert not raised & {"tank-01:T_bulk.LO", "tank-01:T_bulk.HIHI", "tank-01:interlock_tripped",
                         "tank-01:measurement_stale", "tank-01:controller_failed"}
    assert values["estimate.k_foul"] == estimate.parameters["k_foul"]


def test_tick_values_flag_a_stale_measurement_a_failed_solve_and_an_off_asset():
    proposal = Proposal(asset="tank-01", time=0.0, setpoints={}, reason="solver failed",
                        status="failed: infeasible")
    values = tick_values(measurement=None, estimate=None, proposal=proposal, mode=Mode.OFF,
                         measurement_age=float("inf"), max_measurement_age=600.0,
                         interlock_tripped=False)
    assert values == {"estimator_anomaly": 0.0, "measurement_stale": 1.0,
                      "interlock_tripped": 0.0, "controller_failed": 1.0, "asset_off": 1.0}


def test_an_interlock_is_tripped_for_the_assets_it_acts_on_and_fails_safe_unmeasured():
    levels = {f"terminal.level_{i:02d}": 5.0 for i in range(1, 11)}
    assert not interlock_tripped("terminal", SITE.interlocks, levels)
    assert interlock_tripped("terminal", SITE.interlocks, {**levels, "terminal.level_03": 13.4})
    assert not interlock_tripped("tank-01", SITE.interlocks, {})  # no interlock acts on it
    assert interlock_tripped("dra-line", SITE.interlocks, {})  # unmeasured: tripped, fail safe
