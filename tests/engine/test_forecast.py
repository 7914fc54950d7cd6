"""Forecasts through the loop (engine.forecast, issue 14 item 1), lock-step without Ray:
an asphalt tank whose hot oil is priced at an hourly tariff with a peak ahead, a DRA
line's tariff and nomination, an approved plan over the site's forecast, bad input."""

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


def test_an_approved_plan_drives_the_reference_over_its_hours_then_the_site_again():
    asset = dra_line(nomination=NominationSettings(daily_volume=[28800.0]))
    model = plants.model_of(asset)
    site = site_forecast(asset, model, T0)
    hours = [{"flow": 0.30 + 0.01 * k, "electricity_price": 0.1} for k in range(3)]
    entry = {"version": 7, "status": "approved", "plan": {"start": T0, "hours": hours}}
    forecast = plan_forecast(model, entry).over(site)
    ahead = forecast.trajectories(T0 + HOUR * np.array([0.5, 1.5, 2.5, 3.5]))
    assert ahead.reference["delivery_flow"] == pytest.approx([0.30, 0.31, 0.32, 1 / 3])
    assert forecast.driving(T0 + 2.5 * HOUR) == "plan v7"
    assert forecast.driving(T0 + 3 * HOUR) == "site"


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
