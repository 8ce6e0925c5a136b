"""`Client.call(service, method, request)`: a chain of middleware around the node's call.

The chain (tracing, metrics, deadline, your links, retry, breaker, transport) is
composed once per route; its order is in `shared/client/chain.py`. The hot path does one
dictionary look-up, one selector pick and one breaker run per attempt; it never talks to
the registry (the selector serves its cache) and reuses one channel per node. What a
(service, method) needs is resolved once into a `Route`.

A link of your own, for example a header on every call:

    def tenant(next: Handler) -> Handler:
        def handler(call: Call) -> Awaitable[Any]:
            call.add_metadata(("x-tenant", "acme"))
            return next(call)
        return handler

    runtime.client.use(tenant)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

import grpc
from google.protobuf.message import Message

from shared import deadline
from shared.breaker import Breakers
from shared.client.call import Call, ClientMiddleware
from shared.client.chain import compose
from shared.client.endpoint import Endpoint, resolve
from shared.client.metrics import ClientMetrics, default_metrics
from shared.client.route import Route, node_failed
from shared.errors import Reason, ServiceError
from shared.security.credentials import secure_channel
from shared.security.reload import ReloadingCertificate
from shared.selector import Selector
from shared.tracing import Tracing

log = logging.getLogger(__name__)

Metadata = Sequence[tuple[str, str]]

# A node that hangs (a frozen process, a machine off the network) resets nothing: a
# stream to it (a config watch) would wait for ever. HTTP/2 pings find it out within 7 s:
# every 5 s while a call is open, answered within 2 s (the deadline is `ping_timeout_ms`
# in this gRPC, `keepalive_timeout_ms` in older ones), and going on past gRPC's default
# limit of two pings without data, which a quiet stream never sends. The kit's servers
# take a ping every 4 s (shared/server/server.py).
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.http2.ping_timeout_ms", 2000),
    ("grpc.http2.max_pings_without_data", 0),
]
_CLOSE_GRACE_S = 5.0
# Waiting for the first registry snapshot of a service is bounded even without a deadline.
_FIRST_DISCOVERY_S = 5.0


class Client:
    """`timeout` (per call, else `default_timeout_s`) bounds the whole call, retries
    included, like a deadline; the breaker's own timeout bounds each attempt; the
    smallest of those and the caller's deadline is what the node is given.

    `metrics=None` counts calls on prometheus_client's global registry; `middleware` are
    links of your own (see `shared.client.chain` for where they run). With `tls` (this
    process's certificate) every node channel is mutual TLS and accepts only a server
    whose certificate names the service the node was looked up as.
    """

    def __init__(
        self,
        selector: Selector,
        breakers: Breakers,
        *,
        max_retries: int = 2,
        default_timeout_s: float | None = None,
        tracing: Tracing | None = None,
        metrics: ClientMetrics | None = None,
        middleware: Sequence[ClientMiddleware] = (),
        tls: ReloadingCertificate | None = None,
    ) -> None:
        self.selector = selector
        self.tls = tls
        self.tracing = tracing or Tracing.disabled()
        self.breakers = breakers
        self.max_retries = max_retries
        self.default_timeout_s = default_timeout_s
        self.metrics = default_metrics() if metrics is None else metrics
        self._middleware = list(middleware)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._routes: dict[tuple[str, Endpoint], Route] = {}
        self._by_request: dict[tuple[str, str, type[Message]], Route] = {}
        self._ready: set[str] = set()
        self._closing: set[asyncio.Task[None]] = set()
        selector.on_change(self._forget_gone_nodes)

    def call(
        self,
        service: str,
        method: str,
        request: Message,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """Call `method` of a node of `service`; the response message, or a `ServiceError`."""
        # A plain function returning the coroutine: one coroutine less per call.
        route = self._by_request.get((service, method, type(request)))
        if route is None:
            return self._first_call(service, method, request, timeout, metadata)
        return self.invoke(route, request, timeout=timeout, metadata=metadata)

    def channel(self, service: str) -> grpc.aio.Channel:
        """A channel for generated stubs: `UserServiceStub(client.channel("user_service"))`."""
        from shared.client.channel import ServiceChannel

        return ServiceChannel(self, service)

    def use(self, *middleware: ClientMiddleware) -> None:
        """Add links of your own, after those already given (and inside the kit's tracing,
        metrics and deadline links); routes already resolved are composed again."""
        self._middleware.extend(middleware)
        for route in self._routes.values():
            route.handler = self._compose(route)

    async def route(self, service: str, endpoint: Endpoint) -> Route:
        """The route of `endpoint` on `service`, once the registry has been read."""
        if service not in self._ready:
            await self._discover(service)
        route = self._routes.get((service, endpoint))
        if route is None:
            command = self.breakers.command(f"{service}.{endpoint.method}")
            route = Route(service, endpoint, command)
            route.handler = self._compose(route)
            self._routes[(service, endpoint)] = route
        return route

    async def invoke(
        self,
        route: Route,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Metadata | None = None,
    ) -> Any:
        if timeout is None:
            timeout = self.default_timeout_s
        return await route.handler(Call(route, request, metadata, timeout))

    def _compose(self, route: Route) -> Any:
        return compose(
            route,
            self._send,
            tracing=self.tracing,
            metrics=self.metrics,
            selector=self.selector,
            max_retries=self.max_retries,
            middleware=self._middleware,
        )

    async def _send(self, call: Call) -> Any:
        """The transport: the gRPC call to the node the chain picked, on its channel."""
        state = call.node
        assert state is not None, "the retry link picks the node"
        route = call.route
        address = state.node.address
        multicallable = route.callables.get(address)
        if multicallable is None:
            multicallable = route.callables[address] = route.bind(
                self.node_channel(address, route.service)
            )
        timeout = call.attempt_timeout if call.attempt_timeout is not None else call.budget
        state.in_flight += 1
        try:
            response = await multicallable(call.request, timeout=timeout, metadata=call.metadata)
        except grpc.aio.AioRpcError as rpc_error:
            if node_failed(rpc_error):
                self.selector.report(state, transport_ok=False)
            raise ServiceError.from_rpc_error(rpc_error) from None
        finally:
            state.in_flight -= 1
        if state.suspect:
            self.selector.report(state, transport_ok=True)
        return response

    def node_channel(self, address: str, service: str = "") -> grpc.aio.Channel:
        """The one channel to the node at `address`, a node of `service`.

        With mTLS the channel checks that the server's certificate names `service`; a new
        channel takes the certificate on disk now (a rotated one included).
        """
        channel = self._channels.get(address)
        if channel is None:
            if self.tls is None:
                channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
            elif not service:
                raise ValueError(f"mTLS: which service is {address}? pass its name")
            else:
                channel = secure_channel(address, service, self.tls, _CHANNEL_OPTIONS)
            self._channels[address] = channel
        return channel

    def _forget_gone_nodes(self) -> None:
        """Close the channels of nodes that left the registry: node churn must not leak them."""
        live = self.selector.addresses()
        for address in [a for a in self._channels if a not in live]:
            channel = self._channels.pop(address)
            for route in self._routes.values():
                route.callables.pop(address, None)
            # Calls still on it finish first: grace, then close.
            closing = asyncio.create_task(channel.close(grace=_CLOSE_GRACE_S))
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)

    async def _first_call(
        self,
        service: str,
        method: str,
        request: Message,
        timeout: float | None,
        metadata: Metadata | None,
    ) -> Any:
        route = await self.route(service, resolve(request, method))
        self._by_request[(service, method, type(request))] = route
        return await self.invoke(route, request, timeout=timeout, metadata=metadata)

    async def _discover(self, service: str) -> None:
        left = deadline.remaining()
        wait = _FIRST_DISCOVERY_S if left is None else min(left, _FIRST_DISCOVERY_S)
        if not await self.selector.wait_ready(service, wait):
            raise ServiceError(Reason.UNAVAILABLE, f"{service} not found in the registry")
        self._ready.add(service)

    async def stop(self) -> None:
        for closing in list(self._closing):
            await closing
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        for route in self._routes.values():
            route.callables.clear()
