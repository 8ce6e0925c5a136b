"""An in-process broker for unit tests, with the semantics of the NATS one.

Each queue group gets every matching event once, handed to one of its members in
turn. A durable handler that raises gets the event again (`delivery_count` + 1, after
`nak_delay_s`) up to `max_deliver` times; then the event lands in `dead_letters`.
Events go through the same bounded outbox as with NATS, and `set_online(False)`
holds them there, which is how a test plays a NATS outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from google.protobuf.message import Message

from shared.broker import subjects
from shared.broker.events import subscription_target
from shared.broker.metrics import BrokerMetrics, default_metrics
from shared.broker.outbox import OutboxPublisher, Outgoing
from shared.broker.protocol import Event, Handler, PublishHook
from shared.broker.settings import BrokerSettings
from shared.broker.spool import make_outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    event: Event
    queue: str
    error: str


@dataclass(slots=True)
class _Group:
    subject: str
    queue: str
    durable: bool
    members: list[Handler] = field(default_factory=list)
    turn: int = 0

    def pick(self) -> Handler:
        handler = self.members[self.turn % len(self.members)]
        self.turn += 1
        return handler


class MemoryBroker(OutboxPublisher):
    def __init__(
        self,
        settings: BrokerSettings | None = None,
        *,
        metrics: BrokerMetrics | None = None,
        on_publish: PublishHook | None = None,
    ) -> None:
        self._settings = settings or BrokerSettings(url="memory://")
        self._metrics = metrics or default_metrics()
        self._on_publish = on_publish
        self._outbox = make_outbox(self._send, self._settings, self._metrics)
        self._groups: dict[tuple[str, str, bool], _Group] = {}
        self._online = asyncio.Event()
        self._online.set()
        self._deliveries: set[asyncio.Task[None]] = set()
        self.dead_letters: list[DeadLetter] = []

    def set_online(self, online: bool) -> None:
        """Play a broker outage: while offline, events wait in the outbox."""
        if online:
            self._online.set()
        else:
            self._online.clear()

    async def start(self) -> None:
        self._outbox.start()

    async def subscribe(
        self,
        subject: str | type[Message],
        handler: Handler,
        *,
        queue: str,
        durable: bool = True,
    ) -> None:
        subject, _ = subscription_target(subject, queue, durable=durable, settings=self._settings)
        key = (subject, queue, durable)
        group = self._groups.setdefault(key, _Group(subject, queue, durable))
        group.members.append(handler)

    async def flush(self, timeout: float) -> bool:
        """Wait until the outbox is empty and, unlike NATS, every handler has finished."""
        try:
            async with asyncio.timeout(timeout):
                await self._outbox.join()  # first: a spool counts its file's events on opening
                while len(self._outbox) or self._deliveries:
                    await self._outbox.join()
                    if self._deliveries:
                        await asyncio.wait(set(self._deliveries))
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        await self.flush(self._settings.close_timeout_s)
        await self._outbox.stop()
        for task in list(self._deliveries):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _send(self, item: Outgoing) -> None:
        await self._online.wait()
        for group in list(self._groups.values()):
            if subjects.covers(group.subject, item.subject):
                task = asyncio.create_task(self._deliver(group, item))
                self._deliveries.add(task)
                task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, group: _Group, item: Outgoing) -> None:
        attempts = self._settings.max_deliver if group.durable else 1
        event, last_error = Event(item.subject, item.data), ""
        for attempt in range(1, attempts + 1):
            event = Event(item.subject, item.data, dict(item.headers), item.event_id, attempt)
            try:
                await group.pick()(event)
                return
            except Exception as error:
                self._metrics.handler_errors.labels(subject=item.subject, queue=group.queue).inc()
                log.warning(
                    "handler of %s (%s) failed on event %s, delivery %d",
                    item.subject,
                    group.queue,
                    item.event_id,
                    attempt,
                    exc_info=True,
                )
                last_error = repr(error)
            if attempt < attempts:
                await asyncio.sleep(self._settings.nak_delay_s)
        if group.durable:
            self._metrics.dead_lettered.labels(subject=item.subject, queue=group.queue).inc()
            self.dead_letters.append(DeadLetter(event, group.queue, last_error))
