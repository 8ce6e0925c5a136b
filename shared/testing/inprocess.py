"""Services in this process on an in-memory registry; everything closes on one stack."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar

import httpx

from shared.breaker import Breakers
from shared.client import Client
from shared.config import ServiceSettings
from shared.lifecycle import Registration
from shared.registry import MemoryRegistry
from shared.runtime import Runtime
from shared.selector import Selector
from shared.server import GrpcServer

L = TypeVar("L")
S = TypeVar("S", bound=ServiceSettings)

AddTo = Callable[[GrpcServer, L], None]


@contextlib.asynccontextmanager
async def http_client(app: Any, base_url: str = "http://test") -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client that calls the ASGI `app` in this process, without a socket."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield client


class Served:
    """A service served in this process; `stop` deregisters, then drains, as on SIGTERM."""

    def __init__(self, server: GrpcServer, registration: Registration) -> None:
        self.server = server
        self._registration = registration

    @property
    def address(self) -> str:
        return self.server.address

    async def stop(self) -> None:
        await self._registration.stop()
        await self.server.stop()


class InProcess:
    def __init__(self, stack: AsyncExitStack) -> None:
        self.registry = MemoryRegistry()
        self._stack = stack
        self._client: Client | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls) -> AsyncIterator[InProcess]:
        async with AsyncExitStack() as stack:
            yield cls(stack)

    async def serve(
        self, name: str, add_to: AddTo[L], logic: L, *, version: str = "test", **options: Any
    ) -> Served:
        """Serve `add_to(server, logic)` as service `name`, registered as `App.run` does."""
        options.setdefault("drain_s", 0)
        server = GrpcServer(name=name, version=version, **options)
        add_to(server, logic)
        await server.start()
        self._stack.push_async_callback(server.stop)
        registration = Registration(self.registry, [server])
        self._stack.push_async_callback(registration.stop)
        await registration.start()
        return Served(server, registration)

    @property
    def client(self) -> Client:
        """The kit's client on this registry (one, closed with the rest)."""
        if self._client is None:
            selector = Selector(self.registry)
            self._stack.push_async_callback(selector.stop)
            self._client = Client(selector, Breakers())
            self._stack.push_async_callback(self._client.stop)
        return self._client

    async def runtime(self, settings: S) -> Runtime[S]:
        """A service's runtime on this registry; settings should say `nats_url="memory://"`
        and `use_config_service=False` unless the test serves a config service."""
        return await Runtime.build(settings, self._stack, registry=self.registry)

    async def http(self, app: Any, base_url: str = "http://test") -> httpx.AsyncClient:
        """An HTTP client for the ASGI `app`, closed with the rest."""
        return await self._stack.enter_async_context(http_client(app, base_url))
