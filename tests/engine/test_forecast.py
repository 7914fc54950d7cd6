"""Forecasts through the loop (engine.forecast, issue 14 item 1), lock-step without Ray:
an asphalt tank whose hot oil is priced at an hourly tariff with a peak ahead, a DRA
line's tariff and nomination, an approved plan over the site's forecast (its injections
and pump speeds as the controller's input targets), bad input."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

import plants
from actors.asset import build_loop
from engine.config import (
    AssetConfig,
    ConfigError,
    ControllerSettings,
    ForecastSettings,
    NominationSettings,
    OutputLimit,
    SiteConfig,
    SiteSettings,
    TariffSettings,
)
from engine.forecast import MONDAY_OF_EPOCH_WEEK_S, plan_forecast, site_forecast
from engine.gate import PolicyGate
from engine.loop import ControlLoop
from engine.messages import Mode
from engine.simulation import SimulatedPlant

HOUR = 3600.0
T0 = 1_700_000_000.0 - 1_700_000_000.0 % HOUR
"""A twin time (UNIX s) on the hour."""
PEAK_TARIFF = TariffSettings(currency="USD", hourly=[0.05, 0.05, 0.30, 0.30, 0.05, 0.05])
"""Cheap for two hours from T0, then a two-hour peak six times dearer (USD/kWh)."""


def resolved(asset: AssetConfig) -> AssetConfig:
    return plants.resolve_site(SiteConfig(site=SiteSettings(name="forecast"),
                                          assets=[asset])).assets[0]


def heated_tank(tariff: TariffSettings | None) -> AssetConfig:
    """A tank kept at or above 160 °C (a soft lower limit, no tracking) at the least
    hot-oil cost: m_oil weighs on the cost, priced at ``tariff`` when it has one."""
    return resolved(AssetConfig(
        id="tank", kind="asphalt_tank", period_s=300.0, mode=Mode.AUTONOMOUS,
        controller=ControllerSettings(
            backend="fast", horizon=24, hessian="exact",
            tracking={"T_bulk": 0.0, "T_return": 0.0}, move_suppression={"m_oil": 0.01},
            economic={"m_oil": 1.0},
            output_limits={"T_bulk": OutputLimit(lower=433.15, penalty=1e3)}),
        tariff=tariff,
        forecast=None if tariff is None else ForecastSettings(tariff_prices=["m_oil"])))


def run(asset: AssetConfig, ticks: int, loop: ControlLoop | None = None
        ) -> tuple[np.ndarray, np.ndarray, ControlLoop]:
    """Lock-step closed loop from T0 on a noiseless plant: (tick times, applied inputs
    after each tick, the loop)."""
    loop = loop or build_loop(asset, T0)
    model = loop.model
    plant = SimulatedPlant(asset.id, model, msgspec.structs.replace(asset.simulation, noise=0.0),
                           t0=T0)
    plant.u, plant.d = loop.u.copy(), loop.d.copy()
    gate = PolicyGate(asset, {n: float(loop.u[model.inputs.index(n)]) for n in asset.limits},
                      T0)
    times, inputs = [], []
    for k in range(1, ticks + 1):
        t = T0 + k * model.dt
        plant.advance_to(t)
        plant.apply(loop.tick(t, plant.measure(), gate).applied)
        times.append(t)
        inputs.append(plant.u.copy())
    return np.array(times), np.array(inputs), loop


def test_a_price_peak_ahead_moves_the_tanks_heating_before_it():
    """With the tariff as a forecast the controller buys hot oil in the cheap hour before
    the peak and little in it; without, it holds the flow that keeps 160 °C throughout."""
    ticks = 30  # 2.5 h: the cheap hours and half an hour of the peak
    times, forecast, _ = run(heated_tank(PEAK_TARIFF), ticks)
    _, today, _ = run(heated_tank(None), ticks)
    oil = {name: {"before": flow[(times > T0 + HOUR) & (times <= T0 + 2 * HOUR), 0].sum(),
                  "peak": flow[times > T0 + 2 * HOUR, 0].sum()}
           for name, flow in (("forecast", forecast), ("today", today))}
    assert np.ptp(today[:, 0]) < 1e-3  # today's behaviour: the flow held
    assert oil["forecast"]["before"] > 1.5 * oil["today"]["before"]
    assert oil["forecast"]["peak"] < 0.5 * oil["today"]["peak"]
    price = np.array([PEAK_TARIFF.hourly[int((t - T0) // HOUR)] for t in times])
    assert (price * forecast[:, 0]).sum() < (price * today[:, 0]).sum()


def dra_line(**fields) -> AssetConfig:
    return resolved(AssetConfig(id="line", kind="dra_pipeline", **fields))


def test_the_tariff_and_nomination_forecast_the_dra_lines_price_and_flow():
    weekly = TariffSettings(rates={"low": 0.07, "high": 0.15},
                            weekday=["low"] * 7 + ["high"] * 12 + ["low"] * 5,
                            weekend=["low"] * 24)
    asset = dra_line(tariff=weekly, nomination=NominationSettings(daily_volume=[28800.0,
                                                                                 34560.0]))
    model = plants.model_of(asset)
    monday = MONDAY_OF_EPOCH_WEEK_S + 2800 * 7 * 86400.0  # a Monday 00:00 UTC
    forecast = site_forecast(asset, model, monday)
    assert forecast is not None
    ahead = forecast.trajectories(monday + HOUR * np.array([6, 7, 18, 19, 24 + 7, 48 + 7,
                                                            5 * 24 + 7]))
    assert ahead.disturbances["electricity_price"] == [0.07, 0.15, 0.15, 0.07, 0.15, 0.15,
                                                       0.07]  # Saturday: low
    flow = ahead.reference["delivery_flow"]
    assert flow[:4] == [pytest.approx(28800.0 / 86400.0)] * 4
    assert flow[4:] == [pytest.approx(34560.0 / 86400.0)] * 3  # the last day held


def approved_plan(start: float, hours: int, injection: float, speed: float,
                  version: int = 7) -> dict:
    """A plan store entry of ``hours`` hours from ``start``: flow 0.30 m^3/s + 0.01 per
    hour, 0.1 USD/kWh, every skid at ``injection`` L/h (+ 1 per hour) and every pump at
    ``speed``."""
    hours_ = [{"hour": k, "flow": 0.30 + 0.01 * k, "electricity_price": 0.1,
               "dra_injection": [injection + k] * 3, "pump_speed": [speed] * 3}
              for k in range(hours)]
    return {"version": version, "status": "approved", "plan": {"start": start, "hours": hours_}}


def test_an_approved_plan_drives_the_reference_over_its_hours_then_the_site_again():
    asset = dra_line(nomination=NominationSettings(daily_volume=[28800.0]))
    model = plants.model_of(asset)
    site = site_forecast(asset, model, T0)
    forecast = plan_forecast(model, approved_plan(T0, 3, 40.0, 0.8)).over(site)
    ahead = forecast.trajectories(T0 + HOUR * np.array([0.5, 1.5, 2.5, 3.5]))
    assert ahead.reference["delivery_flow"] == pytest.approx([0.30, 0.31, 0.32, 1 / 3])
    assert ahead.reference["dra_injection_2"][:3] == [40.0, 41.0, 42.0]
    assert ahead.reference["pump_speed_3"][:3] == [0.8] * 3
    assert math.isnan(ahead.reference["dra_injection_2"][3])  # no target after the plan
    assert forecast.driving(T0 + 2.5 * HOUR) == "plan v7"
    assert forecast.driving(T0 + 3 * HOUR) == "site"


def test_the_mpc_moves_the_injection_toward_the_plans_within_the_rate_limit():
    """An approved plan injecting 40 L/h per skid, where the line's economic MPC alone
    winds the skids down from 18 L/h (DRA does not pay at the default prices): the MPC
    following the plan raises every skid toward 40 L/h, by the 10 L/h its rate limit
    allows in a step. The plan's speeds are targets too: the same plan at speed 0.8
    proposes faster pumps than at 0.6."""
    asset = dra_line()
    unplanned = build_loop(asset, T0).propose(T0).setpoints
    planned = {}
    for speed in (0.6, 0.8):
        loop = build_loop(asset, T0)
        loop.follow(plan_forecast(loop.model, approved_plan(T0, 6, 40.0, speed)))
        proposal = loop.propose(T0)
        assert proposal.status == "converged"
        planned[speed] = proposal.setpoints
    start = loop.model.inputs.mapping(loop.u)
    for i in (1, 2, 3):
        skid = f"dra_injection_{i}"
        assert unplanned[skid] < start[skid] - 5.0  # alone: wound down
        assert planned[0.8][skid] == pytest.approx(start[skid] + 10.0)  # the rate limit
        pump = f"pump_speed_{i}"
        assert planned[0.8][pump] > planned[0.6][pump] + 0.01


def test_after_the_plans_last_hour_no_input_target_applies():
    """A plan that ended before now leaves the MPC as without one: the same proposal."""
    asset = dra_line()
    unplanned = build_loop(asset, T0).propose(T0).setpoints
    loop = build_loop(asset, T0)
    loop.follow(plan_forecast(loop.model, approved_plan(T0 - 6 * HOUR, 6, 40.0, 0.8)))
    assert loop.forecast is not None and loop.forecast.driving(T0) is None
    assert loop.propose(T0).setpoints == pytest.approx(unplanned, rel=1e-6)


def test_a_plan_for_another_number_of_skids_names_the_field_and_the_models_inputs():
    model = plants.model_of(dra_line())
    entry = approved_plan(T0, 2, 40.0, 0.8)
    entry["plan"]["hours"][1]["dra_injection"] = [40.0, 40.0]
    with pytest.raises(ValueError, match=r"plan version 7: hour 1 has 2 dra_injection values, "
                       r"the model 3 \(dra_injection_1, dra_injection_2, dra_injection_3\)"):
        plan_forecast(model, entry)


@pytest.mark.parametrize(("forecast", "message"), [
    ({"disturbances": {"T_ambiant": [280.0]}},
     "forecast disturbances.T_ambiant: unknown signal; known: T_supply, T_ambient"),
    ({"disturbances": {"T_ambient": [280.0, 400.0]}},
     r"forecast disturbances.T_ambient\[1\] = 400.0 K is outside \[233.15, 323.15\] K"),
    ({"reference": {"T_bulk": [433.0, math.nan]}},
     r"forecast.reference.T_bulk\[1\]: nan is not a finite number"),
    ({"prices": {"m_oil": [1.0]}},
     "forecast prices.m_oil: not an economic signal of the controller"),
])
def test_bad_forecast_input_names_the_signal_and_bound(forecast, message):
    """As a site file gives it (decoded: its checks run as in a TOML file)."""
    with pytest.raises((ConfigError, ValueError), match=message):
        resolved(AssetConfig(id="tank", kind="asphalt_tank",
                             forecast=msgspec.convert(forecast, ForecastSettings)))


def test_a_profile_longer_than_the_horizon_is_refused_naming_the_signal_and_horizon():
    """The loop asks for exactly the horizon's steps; a controller handed more refuses
    them."""
    loop = build_loop(heated_tank(PEAK_TARIFF), T0)
    with pytest.raises(ValueError, match=r"prices\['m_oil'\]: expected a number or 1 to 24 "
                                         r"values \(the horizon\), got 25"):
        loop.controller.step(T0, loop.x, loop.u, loop.d, {}, prices={"m_oil": [1.0] * 25})


def test_a_forecast_series_from_a_csv_file(tmp_path):
    path = tmp_path / "ambient.csv"
    path.write_text("hour,T_ambient\n0,280.0\n1,270.0\n")
    asset = resolved(AssetConfig(id="tank", kind="asphalt_tank", forecast=ForecastSettings(
        start=T0, disturbances={"T_ambient": str(path)})))
    forecast = site_forecast(asset, plants.model_of(asset), T0)
    assert forecast is not None
    ahead = forecast.trajectories(T0 + HOUR * np.array([-1.0, 0.5, 1.5, 9.0]))
    assert ahead.disturbances["T_ambient"] == [280.0, 280.0, 270.0, 270.0]


def test_do_mpc_heats_ahead_of_a_forecast_rise_of_the_target():
    """The do-mpc backend sees the reference trajectory: a target 5 K higher in 25 min
    raises the hot oil now; with the target held (no forecast) the flow holds."""
    def tank(forecast: ForecastSettings | None) -> AssetConfig:
        return resolved(AssetConfig(
            id="tank", kind="asphalt_tank", period_s=300.0, forecast=forecast,
            controller=ControllerSettings(backend="do-mpc", horizon=10,
                                          tracking={"T_bulk": 100.0, "T_return": 0.0},
                                          move_suppression={"m_oil": 0.1})))

    rise = ForecastSettings(step_s=300.0, start=T0,
                            reference={"T_bulk": [433.15] * 5 + [438.15]})
    held = build_loop(tank(None), T0).propose(T0)
    ahead = build_loop(tank(rise), T0).propose(T0)
    assert held.status.startswith("Solve") and ahead.status.startswith("Solve")
    assert held.setpoints["m_oil"] == pytest.approx(0.47, abs=0.01)
    assert ahead.setpoints["m_oil"] > held.setpoints["m_oil"] + 0.1
    assert ahead.predicted["T_bulk"][-1] > held.predicted["T_bulk"][-1] + 1.0


def test_a_plans_injection_a_solver_tolerance_below_zero_is_taken_at_zero_more_is_refused():
    """The planner's IPOPT stops within its tolerance (-7e-9 L/h seen on the pilot's
    plan); a value that far past a bound is the bound, one clearly past it is refused."""
    model = plants.model_of(dra_line())
    entry = approved_plan(T0, 1, 0.0, 0.8)
    entry["plan"]["hours"][0]["dra_injection"] = [-7e-9, 0.0, 0.0]
    ahead = plan_forecast(model, entry).trajectories(np.array([T0]))
    assert ahead.reference["dra_injection_1"] == [0.0]
    entry["plan"]["hours"][0]["dra_injection"] = [-0.5, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"forecast reference.dra_injection_1\[0\] = -0.5 L/h "
                       r"is outside \[0, 100\] L/h"):
        plan_forecast(model, entry)


def test_a_do_mpc_line_follows_an_approved_plans_flow_without_input_targets():
    """do-mpc tracks outputs only: the loop hands it the plan's flow and prices and none
    of the plan's injections or speeds, which it would refuse."""
    loop = build_loop(dra_line(controller=ControllerSettings(horizon=2)), T0)
    assert not loop.controller.input_targets
    loop.follow(plan_forecast(loop.model, approved_plan(T0, 3, 40.0, 0.8)))
    proposal = loop.propose(T0)
    assert proposal.status.startswith("Solve")
    assert "delivery_flow 0.333 m^3/s -> 0.3 m^3/s" in proposal.reason
