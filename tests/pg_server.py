"""A throw-away PostgreSQL server on a loopback port, for the tests and the benchmark.

It runs the postgres binaries found on PATH or under Debian's /usr/lib/postgresql/<ver>/bin
(.ci/run installs package ``postgresql``). PostgreSQL refuses to run as root, so under
root the cluster belongs to, and the server runs as, user ``nobody``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def postgres_bin() -> Path | None:
    """The directory of ``initdb`` and ``postgres``, or None if PostgreSQL is not installed."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0)
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def temporary_postgres(*, durable: bool = False) -> Iterator[str]:
    """Start a fresh cluster and yield its DSN (database ``postgres``, user ``twinloop``,
    trust authentication on 127.0.0.1); stop and delete it afterwards. ``durable``
    keeps fsync on (the benchmark); tests switch it off."""
    import psycopg

    binaries = postgres_bin()
    if binaries is None:
        raise FileNotFoundError("no PostgreSQL binaries (initdb) on PATH or in "
                                "/usr/lib/postgresql/*/bin")
    root = Path(tempfile.mkdtemp(prefix="twinloop-pg-"))
    owner: dict = {}
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(root, nobody.pw_uid, nobody.pw_gid)
        owner = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    data, port = root / "data", _free_port()
    server = None
    try:
        subprocess.run([binaries / "initdb", "-D", data, "-U", "twinloop", "--auth=trust",
                        "-E", "UTF8", "--no-sync"], check=True, capture_output=True,
                       timeout=120, **owner)
        options = [] if durable else ["-c", "fsync=off", "-c", "synchronous_commit=off",
                                      "-c", "full_page_writes=off"]
        with open(root / "server.log", "wb") as log:  # the server keeps its own descriptor
            server = subprocess.Popen([binaries / "postgres", "-D", data, "-p", str(port),
                                       "-k", root, "-c", "listen_addresses=127.0.0.1",
                                       *options], stdout=log, stderr=subprocess.STDOUT, **owner)
        dsn = f"host=127.0.0.1 port={port} dbname=postgres user=twinloop"
        deadline = time.monotonic() + 60
        while True:
            try:
                psycopg.connect(dsn, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("postgres did not start: "
                                       + (root / "server.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        yield dsn
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(root, ignore_errors=True)
