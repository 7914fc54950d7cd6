"""controllers.tuning: how a partial tuning merges over the current one, and what it refuses."""

from __future__ import annotations

import math

import pytest

from controllers import CONTROLLER_BACKENDS
from controllers.tuning import retune
from plants.asphalt_tank import DEFAULTS, build_model


def test_weights_and_limits_merge_by_name_and_null_means_the_engineering_bound():
    model = build_model()
    settings, limits = retune(model, DEFAULTS.controller, DEFAULTS.limits, {
        "tracking": {"T_return": 1.0},
        "limits": {"m_oil": {"upper": None, "max_rate": None}},
    }, CONTROLLER_BACKENDS)
    assert settings.tracking == {"T_bulk": 100.0, "T_return": 1.0}
    assert settings.horizon == DEFAULTS.controller.horizon
    assert (limits["m_oil"].lower, limits["m_oil"].upper) == (0.1, 12.0)
    assert limits["m_oil"].max_rate == math.inf
    assert DEFAULTS.controller.tracking == {"T_bulk": 100.0, "T_return": 0.0}


@pytest.mark.parametrize(("change", "message"), [
    ({"rti": True}, "unknown field `rti`"),
    ({"limits": {"m_oil": {"speed": 1.0}}}, "limits.m_oil: unknown field(s) ['speed']"),
    ({"limits": {"m_oil": {"upper": "high"}}}, "limits.m_oil.upper: 'high' is not a number"),
    ({"limits": {"T_bulk": {"upper": 1.0}}}, "limits.T_bulk: unknown input"),
    ({"horizon": 501}, "horizon: 501 is outside [1, 500]"),
])
def test_bad_changes_name_the_field(change, message):
    with pytest.raises(ValueError) as error:
        retune(build_model(), DEFAULTS.controller, DEFAULTS.limits, change, CONTROLLER_BACKENDS)
    assert message in str(error.value)
