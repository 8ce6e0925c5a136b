"""NATS users for services: an nkey per service, allowed what the service does and no more.

An nkey is an Ed25519 key pair: the server's configuration holds only public keys, each
service reads its seed from a file (0600, created once), and nats-py signs the server's
challenge with it (`nats.connect(nkeys_seed=path)`). Everything a role does not list is
refused by the server:

- publish: its events' subjects, and the dead-letter subjects of the events it consumes;
- JetStream: creating and updating its streams (those of its events, and the dead-letter
  stream: every service sets them up idempotently, see shared.broker.streams), and, for
  each event it consumes, creating its own durable consumer, pulling from it and acking
  what it pulled. No deleting or purging a stream, no reading a stream through another
  consumer or by sequence, no consumer on anyone else's events;
- subscribe: the events it listens to on core NATS, and its own inbox (`_INBOX_<name>.>`,
  shared.broker.subjects), where its requests' replies, its publish acks and its pulled
  events arrive. A consumed event comes through the pull only, never as a live copy.

An operator (a person, with `micro streams` and `micro events`) gets a user of their own
that looks and changes nothing: JetStream's account, stream and consumer information, and
stored messages read one at a time by sequence (`$JS.API.STREAM.MSG.GET`), with replies on
the operators' inbox, apart from every service's. No publishing, no consumer (a pull from a
service's durable consumer would take its events), no deleting or purging.

The JetStream API subjects are those nats-py sends to a server of 2.9 or newer
(`$JS.API.CONSUMER.CREATE.<stream>.<consumer>.<filter>` for a named, filtered consumer).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.broker.streams import dlq_subject
from shared.broker.subjects import consumer_name, inbox_prefix
from shared.security.files import write_file_once

JS_API = "$JS.API"


@dataclass(frozen=True)
class NatsRole:
    name: str
    # Subjects it publishes.
    publishes: tuple[str, ...] = ()
    # (stream, subject) pairs it pulls through a durable consumer of its own.
    consumes: tuple[tuple[str, str], ...] = ()
    # Subjects each replica hears on core NATS as they are published.
    listens: tuple[str, ...] = ()
    # Streams it creates or brings to its configuration.
    streams: tuple[str, ...] = ()


def seed_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.nk"


# Operators' reply inbox: upper case keeps it apart from every service's (snake_case). They
# share it, as they share what they may read.
OPERATOR_INBOX = inbox_prefix("OPERATOR")


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
    publish = [*role.publishes, *(dlq_subject(subject) for _, subject in role.consumes)]
    for stream in role.streams:
        publish += [f"{JS_API}.STREAM.CREATE.{stream}", f"{JS_API}.STREAM.UPDATE.{stream}"]
    for stream, subject in role.consumes:
        consumer = consumer_name(role.name, subject)
        publish += [
            f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}.{subject}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}",
            f"$JS.ACK.{stream}.{consumer}.>",
        ]
    return {
        "publish": {"allow": publish},
        "subscribe": {"allow": [*role.listens, f"{inbox_prefix(role.name)}.>"]},
    }


def inspector_permissions() -> dict[str, Any]:
    """An operator's: read JetStream's state and stored messages, change nothing."""
    return {
        "publish": {
            "allow": [
                f"{JS_API}.INFO",
                f"{JS_API}.STREAM.NAMES",
                f"{JS_API}.STREAM.LIST",
                f"{JS_API}.STREAM.INFO.*",
                f"{JS_API}.STREAM.MSG.GET.*",
                f"{JS_API}.CONSUMER.NAMES.*",
                f"{JS_API}.CONSUMER.LIST.*",
                f"{JS_API}.CONSUMER.INFO.*.*",
            ]
        },
        "subscribe": {"allow": [f"{OPERATOR_INBOX}.>"]},
    }


def server_config(
    users: Mapping[str, tuple[str, NatsRole]],
    *,
    operator_keys: Iterable[str] = (),
    host: str = "127.0.0.1",
    port: int = 4222,
    store_dir: Path | None = None,
) -> str:
    """A nats-server configuration (JSON is valid NATS configuration) with one user per
    public key (`operator_keys`: the operators', read only); JetStream on when `store_dir`
    is given."""
    config: dict[str, Any] = {
        "host": host,
        "port": port,
        "authorization": {
            "users": [
                *(
                    {"nkey": public, "permissions": permissions(role)}
                    for public, role in users.values()
                ),
                *(
                    {"nkey": public, "permissions": inspector_permissions()}
                    for public in operator_keys
                ),
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
    operators: Iterable[str] = (),
    operator_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 4222,
    store_dir: Path | None = None,
) -> str:
    """Seeds created once under `seed_dir` (operators' under `operator_dir`), and the
    server configuration that admits them."""
    users = {role.name: (ensure_nkey(seed_dir, role.name), role) for role in roles}
    people = [ensure_nkey(operator_dir or seed_dir, name) for name in operators]
    return server_config(users, operator_keys=people, host=host, port=port, store_dir=store_dir)
