"""Interlocks of the site file through the actors: the asphalt terminal and a stand-alone
tank (tests/sites/terminal.toml) in lock-step, written by an operator in MANUAL mode."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import ray

import plants
from actors.fleet import build_fleet
from engine.clock import ClockSpec
from engine.config import load_site

SITE = Path(__file__).resolve().parents[1] / "sites" / "terminal.toml"


@pytest.fixture(scope="module")
def terminal(ray_session, tmp_path_factory):
    site = plants.resolve_site(load_site(SITE), SITE)
    audit = tmp_path_factory.mktemp("audit") / "terminal-audit.db"
    site = msgspec.structs.replace(
        site, site=msgspec.structs.replace(site.site, audit_db=str(audit)))
    fleet = build_fleet(site, ClockSpec(lockstep=True, epoch=1.7e9), namespace="test-interlocks")
    fleet.run_for(300.0)  # one tick: the safety actor has seen the levels
    yield fleet
    fleet.shutdown()


def write(fleet, values, asset="terminal"):
    return ray.get(fleet.assets[asset].write_setpoints.remote(values, "olga"))


def test_at_most_three_loading_pumps_run_at_once(terminal):
    reply = write(terminal, {"draw_01": 30.0, "draw_02": 25.0, "draw_03": 30.0, "draw_04": 20.0})
    assert reply["applied"] == {"draw_01": 30.0, "draw_02": 25.0, "draw_03": 30.0}
    refused = reply["records"][3]
    assert refused["outcome"] == "rejected"
    assert "interlock 'loading pumps': at most 3 active at once" in refused["reason"]
    truth = ray.get(terminal.plants["terminal"].truth.remote())["disturbances"]
    assert (truth["draw_03"], truth["draw_04"]) == (30.0, 0.0)
    # one stops, then another may start
    assert write(terminal, {"draw_02": 0.0})["applied"] == {"draw_02": 0.0}
    assert write(terminal, {"draw_04": 20.0})["applied"] == {"draw_04": 20.0}


def test_high_high_level_closes_filling_of_that_tank_only(terminal):
    status = ray.get(terminal.assets["terminal"].status.remote())
    assert status["measurement"]["level_06"]["value"] > 10.5
    assert status["measurement"]["level_05"]["value"] < 13.3
    terminal.run_for(300.0)
    reply = write(terminal, {"receipt_05": 40.0, "receipt_06": 40.0})
    assert reply["applied"] == {"receipt_05": pytest.approx(40.0), "receipt_06": 0.0}
    closed = reply["records"][1]
    assert closed["outcome"] == "clamped"
    assert "interlock 'tank 06 high-high level': terminal.level_06" in closed["reason"]
    truth = ray.get(terminal.plants["terminal"].truth.remote())
    assert truth["disturbances"]["receipt_06"] == 0.0
    mass = truth["states"]["mass_05"]
    terminal.run_for(300.0)
    truth = ray.get(terminal.plants["terminal"].truth.remote())
    assert truth["states"]["mass_05"] > mass + 300.0 * 40.0 - 300.0 * 30.0  # filled


def test_a_measurement_of_one_asset_holds_the_writes_of_another(terminal):
    """terminal.level_06 is above 10.5 m: tank-01's m_oil may fall but not rise."""
    held = ray.get(terminal.safety.last_applied.remote("tank-01"))["m_oil"]["value"]
    rising = write(terminal, {"m_oil": held + 1.0}, asset="tank-01")
    assert rising["applied"] == {"m_oil": held}
    assert ("interlock 'tank 06 high level holds tank-01 heating': terminal.level_06"
            in rising["records"][0]["reason"])
    terminal.run_for(300.0)  # the rate limit allows no change in no time
    falling = write(terminal, {"m_oil": held - 0.1}, asset="tank-01")
    assert falling["applied"] == {"m_oil": pytest.approx(held - 0.1)}
    truth = ray.get(terminal.plants["tank-01"].truth.remote())["inputs"]["m_oil"]
    assert truth == pytest.approx(held - 0.1)
