"""The NATS broker: one connection that never gives up, an outbox, and subscriptions.

The connection is made in the background and retried forever, so a service starts
and serves while NATS is down: the first connection every `reconnect_wait_s` (nats-py's
own loop), later reconnects with exponential backoff up to `reconnect_max_wait_s`. Core
subscriptions are replayed by nats-py after a reconnect; durable ones set their
consumer up again, in case the server came back without its state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, cast

import nats.errors
import nats.js.errors
from google.protobuf.message import Message
from nats.aio.client import Client, Server
from nats.protocol.parser import PERMISSIONS_ERR

from shared import backoff
from shared.broker import subjects
from shared.broker.core_nats import CoreSubscription
from shared.broker.events import subscription_target
from shared.broker.jetstream import DurableSubscription
from shared.broker.metrics import BrokerMetrics, default_metrics
from shared.broker.outbox import OutboxPublisher, Outgoing, TransientError
from shared.broker.protocol import STREAM_HEADER, Handler, PublishHook
from shared.broker.settings import BrokerSettings
from shared.broker.spool import make_outbox
from shared.broker.streams import ensure_stream, ensure_streams, known_streams

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2
# Pings left unanswered before the connection is given up for another server.
MAX_OUTSTANDING_PINGS = 2
# Distinct refusals logged (each names its subject): a bound however many there are.
MAX_REFUSALS_LOGGED = 100
_NATS_ERRORS = (nats.errors.Error, OSError)
# Retrying these cannot help: the message itself is at fault.
_REJECTED = (
    nats.errors.MaxPayloadError,
    nats.errors.BadSubjectError,
    nats.errors.BadHeaderError,
    nats.js.errors.BadRequestError,
)


class NatsBroker(OutboxPublisher):
    def __init__(
        self,
        settings: BrokerSettings,
        service_name: str,
        *,
        metrics: BrokerMetrics | None = None,
        on_publish: PublishHook | None = None,
    ) -> None:
        self._settings = settings
        self._service_name = service_name
        self._metrics = metrics or default_metrics()
        self._on_publish = on_publish
        self._nc = Client()
        self._js = self._nc.jetstream(timeout=settings.publish_timeout_s)
        self._outbox = make_outbox(self._send, self._settings, self._metrics)
        self._connected = asyncio.Event()
        self._attempted = asyncio.Event()
        self._lock = asyncio.Lock()
        self._core: list[CoreSubscription] = []
        self._durable: list[DurableSubscription] = []
        # Streams known to exist on the server since the last (re)connect.
        self._ready_streams: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._connect_task: asyncio.Task[None] | None = None
        self._closing = False
        self._outage_logged = False
        self._refusals: set[str] = set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        if self._connect_task is not None:
            return
        self._outbox.start()
        self._connect_task = asyncio.create_task(self._connect(), name="broker-connect")
        # Wait for the first attempt only: with NATS down the service starts anyway.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CONNECT_TIMEOUT_S + 1):
                await self._attempted.wait()

    async def subscribe(
        self,
        subject: str | type[Message],
        handler: Handler,
        *,
        queue: str,
        durable: bool = True,
    ) -> None:
        subject, stream = subscription_target(
            subject, queue, durable=durable, settings=self._settings
        )
        if stream is None:
            core = CoreSubscription(subject, queue, handler, self._metrics)
            self._core.append(core)
            async with self._lock:
                if self.connected:
                    await core.subscribe(self._nc)
            return
        durable_sub = DurableSubscription(
            self._js,
            stream=stream,
            subject=subject,
            queue=queue,
            handler=handler,
            settings=self._settings,
            metrics=self._metrics,
            connected=self._connected,
        )
        self._durable.append(durable_sub)
        if self.connected:
            # So that the stream and the consumer exist, and catch every later event, on return.
            with contextlib.suppress(*_NATS_ERRORS):
                await self._ready(stream, subject)
            await durable_sub.setup()
        durable_sub.start()

    async def flush(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if not await self._outbox.flush(timeout):
            return False
        if self.connected:
            # Core publishes may still sit in the client's write buffer.
            try:
                await self._nc.flush(timeout=cast(int, max(deadline - loop.time(), 0.01)))
            except _NATS_ERRORS:
                return False
        return True

    async def stop(self) -> None:
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.close_timeout_s
        if not await self._outbox.flush(self._settings.close_timeout_s):
            log.warning("broker outbox not empty at close (%d events)", len(self._outbox))
        await self._outbox.stop()
        remaining = max(deadline - loop.time(), 0.1)
        await asyncio.gather(*(sub.stop(remaining) for sub in self._durable))
        for task in [*self._tasks, *([self._connect_task] if self._connect_task else [])]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            # Lets core handlers finish what they were given and sends the last acks.
            await self._nc.drain()
        except _NATS_ERRORS:
            with contextlib.suppress(*_NATS_ERRORS):
                await self._nc.close()
        self._connected.clear()

    async def _send(self, item: Outgoing) -> None:
        await self._connected.wait()
        headers = dict(item.headers)
        try:
            stream = headers.get(STREAM_HEADER) or subjects.find_stream(
                known_streams(self._settings), item.subject
            )
            if stream is None:
                await self._nc.publish(item.subject, item.data, headers=headers)
            else:
                await self._ready(stream, item.subject)
                await self._js.publish(
                    item.subject,
                    item.data,
                    headers=headers,
                    timeout=self._settings.publish_timeout_s,
                )
        except _REJECTED:
            raise
        except nats.js.errors.NoStreamResponseError as error:
            # The server came back without its streams (a fresh store): set them up again.
            self._ready_streams.clear()
            self._spawn(self._ensure_streams())
            raise TransientError(str(error)) from error
        except _NATS_ERRORS as error:
            raise TransientError(str(error)) from error

    async def _connect(self) -> None:
        await self._nc.connect(
            servers=self._settings.servers,
            name=self._service_name,
            # nats-py signs the server's challenge with the seed read from this file.
            nkeys_seed=str(self._settings.nkeys_seed) if self._settings.nkeys_seed else None,
            # Replies to this service only: its NATS user may read no other inbox.
            inbox_prefix=subjects.inbox_prefix(self._service_name),
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            connect_timeout=CONNECT_TIMEOUT_S,
            # nats-py annotates these as int but only sleeps or waits on them.
            reconnect_time_wait=cast(int, self._settings.reconnect_wait_s),
            ping_interval=cast(int, self._settings.ping_interval_s),
            max_outstanding_pings=MAX_OUTSTANDING_PINGS,
            drain_timeout=cast(int, self._settings.close_timeout_s),
            reconnect_to_server_handler=self._next_server,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        await self._on_connected()
        # Only now: subscriptions made after start() returns must be live at once.
        self._attempted.set()

    async def _on_connected(self) -> None:
        self._ready_streams.clear()
        await self._ensure_streams()
        async with self._lock:
            for core in self._core:
                # nats-py replays the subscriptions it has; these were made while offline.
                if core.sub is None:
                    await core.subscribe(self._nc)
            if self._nc.is_connected:  # not lost again while streams were set up
                self._connected.set()
        for durable_sub in self._durable:
            durable_sub.reset()
        self._outage_logged = False
        url = self._nc.connected_url
        log.info("broker connected to NATS at %s", url.netloc if url else "?")

    async def _ready(self, stream: str, subject: str) -> None:
        """Create `stream` once per connection: declared after connecting, it may not exist."""
        if stream in self._ready_streams:
            return
        patterns = known_streams(self._settings).get(stream)
        if patterns is None:
            # An event from an earlier run (spooled), of a type not published since: its
            # stream holds `<first token>.>`; created if missing, its settings left alone.
            token = subject.split(".", 1)[0]
            await ensure_stream(self._js, stream, (f"{token}.>",), self._settings, update=False)
        else:
            await ensure_stream(self._js, stream, patterns, self._settings)
        self._ready_streams.add(stream)

    async def _ensure_streams(self) -> None:
        try:
            await ensure_streams(self._js, self._settings)
        except _NATS_ERRORS as error:
            log.warning("broker could not set up JetStream streams: %s", error)

    def _next_server(self, servers: list[Server], info: dict[str, Any]) -> tuple[Server, float]:
        server = min(servers, key=lambda s: s.reconnects)
        if server.reconnects == 0:
            return server, 0.0
        wait = backoff.delay_for_attempt(
            server.reconnects - 1,
            self._settings.reconnect_wait_s,
            self._settings.reconnect_max_wait_s,
        )
        return server, wait

    async def _on_error(self, error: Exception) -> None:
        self._attempted.set()
        if self._closing:
            return
        if PERMISSIONS_ERR in str(error).lower():
            self._refused(str(error))
            return
        if not self._outage_logged:
            self._outage_logged = True
            log.warning("broker cannot reach NATS (%s); retrying, events wait in the outbox", error)
        else:
            log.debug("broker still cannot reach NATS: %s", error)

    def _refused(self, refusal: str) -> None:
        """Connected, but refused what this service's NATS user may not do: an event or a
        subscription its role leaves out. Said once each (the outbox retries a refused
        publish), as an error: nothing fixes it but the role."""
        if refusal in self._refusals or len(self._refusals) >= MAX_REFUSALS_LOGGED:
            return
        self._refusals.add(refusal)
        log.error(
            "NATS refused %s (%s): not allowed to this service's NATS user; "
            "see its ROLE (shared.security.roles)",
            self._service_name,
            refusal,
        )

    async def _on_disconnected(self) -> None:
        self._connected.clear()
        if not self._closing:
            log.warning("broker lost its NATS connection; reconnecting")

    async def _on_reconnected(self) -> None:
        # Spawned: nats-py's reconnect task waits on this callback, and setup may be slow.
        self._spawn(self._on_connected())

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
