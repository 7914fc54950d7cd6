"""ray_cluster.yaml is a configuration the Ray cluster launcher accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[1] / "ray_cluster.yaml"


def test_cluster_config_passes_rays_own_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(CONFIG.read_text())
    validate_config(prepare_config(config))  # raises on a config `ray up` would refuse
    assert config["provider"]["type"] == "local"
    assert any("pip install" in c and "-e ." in c for c in config["setup_commands"])


def test_a_broken_config_is_refused_by_the_same_check():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(CONFIG.read_text())
    config["provider"] = {"type": "local"}  # no head_ip: the launcher cannot start a cluster
    with pytest.raises(Exception, match="head_ip"):
        validate_config(prepare_config(config))
