"""In-process user_service nodes for client tests: real grpc.aio servers on 127.0.0.1:0,
registered in a `MemoryRegistry`, each doing what the test tells it and recording what it saw.

    async def test_x(nodes: Nodes) -> None:  # nodes: a fixture around `running_nodes()`
        node = await nodes.start("a", answer=unavailable)
        client = nodes.client()
        await client.call("user_service", "GetUser", GetUserRequest(id=1))
        assert node.calls == ["GetUser"]
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from prometheus_client import CollectorRegistry

from shared import deadline
from shared.breaker import BreakerMetrics, Breakers
from shared.client import Client
from shared.errors import Reason, ServiceError
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.registry import MemoryRegistry, ServiceNode
from shared.selector import Selector, Strategy
from shared.server import GrpcServer
from tests.support.ports import free_port

SERVICE = "user_service"
Context = grpc.aio.ServicerContext[Any, Any]
Answer = Callable[["FakeNode", Any], Awaitable[None]]


async def ok(node: FakeNode, request: Any) -> None:
    """Answer at once."""


async def unavailable(node: FakeNode, request: Any) -> None:
    """The node answers, saying it cannot serve (as a node whose own store is down)."""
    raise ServiceError(Reason.UNAVAILABLE, f"{node.name} cannot serve")


async def not_found(node: FakeNode, request: Any) -> None:
    raise ServiceError(Reason.NOT_FOUND, "no such user")


def slow(seconds: float) -> Answer:
    async def answer(node: FakeNode, request: Any) -> None:
        await asyncio.sleep(seconds)

    return answer


def slow_then_unavailable(seconds: float) -> Answer:
    async def answer(node: FakeNode, request: Any) -> None:
        await asyncio.sleep(seconds)
        await unavailable(node, request)

    return answer


@dataclass(eq=False)
class FakeNode(user_pb2_grpc.UserServiceServicer):
    name: str
    answer: Answer = ok
    calls: list[str] = field(default_factory=list)
    # What the handler saw of its caller's deadline: gRPC's view, and the kit's budget.
    time_remaining: list[float | None] = field(default_factory=list)
    budget: list[float | None] = field(default_factory=list)
    cancelled_after: list[float] = field(default_factory=list)
    metadata: list[dict[str, str | bytes]] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    server: GrpcServer | None = None

    async def _handle(self, method: str, request: Any, context: Context) -> None:
        started = time.monotonic()
        self.calls.append(method)
        self.time_remaining.append(context.time_remaining())
        self.budget.append(deadline.remaining())
        self.metadata.append(dict(context.invocation_metadata() or ()))
        self.called.set()
        try:
            await self.answer(self, request)
        except asyncio.CancelledError:
            self.cancelled_after.append(time.monotonic() - started)
            self.cancelled.set()
            raise

    async def GetUser(self, request: Any, context: Context) -> Any:
        await self._handle("GetUser", request, context)
        return user_pb2.GetUserResponse(user=user_pb2.User(id=request.id, name=self.name))

    async def CreateUser(self, request: Any, context: Context) -> Any:
        await self._handle("CreateUser", request, context)
        return user_pb2.CreateUserResponse(user=user_pb2.User(id=1, name=request.name))

    async def VerifyCredentials(self, request: Any, context: Context) -> Any:
        await self._handle("VerifyCredentials", request, context)
        return user_pb2.VerifyCredentialsResponse(user=user_pb2.User(id=1, name=self.name))


class Nodes:
    def __init__(self) -> None:
        self.registry = MemoryRegistry()
        self._servers: list[GrpcServer] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []

    async def start(
        self, name: str, answer: Answer = ok, service: str = SERVICE, **server_options: Any
    ) -> FakeNode:
        """A node serving UserService, registered under `service` with id `<service>-<name>`
        (the selector orders nodes by id, so names decide which round robin picks first);
        `server_options` go to its `GrpcServer`."""
        node = FakeNode(name, answer)
        server = GrpcServer(name=service, version="test", drain_s=0, **server_options)
        server.add_service(
            user_pb2_grpc.add_UserServiceServicer_to_server,
            node,
            user_pb2.DESCRIPTOR.services_by_name["UserService"],
        )
        started = await server.start()
        # The server names its node with a random id; register it under a readable one.
        server.node = ServiceNode(service, f"{service}-{name}", started.address, "test")
        await self.registry.register(server.node)
        await server.set_serving(True)
        node.server = server
        self._servers.append(server)
        return node

    async def dead(self, name: str, service: str = SERVICE) -> ServiceNode:
        """A registered node where nothing listens: connections are refused."""
        node = ServiceNode(service, f"{service}-{name}", f"127.0.0.1:{free_port()}", "test")
        await self.registry.register(node)
        return node

    def client(
        self, strategy: Strategy = Strategy.ROUND_ROBIN, breakers: Breakers | None = None, **kw: Any
    ) -> Client:
        selector = Selector(self.registry, strategy=strategy)
        breakers = breakers or Breakers(metrics=BreakerMetrics(CollectorRegistry()))
        client = Client(selector, breakers, **kw)

        async def close() -> None:
            await client.stop()
            await selector.stop()

        self._closers.append(close)
        return client

    async def close(self) -> None:
        for close in self._closers:
            await close()
        for server in self._servers:
            await server.stop()


@contextlib.asynccontextmanager
async def running_nodes() -> AsyncIterator[Nodes]:
    """For a fixture: every node and client made through it is closed afterwards."""
    cluster = Nodes()
    try:
        yield cluster
    finally:
        await cluster.close()


def get_user(user_id: int = 7) -> user_pb2.GetUserRequest:
    return user_pb2.GetUserRequest(id=user_id)
