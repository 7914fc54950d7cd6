"""Site files: typed decoding and errors that name the file, the key and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

import plants
from engine.config import STALE_AFTER_PERIODS, ConfigError, load_site, parse_site

PILOT = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"

MINIMAL = """
[site]
name = "t"
[[assets]]
id = "tank-01"
kind = "asphalt_tank"
"""


def resolve(text):
    return plants.resolve_site(parse_site(text, "site.toml"), "site.toml")


def test_the_pilot_site_loads_and_resolves():
    site = plants.resolve_site(load_site(PILOT), PILOT)
    assert [a.id for a in site.assets][:2] == ["tank-01", "tank-02"]
    assert site.assets[0].limits["m_oil"].max_rate == 0.02
    assert {a.kind for a in site.assets} == set(plants.BUILDERS)


def test_unset_settings_take_the_kind_defaults():
    asset = resolve(MINIMAL).assets[0]
    assert asset.period_s == plants.DEFAULTS["asphalt_tank"].period_s
    assert asset.max_measurement_age_s == STALE_AFTER_PERIODS * asset.period_s  # watchdog on
    assert asset.reference == {"T_bulk": 433.15}
    assert asset.controller.horizon == plants.DEFAULTS["asphalt_tank"].controller.horizon


@pytest.mark.parametrize(("extra", "key", "problem"), [
    ('period_s = "fast"', "assets[0].period_s", "Expected `float | null`, got `str`"),
    ("reference = { T_top = 400.0 }", "assets[0].reference.T_top", "unknown signal"),
    ("reference = { T_bulk = 500.0 }", "assets[0].reference.T_bulk",
     "above its upper bound 473.15 K"),
    ("colour = 1", "assets[0]", "unknown field `colour`"),
    ("max_measurement_age_s = 0.0", "assets[0].max_measurement_age_s", "must be positive"),
    ('kind2 = "x"', "assets[0]", "unknown field `kind2`"),
])
def test_errors_name_file_key_and_problem(extra, key, problem):
    with pytest.raises(ConfigError) as caught:
        resolve(MINIMAL + extra)
    assert caught.value.path == "site.toml"
    assert caught.value.key == key
    assert problem in caught.value.problem


def test_safety_limits_must_lie_inside_engineering_bounds():
    with pytest.raises(ConfigError,
                       match=r"limits.m_oil: \[0.1, 50\] kg/s is outside .* \[0.1, 12\]"):
        resolve(MINIMAL + "[assets.limits.m_oil]\nlower = 0.1\nupper = 50.0\n")


def test_the_pilot_interlocks_resolve():
    site = plants.resolve_site(load_site(PILOT), PILOT)
    kinds = [type(lock).__name__ for lock in site.interlocks]
    assert kinds == ["TripInterlock", "CountInterlock"] + ["TripInterlock"] * 10
    terminal = next(a for a in site.assets if a.id == "terminal")
    assert terminal.limits["receipt_03"].upper == 60.0  # an operator-written disturbance


TRIP = """
[[interlocks]]
kind = "trip"
name = "hot"
when = ["tank-01.T_bulk"]
above = 470.0
"""


@pytest.mark.parametrize(("extra", "key", "problem"), [
    (TRIP + 'hold = ["tank-01.m_oil"]', None, None),
    (TRIP + 'hold = ["tank-02.m_oil"]', "interlocks[0].tank-02.m_oil",
     "not '<asset id>.<signal>' of an asset of this site; assets: tank-01"),
    (TRIP + 'hold = ["m_oil"]', "interlocks[0].m_oil", "not '<asset id>.<signal>'"),
    (TRIP + 'close = ["tank-01.T_supply"]', "interlocks[0].close[0]",
     "'tank-01.T_supply' is not a writable signal of tank-01; known: m_oil"),
    (TRIP.replace("tank-01.T_bulk", "tank-01.m_oil"), "interlocks[0].when[0]",
     "'tank-01.m_oil' is not an output of tank-01; known: T_bulk, T_return"),
    (TRIP.replace('"trip"', '"sometimes"'), "interlocks[0].kind",
     "Invalid value 'sometimes'"),
    (TRIP.replace("above = 470.0", ""), "interlocks[0]", "missing required field `above`"),
    ('[[interlocks]]\nkind = "max_active"\nname = "n"\nsignals = ["tank-01.m_oil"]\n'
     "max_active = -1", "interlocks[0].max_active", "must be at least 0, got -1"),
])
def test_interlock_errors_name_file_key_and_problem(extra, key, problem):
    if key is None:
        assert resolve(MINIMAL + extra).interlocks[0].hold == ["tank-01.m_oil"]
        return
    with pytest.raises(ConfigError) as caught:
        resolve(MINIMAL + extra)
    assert (caught.value.path, caught.value.key) == ("site.toml", key)
    assert problem in caught.value.problem


def test_unknown_kind_and_duplicate_ids_are_refused():
    with pytest.raises(ConfigError, match="unknown asset kind 'boiler'"):
        resolve(MINIMAL.replace("asphalt_tank", "boiler"))
    with pytest.raises(ConfigError, match="'tank-01' is used twice"):
        resolve(MINIMAL + MINIMAL.split("\n", 3)[3])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.toml: cannot read"):
        load_site(tmp_path / "nowhere.toml")


@pytest.mark.parametrize("kind", sorted(plants.BUILDERS))
def test_every_kind_resolves_from_its_defaults_alone(kind):
    """A site naming only an asset's kind gets a period, reference and limits that all
    refer to real signals of that kind's model, within their bounds."""
    asset = resolve(MINIMAL.replace("asphalt_tank", kind)).assets[0]
    model = plants.model_of(asset)
    assert set(asset.limits) == set(model.inputs.names)
    assert set(asset.reference) <= set(model.outputs.names)
