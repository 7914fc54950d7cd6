"""controllers.backends: the one registry of controller backends, which kinds each fits,
and the one check of controller settings, for built controllers and site files alike."""

from __future__ import annotations

import msgspec
import pytest

import plants
from controllers import CONTROLLER_BACKENDS, build_controller
from controllers.backends import backends_for, check_controllers
from controllers.mpc_fast import FastMpcController
from engine.config import ConfigError, ControllerSettings, OutputLimit, parse_site
from plants import asphalt_tank, rod_pump


def test_every_backend_is_registered_and_fillage_fits_only_rod_pumps():
    assert list(CONTROLLER_BACKENDS) == ["do-mpc", "fast", "fillage-rule"]
    assert backends_for("asphalt_tank") == ["do-mpc", "fast"]
    assert backends_for("rod_pump") == ["do-mpc", "fast", "fillage-rule"]


def test_build_controller_builds_fast_for_a_tank():
    settings = msgspec.structs.replace(asphalt_tank.DEFAULTS.controller, backend="fast")
    controller = build_controller(asphalt_tank.build_model(), settings,
                                  asphalt_tank.DEFAULTS.limits)
    assert isinstance(controller, FastMpcController) and controller.backend == "fast"


TANK = asphalt_tank.build_model()


@pytest.mark.parametrize(("settings", "message"), [
    (ControllerSettings(backend="acados"),
     "backend: unknown backend 'acados'; known backends: do-mpc, fast, fillage-rule"),
    (ControllerSettings(backend="fillage-rule"),
     "backend: 'fillage-rule' does not fit plant kind 'asphalt_tank'"),
    (ControllerSettings(horizon=0), "horizon: 0 is outside [1, 500] controller steps"),
    (ControllerSettings(tracking={"level": 1.0}), "tracking.level: unknown output; known: "),
    (ControllerSettings(move_suppression={"T_supply": 1.0}),
     "move_suppression.T_supply: unknown input; known: m_oil"),
    (ControllerSettings(tracking={"T_bulk": float("nan")}),
     "tracking.T_bulk: weight nan must be finite and >= 0"),
    (ControllerSettings(backend="fast", economic={"power": 1.0}),
     "economic.power: unknown input or output"),
    (ControllerSettings(backend="fast", output_limits={"T_bulk": OutputLimit(upper=1.0,
                                                                             penalty=0.0)}),
     "output_limits.T_bulk.penalty: 0 must be finite and > 0"),
    (ControllerSettings(backend="fast", qp_solver="gurobi"),
     "qp_solver: 'gurobi' is not one of qrqp, osqp, qpoases"),
    (ControllerSettings(backend="fast", max_iterations=0), "max_iterations: 0 is below 1"),
    (ControllerSettings(backend="fast", hessian="newton"),
     "hessian: 'newton' is not one of gauss-newton, exact"),
    (ControllerSettings(hessian="exact"),
     ("hessian: backend 'do-mpc' does not read it, so it must be left at its default")),
    (ControllerSettings(output_limits={"T_bulk": OutputLimit(upper=440.0)}),
     ("output_limits: backend 'do-mpc' does not read it, so it must be left at its default "
      "{} (backends that read it: fast)")),
])
def test_bad_settings_raise_naming_the_field_and_the_bound(settings, message):
    with pytest.raises(ValueError) as error:
        build_controller(TANK, settings, asphalt_tank.DEFAULTS.limits)
    assert message in str(error.value)


def test_limits_of_unknown_signals_are_refused():
    with pytest.raises(ValueError, match="limits.valve: unknown input or disturbance"):
        build_controller(TANK, ControllerSettings(), {"valve": asphalt_tank.DEFAULTS.limits[
            "m_oil"]})


def test_fillage_rule_still_builds_for_a_rod_pump():
    controller = build_controller(rod_pump.build_model(), rod_pump.DEFAULTS.controller,
                                  rod_pump.DEFAULTS.limits)
    assert controller.backend == "fillage-rule"


SITE = """
[site]
name = "t"
[[assets]]
id = "tank-01"
kind = "asphalt_tank"
"""


@pytest.mark.parametrize(("extra", "key", "problem"), [
    (('controller = { backend = "fast", output_limits = { T_bulk = { lower = 450.0, '
      "upper = 440.0 } } }"), "assets[0].controller.output_limits.T_bulk",
     "lower 450 is above upper 440 K"),
    ('controller = { backend = "fast", tolerance = 0.0 }', "assets[0].controller.tolerance",
     "0 must be finite and > 0"),
    ('controller = { backend = "fillage-rule" }', "assets[0].controller.backend",
     "does not fit plant kind 'asphalt_tank'"),
    ("controller = { horizon = 501 }", "assets[0].controller.horizon", "outside [1, 500]"),
])
def test_a_site_files_controller_errors_name_the_file_and_the_key(extra, key, problem):
    site = plants.resolve_site(parse_site(SITE + extra, "site.toml"), "site.toml")
    with pytest.raises(ConfigError) as caught:
        check_controllers(site, "site.toml")
    assert (caught.value.path, caught.value.key) == ("site.toml", key)
    assert problem in caught.value.problem


def test_a_site_file_may_choose_fast_for_a_tank():
    site = plants.resolve_site(parse_site(SITE + 'controller = { backend = "fast" }'))
    check_controllers(site)
