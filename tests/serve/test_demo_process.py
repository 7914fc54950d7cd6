"""`twinloop demo` as a process seen from the machine it runs on (issue 11, items 11-14):
no Ray process or worker inherits the admin token, nothing of it listens beyond loopback
when its HTTP host is loopback, its folder and files are its owner's only, and SIGINT
stops it cleanly even when it was started with SIGINT ignored, as a shell starts a
background job.

One demo of the two-tank site runs for the whole module, started with the admin token
in its environment and SIGINT ignored; the last test stops it."""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import TWO_TANKS, free_port
from tests.ports import consecutive_free_ports

TOKEN = secrets.token_urlsafe(32)


class Demo:
    def __init__(self, process: subprocess.Popen, banner: str, port: int, folder: Path):
        self.process = process
        self.banner = banner
        self.url = f"http://127.0.0.1:{port}"
        self.folder = folder

    def processes(self) -> list[psutil.Process]:
        """The demo and every process it started (Ray's GCS, raylet, agents, workers)."""
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]


def _start_demo(folder: Path) -> tuple[subprocess.Popen, list[str], int]:
    """A demo on free loopback ports, started ignoring SIGINT as `twinloop demo &` is;
    returns it once its banner is printed (or it has ended), with the banner and port."""
    port = free_port()
    twinloop = Path(sys.executable).with_name("twinloop")
    command = [str(twinloop) if twinloop.exists() else shutil.which("twinloop"),
               "demo", "--site", str(TWO_TANKS), "--speed", "600", "--duration", "600",
               "--port", str(port), "--modbus-port", str(consecutive_free_ports(2)),
               "--opcua-port", str(free_port())]
    ignoring_sigint = ["sh", "-c", 'trap "" INT; exec "$@"', "sh"]  # as `twinloop demo &`
    process = subprocess.Popen(
        ignoring_sigint + command, cwd=folder, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, env={**os.environ, "TWINLOOP_ADMIN_TOKEN": TOKEN})
    banner = []
    assert process.stdout is not None
    for line in process.stdout:
        banner.append(line)
        if "Stopping in" in line or process.poll() is not None:
            break
    return process, banner, port


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    for _attempt in range(3):
        process, banner, port = _start_demo(folder)
        # a port free_port() found free can be taken by one of the demo's own Ray
        # processes before the HTTP proxy binds it: then start again on other ports
        if "Stopping in" in banner[-1] or "Failed to bind" not in "".join(banner):
            break
        process.communicate(timeout=60)
    try:
        assert "Stopping in" in banner[-1], "".join(banner)
        yield Demo(process, "".join(banner), port, folder)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=60)


def test_no_process_of_the_demo_has_the_admin_token_in_its_environment(demo):
    """The token reaches the HTTP replica as its hash: the API accepts it, while no Ray
    process or worker, the HTTP replica included, has TWINLOOP_ADMIN_TOKEN in its
    environment (/proc/<pid>/environ; the demo's own shows what it was started with,
    whatever it removed since)."""
    reply = httpx.get(f"{demo.url}/assets", headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=30.0)
    assert reply.status_code == 200, reply.text
    environments = {}
    for process in demo.processes()[1:]:
        try:
            environments[" ".join(process.cmdline())[:80]] = process.environ()
        except psutil.NoSuchProcess:  # a worker that ended meanwhile
            continue
    assert any("ServeReplica:twinloop" in name for name in environments), list(environments)
    holders = [name for name, environment in environments.items()
               if "TWINLOOP_ADMIN_TOKEN" in environment
               or any(TOKEN in value for value in environment.values())]
    assert holders == []


def test_nothing_of_the_demo_listens_beyond_loopback(demo):
    """With its HTTP host on loopback (the site's 127.0.0.1) and an embedded Ray, every
    listening socket of the demo's processes is on a loopback address: the HTTP proxy,
    the PLCs, OPC UA, Ray's GCS, raylet and agents, and Serve's replica, whose gRPC server
    Ray binds to every address."""
    sockets = []
    for process in demo.processes():
        try:
            name = " ".join(process.cmdline())[:60]
            sockets += [(connection.laddr.ip, connection.laddr.port, name)
                        for connection in process.net_connections(kind="inet")
                        if connection.status in (psutil.CONN_LISTEN, psutil.CONN_NONE)]
        except psutil.NoSuchProcess:
            continue
    assert int(demo.url.rsplit(":", 1)[1]) in {port for _, port, _ in sockets}
    assert [s for s in sockets if not _is_loopback(s[0])] == []


def test_the_demos_folder_and_files_are_its_owners_only(demo):
    var = demo.folder / "var"
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in var.iterdir()}
    assert {"two-tanks-audit.db", "two-tanks-audit.db-wal", "two-tanks-audit.db-shm",
            "two-tanks.log"} <= set(modes)
    assert all(mode == 0o600 for mode in modes.values()), modes


def test_no_idle_worker_waits_in_the_demo(demo):
    """Issue 10's pilot memory: the demo runs actors only, each in a worker of its own, so
    the idle workers Ray prestarts for a driver (one per CPU, 80 MB resident each) would
    never run anything: none is started."""
    names = []
    for process in demo.processes():
        try:
            names.append(" ".join(process.cmdline()))
        except psutil.NoSuchProcess:
            continue
    assert any(name.startswith("ray::StatusBoard") for name in names), names
    assert [name for name in names if name.startswith("ray::IDLE")] == []


def test_processes_that_run_no_plant_model_do_not_load_its_libraries(demo):
    """Ray imports the module of an actor handle's class to deserialize the handle: the
    status board imports the OPC UA gateway's, the HTTP replica the shards'. The plant
    models are imported where they are used (the gateway's address space), and numba
    (50 MB resident) only where a rod pump's kernels run, so the status board maps
    neither numba nor SciPy (90 MB), and the demo's driver, the HTTP replica and the OPC UA
    gateway do not map numba."""
    absent = {"ray::StatusBoard": ("llvmlite", "numba", "scipy"),
              "ray::OpcUaActor": ("llvmlite", "numba"),
              "ray::ServeReplica:twinloop:TwinLoopAPI": ("llvmlite", "numba"),
              "driver": ("llvmlite", "numba")}
    mapped = {}
    for process in demo.processes():
        try:
            name = "driver" if process.pid == demo.process.pid else (
                process.cmdline()[:1] or [""])[0].split(".")[0]
            maps = Path(f"/proc/{process.pid}/maps").read_text()
        except (psutil.NoSuchProcess, FileNotFoundError):  # a worker that ended meanwhile
            continue
        if name in absent:
            mapped[name] = [lib for lib in absent[name] if f"/{lib}/" in maps]
    assert mapped == {name: [] for name in absent}


def test_sigint_stops_the_demo_cleanly_though_it_was_started_ignoring_it(demo):
    """Last: Ctrl-C, or kill -INT, stops a demo that inherited SIGINT as ignored."""
    demo.process.send_signal(signal.SIGINT)
    try:
        rest, _ = demo.process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the demo ignored SIGINT")
    console = demo.banner + rest
    assert demo.process.returncode == 0, console
    assert rest.strip().endswith("twinloop: stopped"), console
    assert "Traceback" not in console


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback
