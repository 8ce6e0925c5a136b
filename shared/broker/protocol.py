"""What a service sees of the broker: `Event`, handlers, and the `Broker` Protocol.

Delivery is at least once: a handler may see the same event again (after a crash, a
lost ack, an ack timeout), so handlers must be idempotent, keyed on `Event.event_id`
(for example a UNIQUE column, or `shared.broker.idempotency.SeenEvents`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import Message

# JetStream drops a second publish with the same id (within the stream's duplicate
# window), so the event id doubles as the de-duplication key.
EVENT_ID_HEADER = "Nats-Msg-Id"
# The stream an event is meant for, set when it is published (JetStream checks it): it
# travels with the event through a spool file or an outbox table, so a process that
# relays what an earlier run left sends it to its stream before it has declared any event.
STREAM_HEADER = "Nats-Expected-Stream"


@dataclass(frozen=True, slots=True)
class Event:
    subject: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    event_id: str = ""
    # 1 on the first delivery; more when the event is being delivered again.
    delivery_count: int = 1


Handler = Callable[[Event], Awaitable[None]]
# Called in the publisher's context with the headers about to be sent, which it may
# change (tracing injects `traceparent` here).
PublishHook = Callable[[str, dict[str, str]], None]


class Broker(Protocol):
    async def start(self) -> None:
        """Start sending and connecting; returns even when the server is down."""

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue an event and return its id at once; never raises for a broker outage."""

    async def publish_now(
        self,
        subject: str,
        data: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        event_id: str | None = None,
    ) -> str:
        """Send at once, past the outbox; return when the server has it (for relays).

        Raises `shared.broker.outbox.TransientError` while the server is unreachable.
        """

    async def subscribe(
        self,
        subject: str | type[Message],
        handler: Handler,
        *,
        queue: str,
        durable: bool = True,
    ) -> None:
        """Handle events on `subject` once per `queue` (the service name).

        `subject` is a subject (wildcards allowed) or an event type, whose declaration
        (`(micro.v1.event)`) gives the subject and the stream.

        durable=True: JetStream, acked after the handler returns, redelivered when it
        raises, dead-lettered after `max_deliver` attempts. durable=False: core NATS,
        at most once.
        """

    async def flush(self, timeout: float) -> bool:
        """Wait until every queued event is sent; False when `timeout` ran out first."""

    async def stop(self) -> None:
        """Flush (bounded), let running handlers finish, then drain and disconnect."""
