"""Ports for the processes a test starts: free, and safe from the kernel's own choices."""

from __future__ import annotations

import random
import socket

_LOWEST = 10_000
_handed_out: set[int] = set()


def free_port() -> int:
    """A port free now, for a process about to be started with it.

    Chosen below the kernel's ephemeral range: the servers a test starts with port 0 (the
    services' gRPC ports) and every outgoing connection take theirs from that range, and
    a port handed out here is not held until its process binds it. Taken from the range
    itself, it was once given to a service binding port 0 in between (the HTTP front it was
    meant for then could not listen). Never the same port twice in one test run.
    """
    candidates = range(_LOWEST, _ephemeral_low())
    for _ in range(100):
        port = random.choice(candidates) if candidates else _any_port()
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port found below the ephemeral range")


def _ephemeral_low() -> int:
    """The lowest port of the kernel's ephemeral range."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _any_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
