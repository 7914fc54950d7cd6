"""Free loopback ports for the benchmarks' servers (HTTP, OPC UA, MQTT brokers)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick of an ephemeral port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
