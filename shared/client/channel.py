"""A grpc.aio.Channel that routes through the kit's client, for generated stubs.

`UserServiceStub(client.channel("user_service")).GetUser(request)` is typed by the
generated code and goes through the selector, breaker, deadline and retries. Server
streams pick one node and are not guarded by the breaker: they are long-lived by design.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from shared import deadline
from shared.client.endpoint import Endpoint
from shared.client.route import Route

if TYPE_CHECKING:
    from shared.client.client import Client


class _UnaryUnary:
    def __init__(self, client: Client, service: str, endpoint: Endpoint) -> None:
        self._client = client
        self._service = service
        self._endpoint = endpoint
        self._route: Route | None = None

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        **_: Any,
    ) -> Any:
        # Returns the coroutine, as a grpc.aio multicallable returns an awaitable call.
        if self._route is None:
            return self._first(request, timeout, metadata)
        return self._client.invoke(self._route, request, timeout=timeout, metadata=metadata)

    async def _first(self, request: Any, timeout: float | None, metadata: Any) -> Any:
        self._route = await self._client.route(self._service, self._endpoint)
        return await self._client.invoke(self._route, request, timeout=timeout, metadata=metadata)


class _UnaryStream:
    def __init__(self, client: Client, service: str, endpoint: Endpoint) -> None:
        self._client = client
        self._service = service
        self._endpoint = endpoint

    def __call__(
        self, request: Any, *, timeout: float | None = None, metadata: Any = None, **_: Any
    ) -> Any:
        node = self._client.selector.pick(self._service)
        stream = self._client.node_channel(node.node.address, self._service).unary_stream(
            self._endpoint.path,
            request_serializer=self._endpoint.serialize,
            response_deserializer=self._endpoint.deserialize,
        )
        return stream(request, timeout=timeout or deadline.remaining(), metadata=metadata)


class ServiceChannel(grpc.aio.Channel):
    def __init__(self, client: Client, service: str) -> None:
        self._client = client
        self._service = service

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> Any:
        endpoint = Endpoint.from_path(method, request_serializer, response_deserializer)
        return _UnaryUnary(self._client, self._service, endpoint)

    def unary_stream(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> Any:
        endpoint = Endpoint.from_path(method, request_serializer, response_deserializer)
        return _UnaryStream(self._client, self._service, endpoint)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("client streaming is not routed by the kit")

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("bidirectional streaming is not routed by the kit")

    async def __aenter__(self) -> ServiceChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def close(self, grace: float | None = None) -> None:
        """The node channels belong to the client; closing this view closes nothing."""

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return grpc.ChannelConnectivity.READY

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        return None

    async def channel_ready(self) -> None:
        return None
