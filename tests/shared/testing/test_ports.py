"""Ports for the processes a test starts."""

from __future__ import annotations

import socket

from shared.testing import free_port


def _ephemeral_low() -> int:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
        return int(ports.read().split()[0])


def test_ports_are_free_distinct_and_never_what_a_port_0_bind_gets() -> None:
    ports = [free_port() for _ in range(50)]
    with socket.socket() as server:  # a service asking the kernel for any port
        server.bind(("127.0.0.1", 0))
        kernels = server.getsockname()[1]

    assert len(set(ports)) == 50
    assert all(port < _ephemeral_low() <= kernels for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free: nothing is holding it
