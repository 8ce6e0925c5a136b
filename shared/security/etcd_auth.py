"""etcd with auth on: a user and a role per service, limited to its own prefixes.

A service may write its own registry keys (`<registry>/<name>/`), read the whole registry
(to find the others) and read its own configuration key; roles for more (config_service
writes all configuration, auth_service its revocations) add grants. The root user (role
`root`) is the operator's. `bootstrap` is idempotent: it runs on every `make run`, first
before auth is on and then as root, and brings users, passwords and grants in line.

aetcd 1.0.0 takes `username`/`password` and authenticates once on connect, sending the
token with every call; it does not authenticate again, so a token that expired (etcd's
`--auth-token-ttl`, 300 s by default, counted from the last use) fails until reconnect.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aetcd
import grpc
from aetcd import rpc

from shared.registry.node import service_prefix
from shared.security.files import write_file_once

log = logging.getLogger(__name__)

ROOT = "root"


@dataclass(frozen=True)
class Grant:
    key: str
    prefix: bool = True
    write: bool = False


@dataclass(frozen=True)
class EtcdRole:
    name: str
    grants: tuple[Grant, ...]


def service_role(
    name: str,
    *,
    registry_prefix: str = "/micro/registry",
    config_prefix: str = "/micro/config/",
    extra: Iterable[Grant] = (),
) -> EtcdRole:
    return EtcdRole(
        name,
        (
            Grant(service_prefix(registry_prefix, name), write=True),
            Grant(f"{registry_prefix.rstrip('/')}/"),
            Grant(f"{config_prefix}{name}", prefix=False),
            *extra,
        ),
    )


def prefix_end(key: bytes) -> bytes:
    """The first key after every key that starts with `key` (etcd's range_end)."""
    trimmed = key.rstrip(b"\xff")
    if not trimmed:
        return b"\0"
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def ensure_password(directory: Path, name: str) -> str:
    """`name`'s etcd password, from `directory/<name>.password` (0600), created once."""
    path = directory / f"{name}.password"
    write_file_once(path, secrets.token_urlsafe(32).encode())
    return path.read_text().strip()


async def _already(call: object, exists: str) -> None:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        if exists not in (error.details() or ""):
            raise


async def bootstrap(
    client: aetcd.Client, users: Mapping[str, tuple[EtcdRole, str]], root_password: str
) -> None:
    """Create or update `users` (name → role, password) and root, then turn auth on.

    `client` is connected as root once auth is on, without credentials before."""
    await client.connect()
    auth = rpc.AuthStub(client.channel)
    meta = client.metadata
    accounts = {ROOT: (EtcdRole(ROOT, ()), root_password), **users}
    for name, (role, password) in accounts.items():
        await _already(
            auth.UserAdd(rpc.AuthUserAddRequest(name=name, password=password), metadata=meta),
            "user name already exists",
        )
        if name != ROOT:  # changing root's would end this session (etcd drops its tokens)
            await auth.UserChangePassword(
                rpc.AuthUserChangePasswordRequest(name=name, password=password), metadata=meta
            )
        await _already(
            auth.RoleAdd(rpc.AuthRoleAddRequest(name=role.name), metadata=meta),
            "role name already exists",
        )
        for grant in role.grants:
            key = grant.key.encode()
            kind = rpc.Permission.READWRITE if grant.write else rpc.Permission.READ
            permission = rpc.Permission(
                permType=kind, key=key, range_end=prefix_end(key) if grant.prefix else b""
            )
            await auth.RoleGrantPermission(
                rpc.AuthRoleGrantPermissionRequest(name=role.name, perm=permission), metadata=meta
            )
        await auth.UserGrantRole(
            rpc.AuthUserGrantRoleRequest(user=name, role=role.name), metadata=meta
        )
    await auth.AuthEnable(rpc.AuthEnableRequest(), metadata=meta)
    log.info("etcd auth on with users %s", ", ".join(sorted(accounts)))
