"""The pieces every service wires the same way, owned in one place.

`Runtime.build(settings, stack)` connects the registry, builds the selector, breakers,
client and broker, reads the app's configuration from config_service and follows it,
each opened on the caller's `AsyncExitStack` so that they close in reverse order.
`shared.app.App` runs a service on top of it; a service's `app.py` adds only what is
its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prometheus_client import start_http_server
from pydantic import TypeAdapter

from shared.breaker import Breakers, redis_storage_factory
from shared.broker import Broker, BrokerSettings, Event, Handler, build_broker
from shared.client import Client
from shared.config import ConfigWatcher, ServiceSettings, fetch_config, load_settings
from shared.registry import EtcdRegistry, Registry
from shared.security.credentials import server_credentials
from shared.security.policy import Policy
from shared.security.reload import ReloadingCertificate
from shared.security.workload import service_certificate
from shared.selector import Selector
from shared.server import Admission, GrpcServer
from shared.tracing import (
    Tracing,
    consumer_span,
    producer_span,
    setup_tracing,
)

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)
ConfigListener = Callable[[dict[str, Any]], Awaitable[None] | None]
_OVERRIDES: TypeAdapter[dict[str, dict[str, Any]]] = TypeAdapter(dict[str, dict[str, Any]])


@dataclass
class Runtime(Generic[S]):
    settings: S
    registry: Registry
    selector: Selector
    breakers: Breakers
    client: Client
    broker: Broker
    tracing: Tracing
    # This service's certificate when `settings.mtls` is on: served, and shown to the
    # services it calls; re-read from disk when rotated.
    certificate: ReloadingCertificate | None = None
    config: dict[str, Any] = field(default_factory=dict)
    _listeners: list[ConfigListener] = field(default_factory=list)

    @classmethod
    async def build(
        cls, settings: S, stack: AsyncExitStack, *, registry: Registry | None = None
    ) -> Runtime[S]:
        """Open every part on `stack`: they close in the reverse order when it unwinds."""
        if settings.metrics_port:
            # A daemon thread: scraping never competes with the event loop.
            metrics, _ = start_http_server(settings.metrics_port, addr=settings.grpc_host)
            stack.callback(metrics.shutdown)
        tracing = setup_tracing(
            settings.service_name,
            version=settings.service_version,
            environment=settings.environment,
            flush_timeout_s=settings.tracing_flush_s,
        )
        stack.push_async_callback(tracing.stop)  # flushes the spans still buffered
        username, password = settings.etcd_login()
        registry = registry or EtcdRegistry(
            settings.etcd_endpoint,
            prefix=settings.registry_prefix,
            ttl_s=settings.registry_ttl_s,
            username=username,
            password=password,
        )
        stack.push_async_callback(registry.stop)
        selector = Selector(registry, strategy=settings.selector)
        stack.push_async_callback(selector.stop)
        storage = None
        if settings.breaker_redis_url:
            namespace = f"micro:{settings.service_name}"
            storage = redis_storage_factory(settings.breaker_redis_url, namespace)
        breakers = Breakers(storage_factory=storage)
        stack.push_async_callback(breakers.close)
        certificate = None
        if settings.mtls:
            # A thread: the first start writes the development CA and the certificate.
            certificate = await asyncio.to_thread(
                service_certificate,
                settings.service_name,
                trust_domain=settings.trust_domain,
                tls_dir=settings.tls_dir,
                dev_root=settings.tls_dev_root,
                reload_s=settings.tls_reload_s,
            )
        client = Client(selector, breakers, tracing=tracing, tls=certificate)
        stack.push_async_callback(client.stop)

        def trace_publish(subject: str, headers: dict[str, str]) -> None:
            with producer_span(tracing, subject, headers):
                pass  # the event goes to the outbox: the span marks the moment it is accepted

        broker = build_broker(
            BrokerSettings(
                url=settings.nats_url,
                stream_replicas=settings.nats_stream_replicas,
                nkeys_seed=settings.nats_nkey_seed_file,
                spool_path=settings.broker_spool_path,
                ack_wait_s=settings.broker_ack_wait_s,
                max_deliver=settings.broker_max_deliver,
            ),
            settings.service_name,
            on_publish=trace_publish,
        )
        await broker.start()  # returns at once when NATS is down: events wait in the outbox
        stack.push_async_callback(broker.stop)  # flushes the outbox
        runtime = cls(settings, registry, selector, breakers, client, broker, tracing, certificate)
        if settings.use_config_service:
            await runtime._load_remote_config(stack)
        return runtime

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, settings: S, *, registry: Registry | None = None
    ) -> AsyncIterator[Runtime[S]]:
        """`build` on a stack of its own, for a block (tests, tools)."""
        async with AsyncExitStack() as stack:
            yield await cls.build(settings, stack, registry=registry)

    def grpc_server(self, **options: Any) -> GrpcServer:
        """A server for this service, bound and advertised as the settings say, traced;
        with mTLS, it requires client certificates and enforces the methods' policy."""
        options.setdefault("tracing", self.tracing)
        options.setdefault("reflection", self.settings.reflection_on)
        if self.certificate is not None:
            options.setdefault("credentials", server_credentials(self.certificate))
            options.setdefault(
                "policy",
                Policy(
                    {},
                    trust_domain=self.settings.trust_domain,
                    enforce=self.settings.enforce_policy,
                ),
            )
        settings = self.settings
        options.setdefault("max_message_bytes", settings.grpc_max_message_bytes)
        options.setdefault("max_concurrent_rpcs", settings.grpc_max_concurrent_rpcs)
        options.setdefault("default_deadline_s", settings.grpc_default_deadline_s)
        options.setdefault(
            "default_admission",
            Admission(limit=settings.grpc_method_concurrency, queue=settings.grpc_method_queue),
        )
        if self.settings.dependencies:
            options.setdefault("metadata", {"dependencies": self.settings.dependencies})
        return GrpcServer(
            name=self.settings.service_name,
            version=self.settings.service_version,
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

    async def _load_remote_config(self, stack: AsyncExitStack) -> None:
        app = self.settings.service_name
        remote = await fetch_config(self.client, app, timeout=self.settings.config_wait_s)
        if remote is not None:
            # What was built before this (registry, selector, tracing) follows the
            # environment only: config_service is found through them.
            try:
                settings = self._checked(remote)
            except ValueError as error:  # never a reason not to start
                log.error("ignoring invalid configuration from config_service: %s", error)
            else:
                self.config, self.settings = remote, settings
                self._apply_breakers(remote)
        watcher = ConfigWatcher(self.client, app, self._config_changed)
        watcher.start()
        stack.push_async_callback(watcher.stop)

    async def _config_changed(self, config: dict[str, Any]) -> None:
        # All or nothing: every part is validated before any part is applied.
        try:
            self._checked(config)
        except ValueError as error:
            log.error("ignoring invalid configuration from config_service: %s", error)
            return
        self.config = config
        self._apply_breakers(config)
        for listener in self._listeners:
            result = listener(config)
            if result is not None:
                await result

    def _checked(self, config: dict[str, Any]) -> S:
        """The settings `config` makes; raises ValueError (pydantic's ValidationError) when
        any of it, breaker overrides included, is invalid."""
        settings = load_settings(type(self.settings), config)
        self.breakers.check_settings(_OVERRIDES.validate_python(config.get("breakers", {})))
        return settings

    def _apply_breakers(self, config: dict[str, Any]) -> None:
        overrides = config.get("breakers")
        if isinstance(overrides, dict):
            self.breakers.update_settings(overrides)
