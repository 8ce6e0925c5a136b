"""JetStream: one stream per domain, and durable pull consumers that never lose an event.

Each (queue, subject) pair is one durable consumer, `<queue>--<subject>`: every replica
of a service pulls from it, so an event is handled once per service, not per replica.
(A consumer filters one subject, so a service that subscribes to two subjects of a
stream needs two consumers; hence the subject in the name.)

Dead letters are decided here, not by the server: the consumer's server-side
`max_deliver` is unlimited, and the client counts deliveries. When the handler fails
on delivery `max_deliver`, or delivery `max_deliver + 1` arrives (the last attempt
crashed or outran `ack_wait`), the event is published to `dlq.<subject>` in the `DLQ`
stream and then terminated. The server therefore keeps redelivering until the dead
letter is safely stored, which an advisory-based copy (fire and forget, lost when no
one listens) cannot promise. Operators read them with `nats stream view DLQ`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared import backoff
from shared.broker.metrics import BrokerMetrics
from shared.broker.protocol import EVENT_ID_HEADER, STREAM_HEADER, Event, Handler
from shared.broker.settings import BrokerSettings
from shared.broker.streams import STREAM_NOT_FOUND, dlq_subject, ensure_streams
from shared.broker.subjects import consumer_name

log = logging.getLogger(__name__)

# How long one idle pull waits on the server; a reconnect cuts it short.
FETCH_EXPIRES_S = 5.0
_NATS_ERRORS = (nats.errors.Error, OSError)


class DurableSubscription:
    """Pulls one event at a time (low latency), runs up to `max_in_flight` handlers."""

    def __init__(
        self,
        js: JetStreamContext,
        *,
        stream: str,
        subject: str,
        queue: str,
        handler: Handler,
        settings: BrokerSettings,
        metrics: BrokerMetrics,
        connected: asyncio.Event,
    ) -> None:
        self.name = consumer_name(queue, subject)
        self._js, self._stream, self._subject, self._queue = js, stream, subject, queue
        self._handler = handler
        self._settings = settings
        self._metrics = metrics
        self._connected = connected
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._running: set[asyncio.Task[None]] = set()
        self._pull: JetStreamContext.PullSubscription | None = None
        self._needs_setup = True
        self._fetch: asyncio.Future[list[Msg]] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"broker-pull-{self.name}")

    def reset(self) -> None:
        """After a reconnect: the server may have lost the consumer, and the pending pull."""
        self._needs_setup = True
        if self._fetch is not None:
            self._fetch.cancel()

    async def stop(self, grace_s: float) -> None:
        """Stop pulling, give running handlers `grace_s` to finish and ack."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._running:
            # Unfinished handlers are cancelled unacked: the server redelivers them.
            _, late = await asyncio.wait(set(self._running), timeout=grace_s)
            for task in late:
                task.cancel()
        if self._pull is not None:
            with contextlib.suppress(*_NATS_ERRORS):
                await self._pull.unsubscribe()

    async def setup(self) -> bool:
        """Create (or update) the consumer and the pull inbox; False to try again later."""
        try:
            await self._js.add_consumer(self._stream, config=self._config())
        except nats.js.errors.NotFoundError as error:
            if error.err_code == STREAM_NOT_FOUND:
                with contextlib.suppress(*_NATS_ERRORS):
                    await ensure_streams(self._js, self._settings)
            log.warning("consumer %s not created yet: %s", self.name, error)
            return False
        except nats.js.errors.BadRequestError as error:
            # Changed by an operator in a way the server will not update: use it as is.
            log.warning("consumer %s kept as found: %s", self.name, error)
        except _NATS_ERRORS as error:
            log.warning("consumer %s not created yet: %s", self.name, error)
            return False
        if self._pull is None:
            try:
                self._pull = await self._js.pull_subscribe_bind(
                    durable=self.name, stream=self._stream
                )
            except _NATS_ERRORS as error:
                log.warning("consumer %s not bound yet: %s", self.name, error)
                return False
        self._needs_setup = False
        return True

    def _config(self) -> ConsumerConfig:
        return ConsumerConfig(
            name=self.name,
            durable_name=self.name,
            filter_subject=self._subject,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self._settings.ack_wait_s,
            max_deliver=-1,
        )

    async def _run(self) -> None:
        waits = self._waits()
        while True:
            await self._connected.wait()
            if self._needs_setup and not await self.setup():
                await asyncio.sleep(next(waits))
                continue
            await self._slots.acquire()
            try:
                msg = await self._next()
            except _NATS_ERRORS as error:
                # The consumer or its stream is gone (server lost its state), or the link is.
                log.warning("pulling %s failed, setting up again: %s", self.name, error)
                self._slots.release()
                self._needs_setup = True
                await asyncio.sleep(next(waits))
                continue
            if msg is None:
                self._slots.release()
                continue
            waits = self._waits()
            task = asyncio.create_task(self._handle(msg))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _waits(self) -> Iterator[float]:
        return backoff.delays(self._settings.reconnect_wait_s, self._settings.reconnect_max_wait_s)

    async def _next(self) -> Msg | None:
        """The next message, or None when the pull expired or was cut short by reset()."""
        assert self._pull is not None
        fetch = self._fetch = asyncio.ensure_future(self._pull.fetch(1, timeout=FETCH_EXPIRES_S))
        try:
            await asyncio.wait({fetch})
        finally:
            fetch.cancel()
            self._fetch = None
        if fetch.cancelled():
            return None
        try:
            return fetch.result()[0]
        except TimeoutError:
            return None

    async def _handle(self, msg: Msg) -> None:
        try:
            event = self._event(msg)
            if event.delivery_count > self._settings.max_deliver:
                await self._dead_letter(msg, event, "last delivery not acked within ack_wait")
                return
            try:
                await self._handler(event)
            except Exception as error:
                await self._failed(msg, event, error)
                return
            await msg.ack()
        except _NATS_ERRORS as error:
            # Without a connection the ack is lost; the server redelivers after ack_wait.
            log.warning("could not settle an event of %s: %s", self.name, error)
        finally:
            self._slots.release()

    def _event(self, msg: Msg) -> Event:
        meta = msg.metadata
        headers = dict(msg.headers or {})
        event_id = headers.get(EVENT_ID_HEADER) or f"{meta.stream}:{meta.sequence.stream}"
        return Event(msg.subject, msg.data, headers, event_id, meta.num_delivered)

    async def _failed(self, msg: Msg, event: Event, error: Exception) -> None:
        self._metrics.handler_errors.labels(subject=event.subject, queue=self._queue).inc()
        log.warning(
            "handler of %s (%s) failed on event %s, delivery %d of %d",
            event.subject,
            self._queue,
            event.event_id,
            event.delivery_count,
            self._settings.max_deliver,
            exc_info=error,
        )
        if event.delivery_count >= self._settings.max_deliver:
            await self._dead_letter(msg, event, repr(error))
        else:
            await msg.nak(delay=self._settings.nak_delay_s or None)

    async def _dead_letter(self, msg: Msg, event: Event, reason: str) -> None:
        meta = msg.metadata
        headers = {
            # The event's own headers but the stream it was meant for: every event published
            # through the kit names it, and JetStream refuses a publish whose expected stream
            # is not the one that takes its subject (the dead letter would come back for ever).
            **{name: value for name, value in event.headers.items() if name != STREAM_HEADER},
            # Another service's dead letter of the same event is a different one.
            EVENT_ID_HEADER: f"{event.event_id}:{self.name}",
            "Dlq-Event-Id": event.event_id,
            "Dlq-Subject": event.subject,
            "Dlq-Queue": self._queue,
            "Dlq-Stream": meta.stream,
            "Dlq-Stream-Seq": str(meta.sequence.stream),
            "Dlq-Deliveries": str(event.delivery_count),
            "Dlq-Error": " ".join(reason.split())[:500],
        }
        try:
            await self._js.publish(
                dlq_subject(event.subject),
                event.data,
                headers=headers,
                timeout=self._settings.publish_timeout_s,
                stream=self._settings.dlq_stream,
            )
        except _NATS_ERRORS as error:
            # Keep the event where it is; it comes back and is dead-lettered then.
            log.warning("could not dead-letter event %s: %s", event.event_id, error)
            await msg.nak(delay=self._settings.nak_delay_s or None)
            return
        await msg.term()
        self._metrics.dead_lettered.labels(subject=event.subject, queue=self._queue).inc()
        log.error(
            "event %s on %s dead-lettered for %s after %d deliveries: %s",
            event.event_id,
            event.subject,
            self._queue,
            event.delivery_count,
            reason,
        )
