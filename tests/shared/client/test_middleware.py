"""The client's chain of middleware: links of your own, and the kit's metrics link."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from shared.client import Call, ClientMetrics, Handler
from shared.errors import ServiceError
from shared.middleware import chain
from tests.support.grpc_nodes import SERVICE, Nodes, get_user, not_found, unavailable


def tenant(next: Handler) -> Handler:
    """A header on every call: the example of the README."""

    def handler(call: Call) -> Awaitable[Any]:
        call.add_metadata(("x-tenant", "acme"))
        return next(call)

    return handler


async def test_a_link_of_your_own_adds_a_header_to_every_call(nodes: Nodes) -> None:
    node = await nodes.start("a")
    client = nodes.client()
    await client.call(SERVICE, "GetUser", get_user(1))  # a route composed before `use`

    client.use(tenant)
    await client.call(SERVICE, "GetUser", get_user(2))
    await client.call(SERVICE, "GetUser", get_user(3), metadata=[("x-user", "7")])

    assert [m.get("x-tenant") for m in node.metadata] == [None, "acme", "acme"]
    assert node.metadata[2]["x-user"] == "7"


async def test_links_given_to_the_client_run_once_per_call_outside_the_retries(
    nodes: Nodes,
) -> None:
    await nodes.start("a", answer=unavailable)
    b = await nodes.start("b")
    seen: list[int] = []

    def count(next: Handler) -> Handler:
        async def handler(call: Call) -> Any:
            seen.append(call.request.id)
            return await next(call)

        return handler

    client = nodes.client(middleware=[count, tenant])

    reply = await client.call(SERVICE, "GetUser", get_user(5))

    assert reply.user.name == "b"  # "a" answered UNAVAILABLE, the retry went to "b"
    assert seen == [5]
    assert b.metadata[0]["x-tenant"] == "acme"


async def test_calls_are_counted_by_the_code_the_caller_got(nodes: Nodes) -> None:
    await nodes.start("a", answer=not_found)
    registry = CollectorRegistry()
    client = nodes.client(metrics=ClientMetrics(registry))
    await nodes.start("b", service="other_service")

    with pytest.raises(ServiceError) as raised:
        await client.call(SERVICE, "GetUser", get_user(1))
    await client.call("other_service", "GetUser", get_user(1))

    assert raised.value.grpc_code.name == "NOT_FOUND"
    labels = {"grpc_service": SERVICE, "grpc_method": "GetUser"}
    handled = "grpc_client_handled_total"
    assert registry.get_sample_value(handled, {**labels, "grpc_code": "NOT_FOUND"}) == 1
    other = {"grpc_service": "other_service", "grpc_method": "GetUser", "grpc_code": "OK"}
    assert registry.get_sample_value(handled, other) == 1
    assert registry.get_sample_value("grpc_client_handling_seconds_count", labels) == 1


def test_the_first_link_is_the_outermost() -> None:
    order: list[str] = []

    def link(name: str) -> Callable[[Callable[[int], int]], Callable[[int], int]]:
        def wrap(next: Callable[[int], int]) -> Callable[[int], int]:
            def handler(value: int) -> int:
                order.append(name)
                return next(value) + 1

            return handler

        return wrap

    times_ten: Callable[[int], int] = lambda value: value * 10  # noqa: E731

    handler = chain([link("outer"), link("inner")], times_ten)

    assert handler(1) == 12
    assert order == ["outer", "inner"]
