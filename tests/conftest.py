"""Shared fixtures: one embedded Ray for the whole session, started only when needed."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_session():
    """An embedded Ray shared by every integration test (start-up costs ~10 s)."""
    import ray

    from actors import NAMESPACE

    ray.init(num_cpus=2, namespace=NAMESPACE, include_dashboard=False,
             logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()
