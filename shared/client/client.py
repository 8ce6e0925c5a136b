"""`Client.call(service, method, request)`: selector → breaker → deadline → node.

The hot path does one dictionary look-up, one selector pick and one breaker run per
attempt; it never talks to the registry (the selector serves its cache) and reuses one
channel per node. What a (service, method) needs is resolved once into a `Route`.
Retryable methods (see `Endpoint.retryable`) are retried on another node when a node could not be
reached or answered UNAVAILABLE, at most `max_retries` times and while the caller's
deadline allows; never after a timeout (the node may still be working on it) or a
business error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from functools import partial
from typing import Any

import grpc
from google.protobuf.message import Message

from shared import deadline
from shared.breaker import Breakers
from shared.client.endpoint import Endpoint, resolve
from shared.client.route import Route, unreachable
from shared.errors import Reason, ServiceError
from shared.selector import NodeState, Selector
from shared.tracing import (
    Tracing,
    annotate_breaker,
    client_span,
    mark_rejected,
    mark_short_circuited,
    mark_timeout,
)

log = logging.getLogger(__name__)

Metadata = Sequence[tuple[str, str]]

_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 10000),
]
_CLOSE_GRACE_S = 5.0
# Waiting for the first registry snapshot of a service is bounded even without a deadline.
_FIRST_DISCOVERY_S = 5.0


class Client:
    """`timeout` (per call, else `default_timeout_s`) bounds the whole call, retries
    included, like a deadline; the breaker's own timeout bounds each attempt; the
    smallest of those and the caller's deadline is what the node is given."""

    def __init__(
        self,
        selector: Selector,
        breakers: Breakers,
        *,
        max_retries: int = 2,
        default_timeout_s: float | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.selector = selector
        self.tracing = tracing or Tracing.disabled()
        self.breakers = breakers
        self.max_retries = max_retries
        self.default_timeout_s = default_timeout_s
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

    async def route(self, service: str, endpoint: Endpoint) -> Route:
        """The route of `endpoint` on `service`, once the registry has been read."""
        if service not in self._ready:
            await self._discover(service)
        route = self._routes.get((service, endpoint))
        if route is None:
            command = self.breakers.command(f"{service}.{endpoint.method}")
            route = self._routes[(service, endpoint)] = Route(service, endpoint, command)
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
        budget = deadline.remaining()
        give_up = None
        if timeout is not None:
            give_up = time.monotonic() + timeout
            if budget is None or timeout < budget:
                budget = timeout
        node = self.selector.pick(route.service)
        try:
            return await self._attempt(node, route, request, metadata, budget)
        except ServiceError as error:
            if error.reason is not Reason.UNAVAILABLE or not route.endpoint.retryable:
                raise
            return await self._retry(route, request, metadata, error, node, give_up)

    async def _retry(
        self,
        route: Route,
        request: Any,
        metadata: Metadata | None,
        error: ServiceError,
        node: NodeState,
        give_up: float | None,
    ) -> Any:
        """Try other nodes after `node` failed with UNAVAILABLE; re-raise the last such
        error when retries, nodes or time run out."""
        tried = [node.node.id]
        while len(tried) <= self.max_retries:
            budget = deadline.remaining()
            if give_up is not None:
                left = give_up - time.monotonic()
                budget = left if budget is None else min(budget, left)
            if budget is not None and budget <= 0:
                break
            try:
                node = self.selector.pick(route.service, tried)
            except ServiceError:
                break  # no other node
            log.info("retrying %s on %s after %s", route.command.name, node.node.id, error)
            try:
                return await self._attempt(node, route, request, metadata, budget)
            except ServiceError as again:
                if again.reason is not Reason.UNAVAILABLE:
                    raise
                error = again
            tried.append(node.node.id)
        raise error

    async def _attempt(
        self,
        node: NodeState,
        route: Route,
        request: Any,
        metadata: Metadata | None,
        budget: float | None,
    ) -> Any:
        """One guarded call to `node`, in a CLIENT span that shows the breaker's decision."""
        endpoint = route.endpoint
        command = route.command
        peer = node.node.address
        with client_span(self.tracing, route.service, endpoint.method, endpoint.path, peer) as (
            span,
            outgoing,
        ):
            if outgoing:
                metadata = (*metadata, *outgoing) if metadata else outgoing
            if span.is_recording():
                annotate_breaker(span, command.name, command.state)
            try:
                # The gRPC deadline is the timeout: it cancels the call on both sides.
                return await command.run(
                    partial(self._unary, node, route, request, metadata),
                    budget_s=budget,
                    self_timed=True,
                )
            except ServiceError as error:
                if error.reason is Reason.CIRCUIT_OPEN:
                    mark_short_circuited(span, command.name)
                elif error.reason is Reason.REJECTED:
                    mark_rejected(span, command.name)
                elif error.reason is Reason.TIMEOUT:
                    timeout = command.settings.timeout_ms / 1000
                    mark_timeout(
                        span, command.name, timeout if budget is None else min(timeout, budget)
                    )
                raise

    async def _unary(
        self,
        state: NodeState,
        route: Route,
        request: Any,
        metadata: Metadata | None,
        timeout: float,
    ) -> Any:
        address = state.node.address
        multicallable = route.callables.get(address)
        if multicallable is None:
            multicallable = route.callables[address] = route.bind(self.node_channel(address))
        state.in_flight += 1
        try:
            response = await multicallable(request, timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as rpc_error:
            if unreachable(rpc_error):
                self.selector.report(state, transport_ok=False)
            raise ServiceError.from_rpc_error(rpc_error) from None
        finally:
            state.in_flight -= 1
        if state.suspect:
            self.selector.report(state, transport_ok=True)
        return response

    def node_channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(
                address, options=_CHANNEL_OPTIONS
            )
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

    async def close(self) -> None:
        for closing in list(self._closing):
            await closing
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        for route in self._routes.values():
            route.callables.clear()
