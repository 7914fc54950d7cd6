"""Free loopback TCP ports for the servers tests and benchmarks start (HTTP, brokers, OPC
UA, one Modbus PLC per asset): picked by the kernel, never fixed, since other engineers'
runs share the machine. Free when picked: another process may still take one before the
caller binds it.

The one implementation, for the tests and (through bench/ports.py) the benchmarks: the
benchmarks may depend on the tests' harness, as they do on tests.pg_server, but not the
other way round (a test stays valid when a benchmark is moved or removed)."""

from __future__ import annotations

import socket

PORT_LIMIT = 65535
"""The largest TCP port."""


class PortsUnavailable(OSError):
    """No run of consecutive free ports was found."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the kernel's pick of an ephemeral port)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def consecutive_free_ports(count: int, host: str = "127.0.0.1", attempts: int = 100) -> int:
    """The first of ``count`` consecutive TCP ports free on ``host`` now, starting from a
    port the kernel picks (so concurrent runs start apart); PortsUnavailable after
    ``attempts`` picks that have no such run."""
    if count < 1:
        raise ValueError(f"count of consecutive ports must be at least 1, got {count}")
    for _ in range(attempts):
        first = free_port(host)
        if first + count - 1 <= PORT_LIMIT and all(
                _port_free(host, port) for port in range(first + 1, first + count)):
            return first
    raise PortsUnavailable(f"no {count} consecutive free TCP ports on {host} "
                           f"in {attempts} attempts")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
