"""An independent tool checks the HTTP contract (issue 11's acceptance): schemathesis
generates requests from /openapi.json and checks every answer (no server error, a
documented status code, a body matching its declared schema and content type, 401
without the token, 405 with the right Allow header, malformed input refused, ...).

It runs against the real Ray Serve app over loopback, on the two-tank site of this module
alone (lock-step: the fuzz's writes, OFF modes, operator limits and safe-state commands
stay in this module's fleet), with an admin token so that every write is exercised.
Reproducible: deterministic generation (no random seed, no example database), one
worker, a bounded number of examples per operation. Most generated asset ids and
proposal numbers are drawn from those that exist (tank-02 is ADVISORY and has queued
proposals), so that requests reach the assets and the safety actor rather than stop at
404.

One check is left out, with its reason: ``positive_data_acceptance`` expects every
request the schema allows to succeed, but the schema of a body is the same for every
asset (``{signal: number}``) and cannot name each asset's signals and their bounds, which
the asset checks (422 naming the signal and the bound).
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys

import httpx
import msgspec
import pytest

import plants.asphalt_tank
from serve.auth import Token, hash_token
from tests.conftest import TWO_TANKS, free_port

TOKEN = secrets.token_urlsafe(32)
EXAMPLES_PER_OPERATION = 15
CONFIG = """
[dictionaries.assets]
values = ["tank-01", "tank-02"]

[dictionaries.proposals]
values = [1, 2, 3, 4, 5]

[parameters]
"path.asset_id" = { dictionary = "assets", probability = 0.9 }
"path.number" = { dictionary = "proposals", probability = 0.7 }

[[operations]]
include-path = "/assets/{asset_id}/whatif"
checks.max_response_time = 330
"""
"""schemathesis.toml: where asset ids and proposal numbers are drawn from; a what-if may
take as long as its own ``timeout_s`` (at most 300 s) to answer."""


def fast_tanks(site):
    """The two tanks on the ``fast`` MPC backend: a 24-hour closed-loop what-if (which
    the fuzz asks for) then answers in seconds, where on do-mpc it takes about as long as
    the 30 s ``timeout_s`` the fuzz gives it, and answers 504 when it runs out."""
    defaults = plants.asphalt_tank.DEFAULTS.controller
    fast = msgspec.structs.replace(defaults, backend="fast")
    return msgspec.structs.replace(site, assets=[
        msgspec.structs.replace(asset, controller=fast) for asset in site.assets])


@pytest.fixture(scope="module")
def two_tanks(site_fleet):
    with site_fleet(TWO_TANKS, "test-schemathesis", history=True, edit=fast_tanks) as fleet:
        yield fleet


@pytest.fixture(scope="module")
def url(two_tanks):
    from ray import serve

    from serve.app import start_http

    url = start_http(two_tanks, "127.0.0.1", free_port(), [Token("fuzz", "admin",
                                                                  hash_token(TOKEN))])
    auth = {"Authorization": f"Bearer {TOKEN}"}
    advisory = httpx.put(f"{url}/assets/tank-02/mode", json={"mode": "ADVISORY"},
                         headers=auth, timeout=60.0)
    assert advisory.status_code == 200, advisory.text
    two_tanks.run_for(600.0)  # measurements, estimates, an audit and proposals to read
    yield url
    serve.shutdown()


def test_schemathesis_finds_no_failure_with_every_check(url, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
         "run", f"{url}/openapi.json",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--header", f"Authorization: Bearer {TOKEN}",
         "--max-examples", str(EXAMPLES_PER_OPERATION),
         "--generation-deterministic",
         "--workers", "1", "--request-timeout", "60", "--no-color",
         "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-2000:]
    selected = re.search(r"Selected: \d+/(\d+)", run.stdout)
    tested = re.search(r"Tested: (\d+)", run.stdout)
    assert selected and tested and tested[1] == selected[1], run.stdout  # every operation
