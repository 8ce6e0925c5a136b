#!/usr/bin/env python3
"""`make run`'s pre-flight: every port it will listen on is free, before anything starts.

Without it, a port already taken (a system NATS on 4222, another user_api on 8080) shows as
nats-server's `address already in use`, after which honcho stops every process.

- A port the user talks to (HTTP_PORT) or one set on the command line or in the environment
  (`make run NATS_PORT=4222`) that is taken: one line naming the port, its setting, what
  holds it, and the command to use instead; exit 1. Nothing is started.
- A default port that only `make run`'s own processes use (etcd, NATS, the services' gRPC,
  which find each other through the registry) that is taken: another free port is used,
  and one line says so.

Prints the ports to use as shell `export` lines for the Makefile to eval; messages go to
stderr. Linux names the holder from /proc; elsewhere it is "(holder unknown)".
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"  # where every process of `make run` listens
SEARCH_FROM = 10000  # a moved port is looked for at default + 10000 first (4222 → 14222)
LISTEN = "0A"  # TCP state in /proc/net/tcp*


@dataclass(frozen=True)
class Port:
    setting: str  # the make variable
    default: int
    public: bool  # the user talks to it: never moved silently
    # The variable the Procfile reads, when it is not the setting itself.
    procfile_name: str | None = None


PORTS = (
    Port("HTTP_PORT", 8080, public=True, procfile_name="USER_API_HTTP_PORT"),
    Port("ETCD_PORT", 2379, public=False),
    Port("ETCD_PEER_PORT", 2380, public=False),
    Port("NATS_PORT", 4222, public=False),
    Port("CONFIG_GRPC_PORT", 50051, public=False),
    Port("AUTH_GRPC_PORT", 50052, public=False),
    Port("USER_GRPC_PORT", 50053, public=False),
)


class PortUnusableError(Exception):
    pass


def is_free(port: int) -> bool:
    """Whether a server could listen on HOST:port now (SO_REUSEADDR, as servers bind:
    a connection in TIME_WAIT does not count as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == LISTEN:
                inodes.add(fields[9])
    return inodes


def holder(port: int) -> str | None:
    """`name (pid N)` of the process listening on the port, when this system tells."""
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not inodes:
        return None
    for process in Path("/proc").iterdir():
        if not process.name.isdigit():
            continue
        try:
            for fd in (process / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    name = (process / "comm").read_text().strip()
                    return f"{name} (pid {process.name})"
        except OSError:  # gone meanwhile, or another user's
            continue
    return None


def in_use(port: int) -> str:
    found = holder(port)
    return f"in use by {found}" if found else "in use (holder unknown)"


def free_port_near(default: int, avoid: Iterable[int]) -> int:
    """A free port, default + 10000 onwards when possible (easy to tell apart), else any."""
    avoided = set(avoid)
    start = default + SEARCH_FROM if default + SEARCH_FROM < 65000 else 20000
    for port in range(start, start + 200):
        if port not in avoided and is_free(port):
            return port
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((HOST, 0))
            port = int(probe.getsockname()[1])
        if port not in avoided:
            return port


def explicit_ports(env: Mapping[str, str]) -> dict[str, int]:
    """The settings given on the command line or in the environment."""
    given = {}
    for port in PORTS:
        raw = env.get(port.setting, "").strip()
        if raw:
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise PortUnusableError(f"{port.setting}={raw} is not a port number (1-65535)")
            given[port.setting] = int(raw)
    return given


def resolve(env: Mapping[str, str], notes: list[str]) -> dict[str, int]:
    """The port of every setting; raises PortUnusableError with the one line to show."""
    given = explicit_ports(env)
    by_port: dict[int, str] = {}
    for setting, number in given.items():
        if number in by_port:
            raise PortUnusableError(
                f"port {number} is set for both {by_port[number]} and {setting}"
            )
        by_port[number] = setting
    defaults = {port.default for port in PORTS}
    chosen: dict[str, int] = {}
    blocked: list[tuple[Port, int, str]] = []
    for port in PORTS:
        number = given.get(port.setting, port.default)
        free = is_free(number) and (port.setting in given or number not in given.values())
        if free:
            chosen[port.setting] = number
        elif port.setting in given or port.public:
            blocked.append((port, number, in_use(number)))
    avoid = set(given.values()) | defaults | set(chosen.values())
    if blocked:
        instead = []
        for port, number, _ in blocked:
            replacement = free_port_near(number, avoid)
            avoid.add(replacement)
            instead.append(f"{port.setting}={replacement}")
        port, number, why = blocked[0]
        raise PortUnusableError(
            f"port {number} ({port.setting}) is {why}; try: make run {' '.join(instead)}"
        )
    for port in PORTS:
        if port.setting not in chosen:
            replacement = free_port_near(port.default, avoid)
            avoid.add(replacement)
            chosen[port.setting] = replacement
            notes.append(
                f"{port.setting}: {port.default} is {in_use(port.default)}, "
                f"using {replacement} (set {port.setting} to choose)"
            )
    return chosen


def exports(chosen: Mapping[str, int], env: Mapping[str, str]) -> list[str]:
    """Shell lines that give `make run`'s processes their ports."""
    lines = []
    for port in PORTS:
        name = port.procfile_name or port.setting
        lines.append(f"export {name}={chosen[port.setting]}")
        if port.procfile_name:
            # Only user_api listens on it: a generated HTTP service keeps its own default.
            lines.append(f"unset {port.setting}")
    # The services' way to the servers, unless the user points them elsewhere.
    if not env.get("ETCD_ENDPOINT"):
        lines.append(f"export ETCD_ENDPOINT={HOST}:{chosen['ETCD_PORT']}")
    if not env.get("NATS_URL"):
        url = f"nats://{HOST}:{chosen['NATS_PORT']}"
        lines.append(f"export NATS_URL={shlex.quote(url)}")
    return lines


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    notes: list[str] = []
    try:
        chosen = resolve(env, notes)
    except PortUnusableError as error:
        print(error, file=sys.stderr)
        return 1
    for note in notes:
        print(note, file=sys.stderr)
    print("\n".join(exports(chosen, env)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
