"""Turn etcd auth on for `make run`: a user and role per service, and root.

    python scripts/etcd_auth.py <run-dir> [endpoint]

Passwords are created once under <run-dir>/etcd-users/<name>.password (0600) and reused.
The services and their extra grants are declared here for now; the prefixes are the
settings' defaults (auth_service.revocation_prefix, config_service.config_prefix).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aetcd
import aetcd.exceptions

from shared.registry.etcd import parse_endpoint
from shared.security.etcd_auth import (
    ROOT,
    EtcdRole,
    Grant,
    bootstrap,
    ensure_password,
    service_role,
)

ROLES = (
    service_role("user_api"),
    service_role("user_service"),
    service_role("auth_service", extra=[Grant("/micro/auth/revoked/", write=True)]),
    service_role("config_service", extra=[Grant("/micro/config/", write=True)]),
)


async def run(run_dir: Path, endpoint: str, roles: tuple[EtcdRole, ...] = ROLES) -> None:
    secrets_dir = run_dir / "etcd-users"
    users = {role.name: (role, ensure_password(secrets_dir, role.name)) for role in roles}
    root_password = ensure_password(secrets_dir, ROOT)
    host, port = parse_endpoint(endpoint)
    try:
        async with aetcd.Client(host, port, username=ROOT, password=root_password) as client:
            await bootstrap(client, users, root_password)
    except aetcd.exceptions.PreconditionFailedError:
        # "authentication is not enabled": the first run.
        async with aetcd.Client(host, port) as client:
            await bootstrap(client, users, root_password)


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".run")
    asyncio.run(run(root, sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:2379"))
