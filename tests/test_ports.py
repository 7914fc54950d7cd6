"""Free ports (tests.ports): a run of consecutive ports that are free, or an error that
says how many could not be found."""

from __future__ import annotations

import socket

import pytest

from tests.ports import PortsUnavailable, consecutive_free_ports


def test_every_port_of_the_run_can_be_bound():
    first = consecutive_free_ports(5)
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", first))
        b.bind(("127.0.0.1", first + 4))


def test_a_run_longer_than_the_port_space_is_refused_naming_its_length():
    with pytest.raises(PortsUnavailable, match="no 70000 consecutive free TCP ports"):
        consecutive_free_ports(70000, attempts=3)
    with pytest.raises(ValueError, match="at least 1"):
        consecutive_free_ports(0)
