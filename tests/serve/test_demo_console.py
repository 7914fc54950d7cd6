"""What `twinloop demo` shows on its console, and where its actors' errors go.

The console carries TwinLoop's own lines only (no Ray start-up, Serve or C++ core lines),
the banner names a log file, errors of the actors (a PLC refusing a write, the HTTP
replica refusing a broken token file) reach that file, and SIGTERM stops the demo with
no traceback and exit status 0 (SIGINT: tests/serve/test_demo_process.py)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from pymodbus.client import ModbusTcpClient

from tests.conftest import free_port
from tests.ports import consecutive_free_ports

SITE = Path(__file__).resolve().parents[1] / "sites" / "two_tanks.toml"

RAY_NOISE = ("core_worker", "(raylet)", "ray.serve", "Started Serve", "Token authentication",
             "object store", "graceful_shutdown", "Traceback")


def test_the_console_shows_twinloops_lines_and_actor_errors_reach_the_printed_log_file(
        tmp_path):
    port, modbus_port = free_port(), consecutive_free_ports(2)
    twinloop = Path(sys.executable).with_name("twinloop")
    command = [str(twinloop) if twinloop.exists() else shutil.which("twinloop"),
               "demo", "--site", str(SITE), "--speed", "600", "--duration", "300",
               "--port", str(port), "--modbus-port", str(modbus_port),
               "--opcua-port", str(free_port())]
    token = secrets.token_urlsafe(32)
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "TWINLOOP_ADMIN_TOKEN": token})
    try:
        banner = []
        for line in process.stdout:
            banner.append(line)
            if "Stopping in" in line or process.poll() is not None:
                break
        text = "".join(banner)
        printed = re.search(r"log file +(\S+)", text)
        assert printed, f"the demo printed no log file (exit status {process.poll()}):\n{text}"
        log_file = Path(printed.group(1))
        assert log_file == tmp_path / "var" / "two-tanks.log"

        with ModbusTcpClient("127.0.0.1", port=modbus_port) as client:  # tank-01's PLC
            refused = client.write_registers(0, [0x7FC0, 0x0000], device_id=1)  # NaN
        assert refused.isError() and refused.exception_code == 3
        (tmp_path / "var" / "tokens.toml").write_text("[[tokens]]\nuser = 1\n")
        reply = httpx.get(f"http://127.0.0.1:{port}/assets",
                          headers={"Authorization": f"Bearer {token}"}, timeout=30.0)
        assert reply.status_code == 200  # the admin token does not live in the file

        process.send_signal(signal.SIGTERM)  # kill, docker stop, systemd
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    console = text + rest
    assert process.returncode == 0, console
    assert rest.strip().endswith("twinloop: stopped"), console
    noise = [line for line in console.splitlines() if any(n in line for n in RAY_NOISE)]
    assert not noise, console
    assert all(line.startswith(("twinloop:", "  ", "Stopping in")) for line in
               console.splitlines()), console
    logged = log_file.read_text()
    assert "PLC tank-01: write refused" in logged
    assert "token file refused" in logged
