"""NATS users for services: an nkey per service and permissions on its own subjects.

An nkey is an Ed25519 key pair: the server's configuration holds only public keys, each
service reads its seed from a file (0600, created once), and nats-py signs the server's
challenge with it (`nats.connect(nkeys_seed=path)`). A role lists the subjects a service
publishes (its events) and those it consumes; everything else is refused by the server.

Every role also gets what the JetStream client needs: the API (`$JS.API.>`: streams and
consumers are created idempotently by each service), acks (`$JS.ACK.>`), replies on
`_INBOX.>`, and the dead-letter subjects of what it consumes. `$JS.API.>` is broad (a
service could delete a stream); narrowing it to the stream and consumer names a service
uses is the next step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.broker.streams import DLQ_PREFIX
from shared.security.files import write_file_once

JETSTREAM_PUBLISH = ("$JS.API.>", "$JS.ACK.>")
REPLIES = ("_INBOX.>",)


@dataclass(frozen=True)
class NatsRole:
    name: str
    publishes: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    extra_publish: tuple[str, ...] = ()


def seed_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.nk"


def ensure_nkey(directory: Path, name: str) -> str:
    """The public key of `name`'s user nkey, whose seed is created once in `directory`."""
    # Only provisioning makes keys: the services, which import their roles, never load nkeys
    # (and PyNaCl under it, about 1 MB each). nats-py loads it itself when a seed is set.
    import nkeys  # type: ignore[import-untyped]

    path = seed_path(directory, name)
    write_file_once(path, nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER) + b"\n")
    public: bytes = nkeys.from_seed(path.read_bytes().strip()).public_key
    return public.decode()


def permissions(role: NatsRole) -> dict[str, Any]:
    publish = [*role.publishes, *(DLQ_PREFIX + s for s in role.consumes), *role.extra_publish]
    return {
        "publish": {"allow": [*publish, *JETSTREAM_PUBLISH]},
        "subscribe": {"allow": [*role.consumes, *REPLIES]},
    }


def server_config(
    users: Mapping[str, tuple[str, NatsRole]],
    *,
    host: str = "127.0.0.1",
    port: int = 4222,
    store_dir: Path | None = None,
) -> str:
    """A nats-server configuration (JSON is valid NATS configuration) with one user per
    public key; JetStream on when `store_dir` is given."""
    config: dict[str, Any] = {
        "host": host,
        "port": port,
        "authorization": {
            "users": [
                {"nkey": public, "permissions": permissions(role)}
                for public, role in users.values()
            ]
        },
    }
    if store_dir is not None:
        config["jetstream"] = {"store_dir": str(store_dir)}
    return json.dumps(config, indent=2) + "\n"


def generate(
    roles: Iterable[NatsRole],
    seed_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 4222,
    store_dir: Path | None = None,
) -> str:
    """Seeds created once under `seed_dir`, and the server configuration that admits them."""
    users = {role.name: (ensure_nkey(seed_dir, role.name), role) for role in roles}
    return server_config(users, host=host, port=port, store_dir=store_dir)
