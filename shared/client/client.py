"""`Client.call(service, method, request)`: selector → breaker → deadline → node.

The hot path does dictionary look-ups and one breaker run per attempt; it never talks
to the registry (the selector serves its cache) and reuses one channel per node.
Safe methods (see `Endpoint.safe`) are retried on another node when a node could not
be reached, while the caller's deadline allows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf.message import Message

from shared import deadline
from shared.breaker import Breakers, Command
from shared.client.endpoint import Endpoint, resolve
from shared.errors import Reason, ServiceError
from shared.selector import NodeState, Selector

log = logging.getLogger(__name__)

Metadata = Sequence[tuple[str, str]]

_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.keepalive_time_ms", 10000),
]
# Waiting for the first registry snapshot of a service is bounded even without a deadline.
_FIRST_DISCOVERY_S = 5.0


class Client:
    def __init__(
        self,
        selector: Selector,
        breakers: Breakers,
        *,
        max_retries: int = 2,
        default_timeout_s: float | None = None,
    ) -> None:
        self.selector = selector
        self.breakers = breakers
        self.max_retries = max_retries
        self.default_timeout_s = default_timeout_s
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._callables: dict[tuple[str, str], grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}
        self._endpoints: dict[tuple[type[Message], str], Endpoint] = {}
        self._commands: dict[tuple[str, str], Command] = {}
        self._ready: set[str] = set()

    async def call(
        self,
        service: str,
        method: str,
        request: Message,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> Any:
        """Call `method` of a node of `service`; the response message, or a `ServiceError`."""
        key = (type(request), method)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = resolve(request, method)
        return await self.invoke(service, endpoint, request, timeout=timeout, metadata=metadata)

    def channel(self, service: str) -> grpc.aio.Channel:
        """A channel for generated stubs: `UserServiceStub(client.channel("user_service"))`."""
        from shared.client.channel import ServiceChannel

        return ServiceChannel(self, service)

    async def invoke(
        self,
        service: str,
        endpoint: Endpoint,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Metadata = (),
    ) -> Any:
        if service not in self._ready:
            await self._discover(service)
        command = self._commands.get((service, endpoint.method))
        if command is None:
            command = self._command(service, endpoint.method)
        if timeout is None:
            timeout = self.default_timeout_s
        tried: list[str] = []
        while True:
            node = self.selector.pick(service, tried)
            budget = deadline.remaining()
            if timeout is not None and (budget is None or timeout < budget):
                budget = timeout

            async def attempt(seconds: float, node: NodeState = node) -> Any:
                return await self._unary(node, endpoint, request, seconds, metadata)

            try:
                return await command.run(attempt, budget_s=budget)
            except ServiceError as error:
                if not self._may_retry(endpoint, error, len(tried)):
                    raise
                tried.append(node.node.id)
                if len(tried) >= len(self.selector.nodes(service)):
                    raise
                log.info("retrying %s on another node after %s", command.name, error.reason)

    def _may_retry(self, endpoint: Endpoint, error: ServiceError, retries: int) -> bool:
        if not endpoint.safe or error.reason is not Reason.UNAVAILABLE:
            return False
        left = deadline.remaining()
        return retries < self.max_retries and (left is None or left > 0)

    async def _unary(
        self, state: NodeState, endpoint: Endpoint, request: Any, timeout: float, metadata: Metadata
    ) -> Any:
        address = state.node.address
        multicallable = self._callables.get((address, endpoint.path))
        if multicallable is None:
            multicallable = self._callable(address, endpoint)
        state.in_flight += 1
        try:
            response = await multicallable(request, timeout=timeout, metadata=metadata or None)
        except grpc.aio.AioRpcError as rpc_error:
            error = ServiceError.from_rpc_error(rpc_error)
            if rpc_error.code() is grpc.StatusCode.UNAVAILABLE:
                self.selector.report(state, transport_ok=False)
            raise error from None
        finally:
            state.in_flight -= 1
        if state.consecutive_failures:
            self.selector.report(state, transport_ok=True)
        return response

    def node_channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(
                address, options=_CHANNEL_OPTIONS
            )
        return channel

    def _callable(
        self, address: str, endpoint: Endpoint
    ) -> grpc.aio.UnaryUnaryMultiCallable[Any, Any]:
        multicallable = self.node_channel(address).unary_unary(
            endpoint.path,
            request_serializer=endpoint.serialize,
            response_deserializer=endpoint.deserialize,
        )
        self._callables[(address, endpoint.path)] = multicallable
        return multicallable

    def _command(self, service: str, method: str) -> Command:
        command = self._commands[(service, method)] = self.breakers.command(f"{service}.{method}")
        return command

    async def _discover(self, service: str) -> None:
        left = deadline.remaining()
        wait = _FIRST_DISCOVERY_S if left is None else min(left, _FIRST_DISCOVERY_S)
        if not await self.selector.wait_ready(service, wait):
            raise ServiceError(Reason.UNAVAILABLE, f"{service} not found in the registry")
        self._ready.add(service)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._callables.clear()
