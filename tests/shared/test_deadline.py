"""Deadlines: the caller's budget travels as the gRPC deadline, as observed by the server,
the smaller of budget and breaker timeout wins, and a server stops working at the deadline."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared import deadline
from shared.errors import Reason, ServiceError
from tests.support.grpc_nodes import SERVICE, FakeNode, Nodes, get_user, running_nodes, slow


@pytest.fixture
async def nodes() -> AsyncIterator[Nodes]:
    async with running_nodes() as cluster:
        yield cluster


def test_there_is_no_budget_unless_one_is_opened() -> None:
    assert deadline.remaining() is None
    with deadline.budget(None):
        assert deadline.remaining() is None


def test_an_inner_budget_never_extends_an_outer_one() -> None:
    with deadline.budget(0.5):
        with deadline.budget(10):
            left = deadline.remaining()
            assert left is not None
            assert 0.4 < left <= 0.5
        with deadline.budget(0.1):
            left = deadline.remaining()
            assert left is not None
            assert left <= 0.1
    assert deadline.remaining() is None


# gRPC rounds a timeout up when it encodes it (to 10 ms steps above one second): a server
# may see slightly more than was sent.
ROUNDING_S = 0.015


def seen(node: FakeNode) -> tuple[float, float]:
    """What the node's handler saw: gRPC's time remaining, and the kit's budget there."""
    [grpc_left], [budget] = node.time_remaining, node.budget
    assert grpc_left is not None
    assert budget is not None
    return grpc_left, budget


async def test_the_caller_s_budget_reaches_the_server_as_its_deadline(nodes: Nodes) -> None:
    node = await nodes.start("a")
    client = nodes.client()
    await client.call(SERVICE, "GetUser", get_user())  # connect first: only the budget counts
    node.time_remaining.clear()
    node.budget.clear()

    with deadline.budget(0.6):
        await client.call(SERVICE, "GetUser", get_user())

    grpc_left, budget = seen(node)
    assert 0.5 < grpc_left <= 0.6 + ROUNDING_S
    # The server's handler runs under the same budget, for the calls it makes in turn.
    assert 0.5 < budget <= 0.6 + ROUNDING_S


async def test_the_breaker_timeout_is_the_deadline_when_it_is_smaller(nodes: Nodes) -> None:
    node = await nodes.start("a")
    client = nodes.client()
    client.breakers.configure(f"{SERVICE}.GetUser", timeout_ms=200)

    with deadline.budget(5):
        await client.call(SERVICE, "GetUser", get_user())

    assert 0.1 < seen(node)[0] <= 0.2 + ROUNDING_S


async def test_without_a_budget_the_breaker_timeout_is_the_deadline(nodes: Nodes) -> None:
    node = await nodes.start("a")
    client = nodes.client()

    await client.call(SERVICE, "GetUser", get_user())

    assert 0.9 < seen(node)[0] <= 1.0 + ROUNDING_S


async def test_what_is_left_travels_on_through_a_middle_service(nodes: Nodes) -> None:
    client = nodes.client()
    back = await nodes.start("back", service="back")

    async def call_back(node: FakeNode, request: Any) -> None:
        await asyncio.sleep(0.1)  # the middle service's own work
        await client.call("back", "GetUser", get_user())

    middle = await nodes.start("middle", answer=call_back)

    with deadline.budget(0.8):
        await client.call(SERVICE, "GetUser", get_user())

    assert seen(middle)[0] <= 0.8 + ROUNDING_S
    assert 0.5 < seen(back)[0] <= 0.7 + ROUNDING_S


async def test_a_spent_budget_fails_without_reaching_a_node(nodes: Nodes) -> None:
    node = await nodes.start("a")
    client = nodes.client()
    await client.call(SERVICE, "GetUser", get_user())

    with deadline.budget(0), pytest.raises(ServiceError) as caught:
        await client.call(SERVICE, "GetUser", get_user())

    assert caught.value.reason is Reason.TIMEOUT
    assert len(node.calls) == 1


async def test_the_server_stops_working_on_a_call_at_its_deadline(nodes: Nodes) -> None:
    node = await nodes.start("a", answer=slow(10))
    client = nodes.client()

    with deadline.budget(0.2), pytest.raises(ServiceError) as caught:
        await client.call(SERVICE, "GetUser", get_user())

    assert caught.value.reason is Reason.TIMEOUT
    async with asyncio.timeout(1):
        await node.cancelled.wait()
    assert 0.15 < node.cancelled_after[0] < 0.3


FROZEN_CALLER = textwrap.dedent(
    """
    import asyncio, sys
    import grpc
    from shared.proto.user.v1 import user_pb2, user_pb2_grpc

    async def main():
        channel = grpc.aio.insecure_channel(sys.argv[1])
        await channel.channel_ready()
        stub = user_pb2_grpc.UserServiceStub(channel)
        await stub.GetUser(user_pb2.GetUserRequest(id=1), timeout=float(sys.argv[2]))

    asyncio.run(main())
    """
)


async def test_the_server_enforces_the_deadline_even_when_the_caller_cannot(
    nodes: Nodes,
) -> None:
    node = await nodes.start("a", answer=slow(10))
    assert node.server is not None
    assert node.server.node is not None
    caller = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FROZEN_CALLER, node.server.node.address, "0.4"
    )
    try:
        async with asyncio.timeout(10):
            await node.called.wait()
        # A frozen caller never sends its cancellation: only the server's own timer can.
        os.kill(caller.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        async with asyncio.timeout(2):
            await node.cancelled.wait()
        assert time.monotonic() - frozen < 0.45
        assert 0.35 < node.cancelled_after[0] < 0.5
    finally:
        # SIGKILL ends a stopped process too. A SIGCONT after it raced the reaping of the
        # child and failed with ProcessLookupError once in CI.
        caller.kill()
        await caller.wait()
