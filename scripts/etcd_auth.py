"""Turn etcd auth on: a user and role per service, and root.

    python scripts/etcd_auth.py <run-dir> [endpoint]     # waits for etcd, then bootstraps
    python scripts/etcd_auth.py wait <run-dir>           # waits until auth is on

Passwords are created once under <run-dir>/etcd-users/<name>.password (0600) and reused.
Each service's role is its own declaration (`ROLE` in its settings module, see
shared.security.roles): its registry keys, its configuration, and the prefixes it owns.
Once auth is on, <run-dir>/etcd-users/.auth-on marks it: a service's start wrapper
(`wait`) starts the service only then, so that it can log in.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import aetcd
import aetcd.exceptions

ROOT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT_DIR))

from shared.registry.etcd import parse_endpoint  # noqa: E402
from shared.security.etcd_auth import ROOT, EtcdRole, bootstrap, ensure_password  # noqa: E402
from shared.security.roles import discover  # noqa: E402

ROLES = tuple(role.etcd(name) for name, role in discover(ROOT_DIR).items())
WAIT_S = 60.0
MARKER = ".auth-on"
_UNREACHABLE = (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.ConnectionTimeoutError)


async def run(run_dir: Path, endpoint: str, roles: tuple[EtcdRole, ...] = ROLES) -> None:
    secrets_dir = run_dir / "etcd-users"
    users = {role.name: (role, ensure_password(secrets_dir, role.name)) for role in roles}
    root_password = ensure_password(secrets_dir, ROOT)
    host, port = parse_endpoint(endpoint)
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            await _bootstrap(host, port, users, root_password)
            break
        except _UNREACHABLE:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)  # etcd is starting beside us (make run, compose)
    (secrets_dir / MARKER).touch()


async def _bootstrap(
    host: str, port: int, users: dict[str, tuple[EtcdRole, str]], root_password: str
) -> None:
    try:
        async with aetcd.Client(host, port, username=ROOT, password=root_password) as client:
            await bootstrap(client, users, root_password)
    except aetcd.exceptions.PreconditionFailedError:
        # "authentication is not enabled": the first run.
        async with aetcd.Client(host, port) as client:
            await bootstrap(client, users, root_password)


def wait(run_dir: Path) -> None:
    marker = run_dir / "etcd-users" / MARKER
    deadline = time.monotonic() + WAIT_S
    while not marker.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"etcd auth is not on after {WAIT_S:.0f} s ({marker} missing)")
        time.sleep(0.1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["wait"]:
        wait(Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".run"))
    else:
        root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".run")
        asyncio.run(run(root, sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:2379"))
