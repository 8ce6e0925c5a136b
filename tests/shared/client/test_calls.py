"""`Client.call` and stubs on `client.channel()` against real in-process grpc.aio nodes."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from shared import deadline
from shared.errors import Reason, ServiceError
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from tests.support.grpc_nodes import SERVICE, Nodes, get_user, not_found, slow, unavailable


async def test_call_returns_the_node_s_response(nodes: Nodes) -> None:
    await nodes.start("a")
    client = nodes.client()

    reply = await client.call(SERVICE, "GetUser", get_user(42))

    assert (reply.user.id, reply.user.name) == (42, "a")


async def test_a_generated_stub_on_the_client_s_channel_goes_through_the_same_guard(
    nodes: Nodes,
) -> None:
    await nodes.start("a", answer=unavailable)
    await nodes.start("b")
    client = nodes.client()
    stub = user_pb2_grpc.UserServiceStub(client.channel(SERVICE))

    replies = [await stub.GetUser(get_user(1)) for _ in range(4)]

    assert {reply.user.name for reply in replies} == {"b"}  # "a" failed; retried on "b"
    counts = client.breakers.snapshot()[f"{SERVICE}.GetUser"]["counts"]
    assert (counts["success"], counts["failure"]) == (4, 2)


async def test_round_robin_spreads_calls_over_the_nodes(nodes: Nodes) -> None:
    a, b = await nodes.start("a"), await nodes.start("b")
    client = nodes.client()

    for _ in range(6):
        await client.call(SERVICE, "GetUser", get_user())

    assert (len(a.calls), len(b.calls)) == (3, 3)


async def test_a_business_error_comes_back_as_itself_and_is_no_breaker_failure(
    nodes: Nodes,
) -> None:
    await nodes.start("a", answer=not_found)
    client = nodes.client()

    for _ in range(25):
        with pytest.raises(ServiceError) as caught:
            await client.call(SERVICE, "GetUser", get_user())
        assert caught.value.reason is Reason.NOT_FOUND

    snapshot = client.breakers.snapshot()[f"{SERVICE}.GetUser"]
    assert snapshot["state"] == "closed"
    assert snapshot["error_percent"] == 0.0


async def test_a_method_the_request_does_not_belong_to_is_refused_without_a_call(
    nodes: Nodes,
) -> None:
    node = await nodes.start("a")
    client = nodes.client()

    with pytest.raises(ServiceError) as caught:
        await client.call(SERVICE, "CreateUser", get_user())

    assert caught.value.reason is Reason.INVALID_ARGUMENT
    assert node.calls == []


async def test_a_service_missing_from_the_registry_fails_unavailable_within_the_budget(
    nodes: Nodes,
) -> None:
    client = nodes.client()

    started = time.monotonic()
    with deadline.budget(0.2), pytest.raises(ServiceError) as caught:
        await client.call("nowhere", "GetUser", get_user())

    assert caught.value.reason is Reason.UNAVAILABLE
    assert time.monotonic() - started < 0.5


async def test_the_breaker_timeout_cancels_a_slow_call_on_both_sides(nodes: Nodes) -> None:
    node = await nodes.start("a", answer=slow(10))
    client = nodes.client()
    client.breakers.configure(f"{SERVICE}.GetUser", timeout_ms=150)

    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        await client.call(SERVICE, "GetUser", get_user())
    elapsed = time.monotonic() - started

    assert caught.value.reason is Reason.TIMEOUT
    assert 0.15 <= elapsed < 0.25
    async with asyncio.timeout(1):
        await node.cancelled.wait()
    assert node.cancelled_after[0] < 0.25


async def test_the_bulkhead_rejects_calls_beyond_its_limit_at_once(nodes: Nodes) -> None:
    await nodes.start("a", answer=slow(0.3))
    client = nodes.client()
    client.breakers.configure(f"{SERVICE}.GetUser", max_concurrent_requests=3)
    held = [asyncio.create_task(client.call(SERVICE, "GetUser", get_user())) for _ in range(3)]
    await asyncio.sleep(0)  # let the three start

    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        await client.call(SERVICE, "GetUser", get_user())

    assert caught.value.reason is Reason.REJECTED
    assert time.monotonic() - started < 0.01
    assert all(r.user.name == "a" for r in await asyncio.gather(*held))


async def test_create_user_reaches_a_node(nodes: Nodes) -> None:
    await nodes.start("a")
    client = nodes.client()

    reply = await client.call(SERVICE, "CreateUser", user_pb2.CreateUserRequest(name="ada"))

    assert reply.user.name == "ada"


async def test_the_channel_of_a_node_that_left_the_registry_is_closed(nodes: Nodes) -> None:
    await nodes.start("a")
    await nodes.start("b")
    client = nodes.client()
    for _ in range(2):
        await client.call(SERVICE, "GetUser", get_user())
    [first, second] = client.selector.nodes(SERVICE)
    assert (first.id, second.id) == (f"{SERVICE}-a", f"{SERVICE}-b")
    kept = client.node_channel(first.address)
    gone = client.node_channel(second.address)
    changed = asyncio.Event()
    client.selector.on_change(changed.set)

    await nodes.registry.deregister(second)
    await asyncio.wait_for(changed.wait(), 5)

    async def shut_down(channel: grpc.aio.Channel) -> None:
        while (state := channel.get_state()) is not grpc.ChannelConnectivity.SHUTDOWN:
            await channel.wait_for_state_change(state)

    await asyncio.wait_for(shut_down(gone), 5)
    assert kept.get_state() is not grpc.ChannelConnectivity.SHUTDOWN
    assert (await client.call(SERVICE, "GetUser", get_user())).user.name == "a"
