"""What JetStream holds, for an operator: `micro streams` and `micro events`.

Read under the operator's NATS user (shared.security.nats_auth.inspector_permissions),
which may look and change nothing: stream and consumer information, and stored messages
fetched one by one by sequence. No consumer is created, so reading never takes an event
from a service, and a stream's retention is what it was.

An event's payload is decoded with the project's own contracts: every message that declares
`(micro.v1.event)` under `shared/proto` (a dead letter, `dlq.<subject>`, with its
original's type), so an operator reads JSON, not bytes.
"""

from __future__ import annotations

import base64
import functools
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
from google.protobuf import json_format, message_factory
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client
from nats.js.api import RawStreamMsg

from shared.broker.streams import DLQ_PREFIX
from shared.broker.subjects import covers
from shared.proto.micro.v1 import options_pb2
from shared.reflection import local_contracts
from shared.security.nats_auth import OPERATOR_INBOX

# What `make run` wrote (shared.security.provision nats), used when it exists: the
# operator's seed, and the server's configuration, which says where it listens.
DEV_SEED = Path(".run/nats-operators/operator.nk")
DEV_CONFIG = Path(".run/nats.conf")
DEFAULT_URL = "nats://127.0.0.1:4222"


@dataclass(frozen=True)
class NatsTarget:
    url: str
    seed: Path | None  # None: a server without users (anonymous)
    timeout_s: float

    @classmethod
    def of(cls, url: str | None, seed: Path | None, timeout_s: float) -> NatsTarget:
        """Unset, the URL and the seed are those of a `make run` in this folder, if any."""
        return cls(
            url or _dev_url() or DEFAULT_URL,
            seed or (DEV_SEED if DEV_SEED.is_file() else None),
            timeout_s,
        )


def _dev_url() -> str | None:
    try:
        config = json.loads(DEV_CONFIG.read_text())  # JSON is valid NATS configuration
        return f"nats://{config['host']}:{int(config['port'])}"
    except (OSError, ValueError, KeyError, TypeError):
        return None


@asynccontextmanager
async def connected(target: NatsTarget) -> AsyncIterator[Client]:
    connection = await nats.connect(
        target.url,
        nkeys_seed=str(target.seed) if target.seed else None,
        inbox_prefix=OPERATOR_INBOX if target.seed else "_INBOX",
        connect_timeout=target.timeout_s,
        # One try per server of the URL and one more, then NoServersError (0 would retry
        # for ever); each failure is the command's error, not a logged traceback.
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.2,
        error_cb=_reported_by_the_command,
    )
    try:
        yield connection
    finally:
        await connection.close()


async def _reported_by_the_command(_: Exception) -> None:
    return None


async def streams(target: NatsTarget) -> list[dict[str, Any]]:
    """Each stream's size, and each consumer's backlog (what its service has yet to handle)."""
    async with connected(target) as connection:
        js = connection.jetstream(timeout=target.timeout_s)
        found = []
        for info in await js.streams_info():
            name = str(info.config.name)
            consumers = await js.consumers_info(name)
            found.append(
                {
                    "stream": name,
                    "subjects": info.config.subjects or [],
                    "messages": info.state.messages,
                    "bytes": info.state.bytes,
                    "first_seq": info.state.first_seq,
                    "last_seq": info.state.last_seq,
                    "consumers": {
                        consumer.name: {
                            "pending": consumer.num_pending or 0,
                            "unacknowledged": consumer.num_ack_pending or 0,
                            "redelivered": consumer.num_redelivered or 0,
                        }
                        for consumer in consumers
                    },
                }
            )
        return sorted(found, key=lambda stream: str(stream["stream"]))


async def events(
    target: NatsTarget, stream: str, *, subject: str | None, last: int, scan: int
) -> list[dict[str, Any]]:
    """The newest `last` messages of `stream` (of `subject` only, a filter that may hold
    wildcards), oldest first; at most `scan` messages are read looking for them."""
    async with connected(target) as connection:
        js = connection.jetstream(timeout=target.timeout_s)
        state = (await js.stream_info(stream)).state
        found: list[dict[str, Any]] = []
        seq = state.last_seq
        while seq >= max(state.first_seq, 1) and len(found) < last and scan > 0:
            scan -= 1
            try:
                stored = await js.get_msg(stream, seq)
            except nats.js.errors.NotFoundError:  # deleted, or aged out meanwhile
                seq -= 1
                continue
            if subject is None or covers(subject, stored.subject or ""):
                found.append(shown(stored))
            seq -= 1
        return found[::-1]


def shown(stored: RawStreamMsg) -> dict[str, Any]:
    subject = stored.subject or ""
    headers = stored.headers or {}
    message: dict[str, Any] = {
        "seq": stored.seq,
        "subject": subject,
        "event_id": headers.get("Nats-Msg-Id"),
    }
    data = stored.data or b""
    event_type = event_types().get(subject.removeprefix(DLQ_PREFIX))
    if event_type is not None:
        try:
            event = event_type.FromString(data)
        except DecodeError:
            pass
        else:
            message["type"] = event.DESCRIPTOR.full_name
            message["event"] = json_format.MessageToDict(event)
            return message
    message["data_base64"] = base64.b64encode(data).decode()
    return message


@functools.cache
def event_types() -> dict[str, type[Message]]:
    """Subject → message type of every event the project's contracts declare."""
    local_contracts()  # imports every generated module under shared/proto
    found: dict[str, type[Message]] = {}
    for name, module in list(sys.modules.items()):
        if not (name.startswith("shared.proto.") and name.endswith("_pb2")):
            continue
        for descriptor in module.DESCRIPTOR.message_types_by_name.values():
            options = descriptor.GetOptions()
            if options.HasExtension(options_pb2.event):
                subject = options.Extensions[options_pb2.event].subject
                found[subject] = message_factory.GetMessageClass(descriptor)
    return found
