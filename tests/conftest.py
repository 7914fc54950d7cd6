"""Shared fixtures: one embedded Ray for the whole session, started only when needed."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.ports import free_port

TWO_TANKS = Path(__file__).resolve().parent / "sites" / "two_tanks.toml"
MQTT_TANK = Path(__file__).resolve().parent / "sites" / "mqtt_tank.toml"


@pytest.fixture(scope="session")
def ray_session():
    """An embedded Ray shared by every integration test (start-up costs ~10 s)."""
    import ray

    from actors import NAMESPACE

    # address="local": a Ray of its own, even while a multi-node scenario (this session's
    # or another's on this machine) has its cluster's address in /tmp/ray/ray_current_cluster,
    # which ray.init() would otherwise join (and refuse num_cpus)
    ray.init(address="local", num_cpus=2, namespace=NAMESPACE, include_dashboard=False,
             logging_level="WARNING", log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def site_fleet(ray_session, tmp_path_factory):
    """Builds a site's fleet for a test module: ``with site_fleet(site_file, namespace)
    as fleet:`` loads the site file, lets ``edit`` (SiteConfig -> SiteConfig) change it,
    resolves it (plants.resolve_site), gives it a private ``var/`` folder of its own for
    the audit database and the DuckDB history, and runs it in lock-step (SimClock from
    UNIX time 1.7e9) in the Ray ``namespace``, with the historian if ``history``. Tests
    run it forward with ``fleet.run_for``; the fleet is shut down on leaving."""
    import msgspec

    import plants
    from actors.fleet import build_fleet
    from engine.clock import ClockSpec
    from engine.config import load_site

    @contextlib.contextmanager
    def build(site_file, namespace, *, history=False, edit=None):
        site = load_site(site_file)
        site = plants.resolve_site(edit(site) if edit else site, site_file)
        var = tmp_path_factory.mktemp("var")
        site = msgspec.structs.replace(
            site, site=msgspec.structs.replace(site.site, audit_db=str(var / "audit.db")),
            historian=msgspec.structs.replace(site.historian, path=str(var / "history.duckdb")))
        fleet = build_fleet(site, ClockSpec(lockstep=True, epoch=1.7e9), namespace=namespace,
                            history=history)
        try:
            yield fleet
        finally:
            fleet.shutdown()

    return build


@pytest.fixture(scope="module")
def two_tanks(site_fleet, request):
    """The two-tank site (tests/sites/two_tanks.toml) by ``site_fleet``, one per test
    module, in a Ray namespace of its own, recording into a DuckDB file of its own. A
    module's ``TWO_TANKS_ALARMS`` (asset id -> list of engine.config.AlarmSettings) adds
    alarms to its tanks."""
    import msgspec

    extra = getattr(request.module, "TWO_TANKS_ALARMS", {})

    def add_alarms(site):
        return msgspec.structs.replace(site, assets=[
            msgspec.structs.replace(a, alarms=[*a.alarms, *extra.get(a.id, [])])
            for a in site.assets])

    with site_fleet(TWO_TANKS, f"test-{request.module.__name__}", history=True,
                    edit=add_alarms) as fleet:
        yield fleet


class MqttBroker:
    """A real MQTT broker on a loopback port: mosquitto if installed (.ci/run installs
    it), else amqtt (the test extra). ``url`` is ``mqtt://127.0.0.1:<port>``."""

    def __init__(self, port: int, workdir: Path) -> None:
        import shutil
        import sys

        self.port = port
        self.url = f"mqtt://127.0.0.1:{port}"
        if shutil.which("mosquitto"):
            config = workdir / "mosquitto.conf"
            config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                              "max_inflight_messages 1000\nmax_queued_messages 100000\n")
            self.command = ["mosquitto", "-c", str(config)]
        else:
            config = workdir / "amqtt.yaml"
            config.write_text(f"listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:{port}\n"
                              "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                              "    allow_anonymous: true\n")
            self.command = [str(Path(sys.executable).with_name("amqtt")), "-c", str(config)]
        self.workdir = workdir
        self.process = None

    def start(self) -> None:
        import socket
        import subprocess
        import time

        self.process = subprocess.Popen(self.command, cwd=self.workdir,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20.0
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"MQTT broker {self.command} did not listen on "
                                       f"{self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture(scope="module")
def mqtt_broker(tmp_path_factory):
    """A running MqttBroker on a free port, one per test module."""

    broker = MqttBroker(free_port(), tmp_path_factory.mktemp("broker"))
    broker.start()
    yield broker
    broker.stop()


@contextlib.contextmanager
def admin_api(fleet, timeout: float = 30.0):
    """The HTTP API over ``fleet`` on a free loopback port, and a client that carries an
    admin bearer token and waits up to ``timeout`` wall seconds for a reply; Ray Serve is
    shut down afterwards."""
    import httpx
    from ray import serve

    from serve.app import start_http
    from serve.auth import Token, hash_token

    token = secrets.token_urlsafe(32)
    url = start_http(fleet, "127.0.0.1", free_port(), [Token("tester", "admin", hash_token(token))])
    try:
        with httpx.Client(base_url=url, timeout=timeout,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            yield client
    finally:
        serve.shutdown()


def assert_promtool_accepts(text: str) -> None:
    """``promtool check metrics`` passes the Prometheus exposition ``text`` (skipped where
    promtool is not installed: Debian package prometheus, which .ci/run installs)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus; .ci/run installs it)")
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
