"""Free loopback ports for the benchmarks' servers (HTTP, OPC UA, MQTT brokers, PLCs): the
tests' own (tests.ports), so that there is one implementation."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.ports

from tests.ports import PortsUnavailable, consecutive_free_ports, free_port  # noqa: E402

__all__ = ["PortsUnavailable", "consecutive_free_ports", "free_port"]
