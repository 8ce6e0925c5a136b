"""One-shot set-up of a deployment's secrets, for `make run` and compose's `secrets` step.

    python -m shared.security.provision certs <dir> [--trust-domain D] [--operator NAME]
    python -m shared.security.provision nats <dir> [--port P] [--host H] [--store-dir S]
    python -m shared.security.provision etcd <dir> <endpoint>
    python -m shared.security.provision wait-etcd <dir>
    python -m shared.security.provision files <dir> [--host H] [--store-dir S]

Services are the packages of the current directory (shared.security.roles), so a new
service gets its certificate, NATS user and etcd user from the start. Everything is
created once and reused: running a step again changes nothing but etcd's grants.

- certs: a development CA under <dir>/ca and each service's certificate under
  <dir>/service/<name> (and an operator's under <dir>/operator/<name>): TLS_DIR points there.
- nats: seeds under <dir>/nats-users/<name>.nk, an operator's (read only: `micro streams`,
  `micro events`) under <dir>/nats-operators/<name>.nk (`operator` unless --operator names
  them), and <dir>/nats.conf admitting them.
- etcd: passwords under <dir>/etcd-users/<name>.password, auth turned on (waiting for
  etcd to answer), then <dir>/etcd-users/.auth-on; `wait-etcd` returns once that exists.
- files: certs, nats, and a database password in <dir>/database.password (compose's
  one-shot `secrets` step: what exists before anything starts).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import aetcd
import aetcd.exceptions

from shared.registry.etcd_client import parse_endpoints
from shared.security.etcd_auth import ROOT, EtcdRole, bootstrap, ensure_password
from shared.security.identity import OPERATOR, SERVICE, Identity
from shared.security.nats_auth import generate
from shared.security.pki import ensure_identity
from shared.security.roles import discover

WAIT_S = 60.0
AUTH_ON = ".auth-on"
_UNREACHABLE = (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.ConnectionTimeoutError)


def certificates(
    directory: Path, trust_domain: str, services: Sequence[str], operators: Sequence[str] = ()
) -> None:
    for kind, names in ((SERVICE, services), (OPERATOR, operators)):
        for name in names:
            ensure_identity(directory, Identity(trust_domain, kind, name))


NATS_OPERATORS = ("operator",)


def nats_config(
    directory: Path,
    port: int = 4222,
    *,
    host: str = "127.0.0.1",
    store_dir: Path | None = None,
    root: Path | None = None,
    operators: Sequence[str] = NATS_OPERATORS,
) -> Path:
    roles = [role.nats(name) for name, role in discover(root or Path.cwd()).items()]
    config = generate(
        roles,
        directory / "nats-users",
        operators=operators,
        operator_dir=directory / "nats-operators",
        host=host,
        port=port,
        store_dir=store_dir or directory / "nats",
    )
    path = directory / "nats.conf"
    path.write_text(config)
    path.chmod(0o600)
    return path


def etcd_roles(root: Path | None = None) -> tuple[EtcdRole, ...]:
    return tuple(role.etcd(name) for name, role in discover(root or Path.cwd()).items())


async def etcd_auth(directory: Path, endpoint: str, roles: Sequence[EtcdRole]) -> None:
    secrets_dir = directory / "etcd-users"
    users = {role.name: (role, ensure_password(secrets_dir, role.name)) for role in roles}
    root_password = ensure_password(secrets_dir, ROOT)
    host, port = parse_endpoints(endpoint)[0]
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            await _bootstrap(host, port, users, root_password)
            break
        except _UNREACHABLE:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)  # etcd is starting beside us (make run, compose)
    (secrets_dir / AUTH_ON).touch()


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


def wait_for_etcd_auth(directory: Path, timeout_s: float = WAIT_S) -> None:
    marker = directory / "etcd-users" / AUTH_ON
    deadline = time.monotonic() + timeout_s
    while not marker.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"etcd auth is not on after {timeout_s:.0f} s ({marker} missing)")
        time.sleep(0.1)  # a one-shot CLI step before the service starts: no loop to block


def database_password(directory: Path) -> Path:
    ensure_password(directory, "database")
    return directory / "database.password"


def _nats(args: argparse.Namespace) -> Path:
    return nats_config(
        args.dir,
        args.port,
        host=args.host,
        store_dir=args.store_dir,
        operators=args.operator or NATS_OPERATORS,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.security.provision")
    steps = parser.add_subparsers(dest="step", required=True)
    certs = steps.add_parser("certs")
    certs.add_argument("dir", type=Path)
    certs.add_argument("--trust-domain", default="micro.local")
    certs.add_argument("--operator", action="append", default=[])
    nats = steps.add_parser("nats")
    nats.add_argument("dir", type=Path)
    nats.add_argument("--port", type=int, default=4222)
    nats.add_argument("--host", default="127.0.0.1")
    nats.add_argument("--store-dir", type=Path)
    nats.add_argument("--operator", action="append", default=[])
    etcd = steps.add_parser("etcd")
    etcd.add_argument("dir", type=Path)
    etcd.add_argument("endpoint")
    files = steps.add_parser("files")
    files.add_argument("dir", type=Path)
    files.add_argument("--trust-domain", default="micro.local")
    files.add_argument("--port", type=int, default=4222)
    files.add_argument("--host", default="127.0.0.1")
    files.add_argument("--store-dir", type=Path)
    files.add_argument("--operator", action="append", default=[])
    wait = steps.add_parser("wait-etcd")
    wait.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    if args.step == "certs":
        services = list(discover(Path.cwd()))
        certificates(args.dir, args.trust_domain, services, args.operator)
    elif args.step == "nats":
        print(_nats(args))
    elif args.step == "files":
        certificates(args.dir / "tls", args.trust_domain, list(discover(Path.cwd())))
        _nats(args)
        database_password(args.dir)
    elif args.step == "etcd":
        asyncio.run(etcd_auth(args.dir, args.endpoint, etcd_roles()))
    else:
        wait_for_etcd_auth(args.dir)


if __name__ == "__main__":
    main()
