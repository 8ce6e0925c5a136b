"""The server's chain of middleware: a link of your own, inside the kit's links."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from shared import deadline
from shared.errors import REASON_METADATA_KEY, Reason, ServiceError
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.server import GrpcServer, Handler
from shared.server.metrics import HANDLED
from tests.support.grpc_nodes import FakeNode

SEEN: list[float | None] = []


def require_tenant(next: Handler) -> Handler:
    """Refuse calls without an `x-tenant` header; note the budget the link runs under."""

    async def handler(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        SEEN.append(deadline.remaining())
        if "x-tenant" not in dict(context.invocation_metadata() or ()):
            raise ServiceError(Reason.INVALID_ARGUMENT, "no tenant")
        return await next(request, context)

    return handler


@pytest.fixture
async def stub() -> AsyncIterator[user_pb2_grpc.UserServiceAsyncStub]:
    server = GrpcServer(
        name="user_service",
        version="test",
        drain_s=0,
        middleware=[require_tenant],
    )
    server.add_service(
        user_pb2_grpc.add_UserServiceServicer_to_server,
        FakeNode("a"),
        user_pb2.DESCRIPTOR.services_by_name["UserService"],
    )
    node = await server.start()
    async with grpc.aio.insecure_channel(node.address) as channel:
        yield user_pb2_grpc.UserServiceStub(channel)
    await server.stop()


async def test_a_link_of_your_own_runs_inside_the_deadline_and_error_links(
    stub: user_pb2_grpc.UserServiceAsyncStub,
) -> None:
    SEEN.clear()
    method = "/user.v1.UserService/GetUser"
    refused = HANDLED.labels(method, "INVALID_ARGUMENT")
    before = refused._value.get()

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.GetUser(user_pb2.GetUserRequest(id=1), timeout=5)
    reply = await stub.GetUser(
        user_pb2.GetUserRequest(id=2), timeout=5, metadata=(("x-tenant", "acme"),)
    )

    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    trailers = dict(raised.value.trailing_metadata() or ())
    assert trailers[REASON_METADATA_KEY] == "INVALID_ARGUMENT"
    assert refused._value.get() == before + 1  # the metrics link saw the mapped status
    assert reply.user.id == 2
    assert len(SEEN) == 2, SEEN
    assert all(left is not None and 0 < left < 6 for left in SEEN), SEEN  # the 5 s sent
