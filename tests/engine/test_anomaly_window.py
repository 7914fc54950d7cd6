"""A persistent anomaly: most of the last N corrections failed the NIS test. One false
alarm does not make an asset unhealthy; a sensor that reads wrong does, until it reads
right again."""

from __future__ import annotations

import msgspec
import pytest

from engine.config import ConfigError, parse_site
from engine.loop import AnomalyWindow
from engine.messages import Measurement
from tests.plants.pilot_lockstep import LockStep, pilot_asset

BIAS_K = 3.0
"""A bulk temperature probe reading 3 K high (15 noise std of 0.2 K)."""


def biased(measurement: Measurement, bias: float) -> Measurement:
    values = {**measurement.values, "T_bulk": measurement.values["T_bulk"] + bias}
    return msgspec.structs.replace(measurement, values=values)


def test_a_sensor_bias_is_a_persistent_anomaly_until_the_sensor_reads_right():
    """tank-01 (fouled coil, worse insulation: the pilot's mismatch) runs 2 h clean with
    no persistent anomaly; a 3 K bias on the bulk temperature probe makes one within the
    window (10 corrections) and the estimate and loop say so. The filter half absorbs
    the bias into its heat-loss multiplier meanwhile, so once the probe reads right it
    takes it some corrections to unlearn it: the anomaly clears within three windows."""
    tank = LockStep(pilot_asset("tank-01"))
    window = tank.asset.estimator.persistence_window
    tank.run(2 * 3600.0)
    assert tank.persistent == 0
    tank.run(window * tank.asset.period_s, lambda m: biased(m, BIAS_K))
    assert tank.loop.persistent_anomaly and tank.loop.estimate().persistent_anomaly
    tank.run(3 * window * tank.asset.period_s)
    assert not tank.loop.persistent_anomaly


def test_a_single_anomaly_is_not_persistent():
    window = AnomalyWindow(10, 0.5)
    for flag in (True, False, False, True, False, True, False, True, False, True):
        window.record(flag)
    assert window.count == 5 and not window.persistent  # 5 of 10 is not most
    window.record(True)  # the oldest flag (True) leaves the window
    assert window.count == 5 and not window.persistent
    window.record(True)
    assert window.count == 6 and window.persistent


def test_the_window_survives_a_checkpoint():
    tank = LockStep(pilot_asset("tank-01"))
    tank.run(3600.0)
    tank.run(10 * tank.asset.period_s, lambda m: biased(m, BIAS_K))
    assert tank.loop.persistent_anomaly
    restored = LockStep(pilot_asset("tank-01")).loop
    restored.restore(msgspec.json.decode(msgspec.json.encode(tank.loop.checkpoint())))
    assert restored.persistent_anomaly


@pytest.mark.parametrize("window, fraction, problem", [
    (0, 0.5, "persistence_window"), (10, 1.0, "persistence_fraction"),
    (10, -0.1, "persistence_fraction")])
def test_bad_window_settings_are_refused(window, fraction, problem):
    with pytest.raises(ValueError, match=problem):
        AnomalyWindow(window, fraction)
    site = f"""
[site]
name = "x"
[[assets]]
id = "tank"
kind = "asphalt_tank"
[assets.estimator]
persistence_window = {window}
persistence_fraction = {fraction}
"""
    with pytest.raises(ConfigError, match=problem):
        parse_site(site)
