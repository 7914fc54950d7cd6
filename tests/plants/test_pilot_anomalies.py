"""The pilot's anomaly flags tell the truth: over a 2-hour lock-step run of each pilot
asset against its simulated plant (with the site's mismatches, worn and fouled
equipment and noisy sensors), no asset raises more NIS anomalies than twice its
configured significance allows, plus one; none is ever persistently anomalous (so
none turns unhealthy); and a real fault is still flagged.

The margin: ``anomalies <= 2 x significance x corrections + 1``. With significance
0.001 twice the rate allows under one anomaly in a run of 8 to 240 corrections, so the
one extra is the small absolute margin of a short run: a single chi-square tail event
of a consistent filter (probability 1 - (1 - 0.001)^240 = 21 % over the longest run).

The whole site takes about 110 s on a quiet machine (profiled: IPOPT in the do-mpc
solves, the terminal's 30 states 35 s, each pump's 240 ticks 15 s), too slow for the
suite: it runs a representative set, every kind and every asset the site mismatches
or the issue named, and the whole site with TWINLOOP_FULL_PILOT=1.
"""

from __future__ import annotations

import os

import msgspec
import pytest

from tests.plants.pilot_lockstep import PILOT_SITE, LockStep, pilot_asset

TWO_HOURS = 7200.0
REPRESENTATIVE = ("tank-01", "tank-02", "dra-line", "well-01", "well-02", "well-03", "cell-01",
                  "cell-02", "pump-02")
"""Left out unless TWINLOOP_FULL_PILOT=1: the terminal (its do-mpc solves take a third of
the site's time), pump-01 (pump-02 without its wear) and pump-03 (pump-01 with a
vibration drift, which no output but the vibration sees)."""
ASSETS = [a.id for a in PILOT_SITE.assets
          if os.environ.get("TWINLOOP_FULL_PILOT") == "1" or a.id in REPRESENTATIVE]


@pytest.mark.parametrize("asset_id", ASSETS)
def test_a_healthy_pilot_asset_raises_anomalies_at_most_twice_its_significance(asset_id):
    run = LockStep(pilot_asset(asset_id))
    run.run(TWO_HOURS)
    significance = run.asset.estimator.significance
    assert run.anomalies <= 2 * significance * run.ticks + 1, \
        f"{asset_id}: {run.anomalies} anomalies in {run.ticks} corrections"
    assert run.persistent == 0


def test_well_03s_higher_productivity_is_tracked_not_flagged():
    """well-03 gives 20 % more than the twin's productivity index: the filter's
    productivity multiplier comes within 5 % of 1.2 within 2 h, without anomalies."""
    run = LockStep(pilot_asset("well-03"))
    run.run(TWO_HOURS)
    multiplier = run.loop.estimate().values["productivity_multiplier"]
    assert multiplier == pytest.approx(1.2, rel=0.05)
    assert run.anomalies == 0


def test_a_sudden_loss_of_inflow_is_flagged():
    """After 1 h, well-02's inflow halves at once (a plugged perforation): the next
    corrections fail the NIS test, where in the hour before none did."""
    run = LockStep(pilot_asset("well-02"))
    run.run(3600.0)
    assert run.anomalies == 0
    run.plant.p = run.plant.p.copy()
    run.plant.p[run.plant.model.parameters.index("productivity_index")] *= 0.5
    run.run(5 * run.asset.period_s)
    assert run.anomalies >= 1


def test_a_drifted_bath_thermocouple_makes_the_cell_unhealthy():
    """cell-01's bath thermocouple reads 10 K high from 1 h on (a drifted or
    dross-coated probe, 7 noise std): within the persistence window the anomaly is
    persistent, which the asset's health reports."""
    run = LockStep(pilot_asset("cell-01"))
    run.run(3600.0)
    window = run.asset.estimator.persistence_window

    def drifted(measurement):
        values = dict(measurement.values)
        values["bath_temperature"] += 10.0
        return msgspec.structs.replace(measurement, values=values)

    run.run(window * run.asset.period_s, drifted)
    assert run.loop.persistent_anomaly
