"""The pieces every service wires the same way, owned in one place.

`Runtime.open(settings)` connects the registry, builds the selector, breakers,
client and broker, reads the app's configuration from config_service and follows it;
`serve(...)` starts a gRPC server, waits for SIGTERM/SIGINT, deregisters and drains.
A service's `app.py` adds only what is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prometheus_client import start_http_server
from pydantic import ValidationError

from shared.breaker import Breakers, redis_storage_factory
from shared.broker import Broker, BrokerSettings, Event, Handler, build_broker
from shared.client import Client
from shared.config import ConfigWatcher, ServiceSettings, fetch_config, load_settings
from shared.registry import EtcdRegistry, Registry
from shared.selector import Selector
from shared.server import GrpcServer
from shared.tracing import (
    Tracing,
    TracingServerInterceptor,
    consumer_span,
    producer_span,
    setup_tracing,
)

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)
ConfigListener = Callable[[dict[str, Any]], Awaitable[None] | None]


@dataclass
class Runtime(Generic[S]):
    settings: S
    registry: Registry
    selector: Selector
    breakers: Breakers
    client: Client
    broker: Broker
    tracing: Tracing
    config: dict[str, Any] = field(default_factory=dict)
    _listeners: list[ConfigListener] = field(default_factory=list)
    _watcher: ConfigWatcher | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, settings: S, *, registry: Registry | None = None
    ) -> AsyncIterator[Runtime[S]]:
        registry = registry or EtcdRegistry(
            settings.etcd_endpoint, prefix=settings.registry_prefix, ttl_s=settings.registry_ttl_s
        )
        selector = Selector(registry, strategy=settings.selector)
        storage = None
        if settings.breaker_redis_url:
            namespace = f"micro:{settings.service_name}"
            storage = redis_storage_factory(settings.breaker_redis_url, namespace)
        breakers = Breakers(storage_factory=storage)
        tracing = setup_tracing(
            settings.service_name,
            version=settings.service_version,
            environment=settings.environment,
        )

        def trace_publish(subject: str, headers: dict[str, str]) -> None:
            with producer_span(tracing, subject, headers):
                pass  # the event goes to the outbox: the span marks the moment it is accepted

        broker = build_broker(
            BrokerSettings(url=settings.nats_url, stream_replicas=settings.nats_stream_replicas),
            settings.service_name,
            on_publish=trace_publish,
        )
        client = Client(selector, breakers, tracing=tracing)
        runtime = cls(settings, registry, selector, breakers, client, broker, tracing)
        metrics = None
        if settings.metrics_port:
            # A daemon thread: scraping never competes with the event loop.
            metrics, _ = start_http_server(settings.metrics_port, addr=settings.grpc_host)
        try:
            await broker.start()  # returns at once when NATS is down: events wait in the outbox
            if settings.use_config_service:
                await runtime._load_remote_config()
            yield runtime
        finally:
            await runtime._close()
            if metrics is not None:
                metrics.shutdown()

    def grpc_server(self, **options: Any) -> GrpcServer:
        """A server for this service, bound and advertised as the settings say, traced."""
        options.setdefault("interceptors", [TracingServerInterceptor(self.tracing)])
        if self.settings.dependencies:
            options.setdefault("metadata", {"dependencies": self.settings.dependencies})
        return GrpcServer(
            name=self.settings.service_name,
            version=self.settings.service_version,
            registry=self.registry,
            host=self.settings.grpc_host,
            port=self.settings.grpc_port,
            advertise_host=self.settings.advertise_host,
            **options,
        )

    async def subscribe(self, subject: str, handler: Handler) -> None:
        """Handle `subject` once per service (a queue group per service), each in a span."""
        tracing = self.tracing

        async def traced(event: Event) -> None:
            with consumer_span(tracing, event.subject, event.headers):
                await handler(event)

        await self.broker.subscribe(subject, traced, queue=self.settings.service_name)

    def on_config_change(self, listener: ConfigListener) -> None:
        """Call `listener` with the app's configuration whenever it changes."""
        self._listeners.append(listener)

    async def _load_remote_config(self) -> None:
        app = self.settings.service_name
        remote = await fetch_config(self.client, app, timeout=self.settings.config_wait_s)
        if remote is not None:
            self.config = remote
            # What was built before this (registry, selector, tracing) follows the
            # environment only: config_service is found through them.
            try:
                self.settings = load_settings(type(self.settings), remote)
            except ValidationError as error:
                log.error("ignoring invalid settings from config_service: %s", error)
        self._apply_breakers(self.config)
        self._watcher = ConfigWatcher(self.client, app, self._config_changed)
        self._watcher.start()

    async def _config_changed(self, config: dict[str, Any]) -> None:
        self.config = config
        self._apply_breakers(config)
        for listener in self._listeners:
            result = listener(config)
            if result is not None:
                await result

    def _apply_breakers(self, config: dict[str, Any]) -> None:
        overrides = config.get("breakers")
        if not isinstance(overrides, dict):
            return
        try:
            self.breakers.update_settings(overrides)
        except ValueError as error:  # pydantic's ValidationError: keep the settings in force
            log.error("ignoring invalid breaker settings from config_service: %s", error)

    async def _close(self) -> None:
        if self._watcher is not None:
            await self._watcher.close()
        await self.broker.close()
        await self.client.close()
        await self.selector.close()
        await self.registry.close()
        await self.tracing.ashutdown()  # flushes the spans still buffered


def stop_signal() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT (Ctrl-C).

    Install it before registering, so that a signal right after registration is not
    fatal. The handlers stay installed: a second signal during the (bounded) drain is
    ignored rather than killing the process before it has deregistered.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(server: GrpcServer, until: Awaitable[Any] | None = None) -> None:
    """Start `server`, run until a signal (or `until`), then deregister and drain."""
    stopping = stop_signal().wait() if until is None else until
    try:
        await server.start()
        await stopping
    finally:
        await server.stop()
