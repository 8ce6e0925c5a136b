"""The bounded in-process outbox: `publish()` returns at once, a task sends later.

A request must not fail or wait because NATS is down, so events wait here and one
background task sends them in order, retrying transient failures until the server is
back. When the outbox is full the newest event is dropped, logged and counted: losing
events is possible (memory is bounded) but never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shared import backoff
from shared.broker import subjects
from shared.broker.metrics import BrokerMetrics
from shared.broker.protocol import EVENT_ID_HEADER, PublishHook

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outgoing:
    subject: str
    data: bytes
    event_id: str
    headers: dict[str, str] = field(default_factory=dict)


class TransientError(Exception):
    """Raised by a sender when the server is unreachable; the outbox tries again."""


Sender = Callable[[Outgoing], Awaitable[None]]


def new_event_id() -> str:
    return str(uuid.uuid4())


def make_outgoing(
    subject: str,
    data: bytes,
    *,
    headers: Mapping[str, str] | None,
    event_id: str | None,
    on_publish: PublishHook | None,
) -> Outgoing:
    """The message to queue: validated subject, the caller's headers, the hook's, the id."""
    if not subjects.is_valid(subject, wildcards=False):
        raise ValueError(f"invalid subject to publish on: {subject!r}")
    event_id = event_id or new_event_id()
    sent_headers = dict(headers or {})
    if on_publish is not None:
        try:
            on_publish(subject, sent_headers)
        except Exception:
            # A broken hook (tracing) must not cost the event or the request.
            log.exception("broker on_publish hook failed for %s", subject)
    sent_headers[EVENT_ID_HEADER] = event_id
    return Outgoing(subject, data, event_id, sent_headers)


class Outbox(Protocol):
    """Where published events wait for the server: in memory, or spooled to a file."""

    def __len__(self) -> int: ...

    async def put(self, item: Outgoing) -> bool:
        """Queue `item`; False (and a warning and a count) when the outbox is full."""
        ...

    def start(self) -> None: ...

    async def join(self) -> None: ...

    async def flush(self, timeout: float) -> bool: ...

    async def stop(self) -> None: ...


async def deliver(
    send: Sender, item: Outgoing, metrics: BrokerMetrics, retry: tuple[float, float]
) -> bool:
    """Send `item`, retrying transient failures; False when the server rejected it (dropped)."""
    waits = backoff.delays(*retry)
    while True:
        try:
            await send(item)
        except TransientError as error:
            log.debug("event %s not sent yet: %s", item.event_id, error)
            await asyncio.sleep(next(waits))
            continue
        except Exception:
            # Retrying a message the server rejects would block every later event.
            metrics.dropped.labels(subject=item.subject).inc()
            log.exception("broker rejected event %s on %s: dropped", item.event_id, item.subject)
            return False
        metrics.published.labels(subject=item.subject).inc()
        return True


class MemoryOutbox:
    """Events waiting in this process's memory to be sent; lost if the process dies.

    (Not a transactional outbox, which writes events in the change's database transaction.)
    """

    def __init__(
        self,
        send: Sender,
        *,
        capacity: int,
        metrics: BrokerMetrics,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 2.0,
    ) -> None:
        self._send = send
        # Unbounded queue: the bound counts the event being sent too, so it is checked in put().
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        self._capacity = capacity
        self._metrics = metrics
        self._retry = (retry_initial_s, retry_max_s)
        self._task: asyncio.Task[None] | None = None
        self._sending: Outgoing | None = None

    def __len__(self) -> int:
        return self._queue.qsize() + (self._sending is not None)

    async def put(self, item: Outgoing) -> bool:
        """Queue `item`; False (and a warning and a count) when the outbox is full."""
        if len(self) >= self._capacity:
            self._metrics.dropped.labels(subject=item.subject).inc()
            log.warning(
                "broker outbox full (%d events): dropped event %s on %s",
                self._capacity,
                item.event_id,
                item.subject,
            )
            return False
        self._queue.put_nowait(item)
        self._metrics.outbox_size.inc()
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="broker-outbox")

    async def join(self) -> None:
        """Wait until every queued event is sent (or given up)."""
        await self._queue.join()

    async def flush(self, timeout: float) -> bool:
        return await joined_within(self.join, timeout)

    async def stop(self) -> None:
        """Stop sending; whatever is still queued is lost, so count and log it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        lost = 0
        while not self._queue.empty():
            item = self._queue.get_nowait()
            self._queue.task_done()
            self._metrics.dropped.labels(subject=item.subject).inc()
            self._metrics.outbox_size.dec()
            lost += 1
        if lost:
            log.warning("broker closed with %d unsent events: dropped", lost)

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            self._sending = item
            try:
                await self._deliver(item)
            except asyncio.CancelledError:
                self._metrics.dropped.labels(subject=item.subject).inc()
                log.warning("broker closed while sending event %s: dropped", item.event_id)
                raise
            finally:
                self._sending = None
                self._metrics.outbox_size.dec()
                self._queue.task_done()

    async def _deliver(self, item: Outgoing) -> None:
        await deliver(self._send, item, self._metrics, self._retry)


class OutboxPublisher:
    """`publish()` for a broker that sends through an `Outbox`: queue, return the id."""

    _outbox: Outbox
    _on_publish: PublishHook | None
    _metrics: BrokerMetrics

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        event_id: str | None = None,
    ) -> str:
        item = make_outgoing(
            subject, data, headers=headers, event_id=event_id, on_publish=self._on_publish
        )
        await self._outbox.put(item)
        return item.event_id

    async def publish_now(
        self,
        subject: str,
        data: bytes,
        *,
        headers: Mapping[str, str] | None = None,
        event_id: str | None = None,
    ) -> str:
        """Send past the outbox and return once the server has the event (JetStream acked).

        For a relay that holds the event elsewhere (a transactional outbox table): raises
        `TransientError` while the server is unreachable, another error when it rejects
        the event. Waits for the connection: bound it with `asyncio.timeout`.
        """
        item = make_outgoing(
            subject, data, headers=headers, event_id=event_id, on_publish=self._on_publish
        )
        await self._send(item)
        self._metrics.published.labels(subject=subject).inc()
        return item.event_id

    async def _send(self, item: Outgoing) -> None:
        raise NotImplementedError


async def joined_within(join: Callable[[], Awaitable[None]], timeout: float) -> bool:
    """`flush` of every outbox: True once `join` returns within `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            await join()
    except TimeoutError:
        return False
    return True
