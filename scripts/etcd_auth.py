"""Turn etcd auth on: a user and role per service, and root.

    python scripts/etcd_auth.py <run-dir> [endpoint]     # waits for etcd, then bootstraps
    python scripts/etcd_auth.py wait <run-dir>           # returns once auth is on

Passwords are created once under <run-dir>/etcd-users/<name>.password (0600) and reused.
Each service's role is its own declaration (`ROLE` in its settings module, see
shared.security.roles): its registry keys, its configuration, and the prefixes it owns.
Once auth is on, <run-dir>/etcd-users/.auth-on marks it: a service's start wrapper
(scripts/credentials) starts the service only then, so that it can log in.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT_DIR))

from shared.security.etcd_auth import EtcdRole  # noqa: E402
from shared.security.provision import etcd_auth, etcd_roles, wait_for_etcd_auth  # noqa: E402

ROLES = etcd_roles(ROOT_DIR)


async def run(run_dir: Path, endpoint: str, roles: tuple[EtcdRole, ...] = ROLES) -> None:
    await etcd_auth(run_dir, endpoint, roles)


if __name__ == "__main__":
    if sys.argv[1:2] == ["wait"]:
        wait_for_etcd_auth(Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".run"))
    else:
        root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".run")
        asyncio.run(run(root, sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:2379"))
