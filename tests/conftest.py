"""Shared fixtures: one embedded Ray for the whole session, started only when needed."""

from __future__ import annotations

from pathlib import Path

import pytest

TWO_TANKS = Path(__file__).resolve().parent / "sites" / "two_tanks.toml"


@pytest.fixture(scope="session")
def ray_session():
    """An embedded Ray shared by every integration test (start-up costs ~10 s)."""
    import ray

    from actors import NAMESPACE

    ray.init(num_cpus=2, namespace=NAMESPACE, include_dashboard=False,
             logging_level="WARNING", log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def two_tanks(ray_session, tmp_path_factory, request):
    """The two-tank site (tests/sites/two_tanks.toml) in lock-step (SimClock), one per test module, in a Ray
    namespace of its own. Tests run it forward with ``fleet.run_for``."""
    import msgspec

    import plants
    from actors.fleet import build_fleet
    from engine.clock import ClockSpec
    from engine.config import load_site

    site = plants.resolve_site(load_site(TWO_TANKS), TWO_TANKS)
    audit = tmp_path_factory.mktemp("audit") / "two-tanks-audit.db"
    site = msgspec.structs.replace(site, site=msgspec.structs.replace(site.site, audit_db=str(audit)))
    namespace = f"test-{request.module.__name__}"
    fleet = build_fleet(site, ClockSpec(lockstep=True, epoch=1.7e9), namespace=namespace)
    yield fleet
    fleet.shutdown()
