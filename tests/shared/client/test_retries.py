"""Retries: safe methods only, another node only, on UNAVAILABLE only, at most N times,
within the deadline. GetUser is NO_SIDE_EFFECTS in the .proto; CreateUser is not marked."""

from __future__ import annotations

import pytest

from shared import deadline
from shared.errors import Reason, ServiceError
from shared.proto.user.v1 import user_pb2
from tests.support.grpc_nodes import (
    SERVICE,
    Nodes,
    get_user,
    not_found,
    slow,
    slow_then_unavailable,
    unavailable,
)


async def test_a_safe_call_to_an_unreachable_node_is_served_by_another(nodes: Nodes) -> None:
    await nodes.dead("a")
    b = await nodes.start("b")
    client = nodes.client()

    replies = [await client.call(SERVICE, "GetUser", get_user()) for _ in range(6)]

    assert [reply.user.name for reply in replies] == ["b"] * 6
    assert len(b.calls) == 6


async def test_the_retry_goes_to_a_different_node(nodes: Nodes) -> None:
    a = await nodes.start("a", answer=unavailable)
    b = await nodes.start("b")
    client = nodes.client()

    reply = await client.call(SERVICE, "GetUser", get_user())

    assert reply.user.name == "b"
    assert (a.calls, b.calls) == (["GetUser"], ["GetUser"])


async def test_a_method_not_marked_safe_is_not_retried(nodes: Nodes) -> None:
    a = await nodes.start("a", answer=unavailable)
    b = await nodes.start("b")
    client = nodes.client()

    with pytest.raises(ServiceError) as caught:
        await client.call(SERVICE, "CreateUser", user_pb2.CreateUserRequest(name="ada"))

    assert caught.value.reason is Reason.UNAVAILABLE
    assert (a.calls, b.calls) == (["CreateUser"], [])


async def test_a_business_error_is_not_retried(nodes: Nodes) -> None:
    a = await nodes.start("a", answer=not_found)
    b = await nodes.start("b")
    client = nodes.client()

    with pytest.raises(ServiceError) as caught:
        await client.call(SERVICE, "GetUser", get_user())

    assert caught.value.reason is Reason.NOT_FOUND
    assert (len(a.calls), len(b.calls)) == (1, 0)


async def test_a_timeout_is_not_retried(nodes: Nodes) -> None:
    a = await nodes.start("a", answer=slow(10))
    b = await nodes.start("b")
    client = nodes.client()

    with deadline.budget(0.1), pytest.raises(ServiceError) as caught:
        await client.call(SERVICE, "GetUser", get_user())

    assert caught.value.reason is Reason.TIMEOUT
    assert (len(a.calls), len(b.calls)) == (1, 0)


@pytest.mark.parametrize(("max_retries", "attempts"), [(0, 1), (1, 2), (2, 3)])
async def test_at_most_max_retries_other_nodes_are_tried(
    nodes: Nodes, max_retries: int, attempts: int
) -> None:
    failing = [await nodes.start(name, answer=unavailable) for name in "abcd"]
    client = nodes.client(max_retries=max_retries)

    with pytest.raises(ServiceError) as caught:
        await client.call(SERVICE, "GetUser", get_user())

    assert caught.value.reason is Reason.UNAVAILABLE
    # Each attempt on a node not tried before.
    assert sorted(len(node.calls) for node in failing) == [0] * (4 - attempts) + [1] * attempts


async def test_the_default_is_two_retries(nodes: Nodes) -> None:
    for name in "abcd":
        await nodes.dead(name)
    client = nodes.client()

    with pytest.raises(ServiceError) as caught:
        await client.call(SERVICE, "GetUser", get_user())

    assert caught.value.reason is Reason.UNAVAILABLE
    assert client.breakers.snapshot()[f"{SERVICE}.GetUser"]["counts"]["failure"] == 3


async def test_with_no_other_node_the_node_s_error_is_raised(nodes: Nodes) -> None:
    a = await nodes.start("a", answer=unavailable)
    client = nodes.client()

    with pytest.raises(ServiceError) as caught:
        await client.call(SERVICE, "GetUser", get_user())

    assert caught.value.reason is Reason.UNAVAILABLE
    assert "a cannot serve" in caught.value.message
    assert len(a.calls) == 1


async def test_a_retry_gets_only_what_is_left_of_the_deadline(nodes: Nodes) -> None:
    await nodes.start("a", answer=slow_then_unavailable(0.2))
    b = await nodes.start("b")
    client = nodes.client()

    with deadline.budget(0.3):
        reply = await client.call(SERVICE, "GetUser", get_user())

    assert reply.user.name == "b"
    [left] = b.time_remaining
    assert left is not None
    assert 0.0 < left <= 0.11


async def test_an_explicit_timeout_bounds_the_retries_too(nodes: Nodes) -> None:
    await nodes.start("a", answer=slow_then_unavailable(0.2))
    b = await nodes.start("b")
    client = nodes.client()

    await client.call(SERVICE, "GetUser", get_user(), timeout=0.3)

    [left] = b.time_remaining
    assert left is not None
    assert 0.0 < left <= 0.11
