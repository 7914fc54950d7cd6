"""controllers.tuning: how a partial tuning merges over the current one, what it refuses,
and that the tuning of every asset kind can be answered as JSON and sent back as is."""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
import pytest

import plants
from controllers import CONTROLLER_BACKENDS
from controllers.tuning import describe, retune
from engine.config import load_site
from plants.asphalt_tank import DEFAULTS, build_model

PILOT = Path(__file__).resolve().parents[2] / "examples" / "pilot.toml"
ONE_PER_KIND = list({a.kind: a for a in plants.resolve_site(load_site(PILOT), PILOT).assets}
                    .values())


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


@pytest.mark.parametrize("asset", ONE_PER_KIND, ids=lambda a: a.kind)
def test_the_tuning_of_every_kind_is_json_and_sent_back_changes_nothing(asset):
    """The pilot's asset of each kind (the terminal's limits include the loading draws and
    receipts an operator writes, the pipeline's and the cell's "fast" tuning has soft
    output limits with an open bound): its tuning encodes as strict JSON (no NaN or
    infinity), and that very tuning, decoded and sent back as a change, is accepted and
    leaves the settings, every limit and the tuning unchanged."""
    model = plants.model_of(asset)
    tuning = describe(model, asset.controller, asset.limits, CONTROLLER_BACKENDS)
    sent = json.loads(json.dumps(tuning, allow_nan=False))
    settings, limits = retune(model, asset.controller, asset.limits, sent, CONTROLLER_BACKENDS)
    assert settings == asset.controller
    assert limits == asset.limits
    assert describe(model, settings, limits, CONTROLLER_BACKENDS) == tuning
    assert set(tuning["limits"]) == set(asset.limits)


def test_the_terminal_retunes_an_operator_written_draw_and_keeps_the_others():
    terminal = next(a for a in ONE_PER_KIND if a.kind == "asphalt_terminal")
    model = plants.model_of(terminal)
    _, limits = retune(model, terminal.controller, terminal.limits,
                       {"limits": {"draw_01": {"upper": 20.0}}}, CONTROLLER_BACKENDS)
    assert limits["draw_01"] == msgspec.structs.replace(terminal.limits["draw_01"], upper=20.0)
    assert {n: v for n, v in limits.items() if n != "draw_01"} == \
        {n: v for n, v in terminal.limits.items() if n != "draw_01"}


def test_a_null_bound_of_a_soft_output_limit_means_none():
    cell = next(a for a in ONE_PER_KIND if a.kind == "smelter_cell")
    settings, _ = retune(plants.model_of(cell), cell.controller, cell.limits, {
        "output_limits": {"bath_temperature": {"lower": None, "upper": 1240.0}}},
        CONTROLLER_BACKENDS)
    assert settings.output_limits["bath_temperature"].lower == -math.inf
    assert settings.output_limits["bath_temperature"].upper == 1240.0
    assert list(settings.output_limits) == ["bath_temperature"]


def test_a_tank_is_offered_the_mpc_backends_and_takes_fast():
    model = build_model()
    tuning = describe(model, DEFAULTS.controller, DEFAULTS.limits, CONTROLLER_BACKENDS)
    assert tuning["backends"] == ["do-mpc", "fast"]
    settings, _ = retune(model, DEFAULTS.controller, DEFAULTS.limits, {"backend": "fast"},
                         CONTROLLER_BACKENDS)
    assert settings == msgspec.structs.replace(DEFAULTS.controller, backend="fast")


@pytest.mark.parametrize(("change", "message"), [
    ({"rti": True}, "unknown field `rti`"),
    ({"limits": {"m_oil": {"speed": 1.0}}}, "limits.m_oil: unknown field(s) ['speed']"),
    ({"limits": {"m_oil": {"upper": "high"}}}, "limits.m_oil.upper: 'high' is not a number"),
    ({"limits": {"T_bulk": {"upper": 1.0}}}, "limits.T_bulk: unknown input"),
    ({"limits": {"T_supply": {"upper": 500.0}}}, "limits.T_supply: unknown input"),
    ({"horizon": 501}, "horizon: 501 is outside [1, 500]"),
    ({"backend": "fillage-rule"},
     ("backend: 'fillage-rule' does not fit plant kind 'asphalt_tank' (it fits rod_pump); "
      "backends for asphalt_tank: do-mpc, fast")),
    ({"economic": {"m_oil": 1.0}}, "economic: backend 'do-mpc' does not read it"),
    ({"backend": "fast", "output_limits": {"T_bulk": {"lower": 450.0, "upper": 440.0}}},
     "output_limits.T_bulk: lower 450 is above upper 440 K"),
    ({"backend": "fast", "tolerance": 0.0}, "tolerance: 0 must be finite and > 0"),
    ({"backends": ["fillage-rule"]}, "backends: read-only, is ['do-mpc', 'fast']"),
    ({"limits": {"m_oil": {"unit": "t/h"}}}, "limits.m_oil.unit: read-only, is 'kg/s'"),
    ({"limits": {"m_oil": {"engineering_upper": 20.0}}},
     "limits.m_oil.engineering_upper: read-only, is 12.0"),
])
def test_bad_changes_name_the_field(change, message):
    with pytest.raises(ValueError) as error:
        retune(build_model(), DEFAULTS.controller, DEFAULTS.limits, change, CONTROLLER_BACKENDS)
    assert message in str(error.value)
