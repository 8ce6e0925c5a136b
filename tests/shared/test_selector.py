"""The selector: picking strategies and outlier ejection, on its own and under the client."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.errors import Reason, ServiceError
from shared.registry import MemoryRegistry, ServiceNode
from shared.selector import NodeState, Picker, PickerFactory, Selector, Strategy
from tests.support.grpc_nodes import SERVICE, FakeNode, Nodes, get_user, running_nodes


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def nodes() -> AsyncIterator[Nodes]:
    async with running_nodes() as cluster:
        yield cluster


async def selector_over(
    names: str, strategy: str | PickerFactory = Strategy.ROUND_ROBIN, clock: FakeClock | None = None
) -> Selector:
    registry = MemoryRegistry()
    for i, name in enumerate(names):
        await registry.register(ServiceNode("svc", name, f"127.0.0.1:{1000 + i}"))
    selector = Selector(registry, strategy=strategy, clock=clock or FakeClock())
    assert await selector.wait_ready("svc", 1)
    return selector


def picks(selector: Selector, n: int, exclude: tuple[str, ...] = ()) -> list[str]:
    return [selector.pick("svc", exclude).node.id for _ in range(n)]


def fail_transport(selector: Selector, state: NodeState, times: int) -> None:
    for _ in range(times):
        selector.report(state, transport_ok=False)


def state_of(selector: Selector, node_id: str) -> NodeState:
    [state] = [s for s in selector.states("svc") if s.node.id == node_id]
    return state


async def test_round_robin_takes_each_node_in_turn() -> None:
    selector = await selector_over("abc")

    assert picks(selector, 6) == ["a", "b", "c", "a", "b", "c"]
    await selector.stop()


async def test_a_strategy_is_chosen_by_name_or_is_your_own() -> None:
    by_name = await selector_over("abc", "round_robin")

    def last() -> Picker:
        return lambda nodes: nodes[-1]

    own = await selector_over("abc", last)

    assert picks(by_name, 2) == ["a", "b"]
    assert picks(own, 3) == ["c", "c", "c"]
    assert picks(own, 1, exclude=("c",)) == ["b"]
    await by_name.stop()
    await own.stop()


async def test_excluded_nodes_are_not_picked_and_none_left_is_unavailable() -> None:
    selector = await selector_over("ab")

    assert set(picks(selector, 4, exclude=("a",))) == {"b"}
    with pytest.raises(ServiceError) as caught:
        selector.pick("svc", exclude=("a", "b"))
    assert caught.value.reason is Reason.UNAVAILABLE
    await selector.stop()


async def test_a_node_failing_at_the_transport_level_is_ejected_until_it_recovers() -> None:
    clock = FakeClock()
    selector = await selector_over("ab", clock=clock)
    a = state_of(selector, "a")

    fail_transport(selector, a, 2)
    assert "a" in picks(selector, 4)  # two failures are not enough
    fail_transport(selector, a, 1)
    assert set(picks(selector, 6)) == {"b"}

    clock.now += 5.0  # the first ejection lasts 5 s
    assert "a" in picks(selector, 4)
    await selector.stop()


async def test_ejections_double_while_a_node_keeps_failing_and_reset_on_success() -> None:
    clock = FakeClock()
    selector = await selector_over("ab", clock=clock)
    a = state_of(selector, "a")

    fail_transport(selector, a, 3)
    clock.now += 5.0
    fail_transport(selector, a, 1)  # one failure after coming back: ejected again, for 10 s
    clock.now += 9.9
    assert set(picks(selector, 6)) == {"b"}
    clock.now += 0.1
    assert "a" in picks(selector, 4)

    selector.report(a, transport_ok=True)
    fail_transport(selector, a, 3)  # a fresh failure after a success: back to 5 s
    clock.now += 5.0
    assert "a" in picks(selector, 4)
    await selector.stop()


async def test_when_every_node_is_ejected_they_are_still_tried() -> None:
    selector = await selector_over("ab")
    for node_id in "ab":
        fail_transport(selector, state_of(selector, node_id), 3)

    assert set(picks(selector, 4)) == {"a", "b"}
    await selector.stop()


async def test_least_in_flight_picks_the_less_loaded_of_two() -> None:
    selector = await selector_over("ab", Strategy.LEAST_IN_FLIGHT)
    state_of(selector, "a").in_flight = 5

    assert set(picks(selector, 50)) == {"b"}
    await selector.stop()


async def test_least_in_flight_never_picks_the_most_loaded_of_several() -> None:
    selector = await selector_over("abc", Strategy.LEAST_IN_FLIGHT)
    loads = {"a": 9, "b": 3, "c": 0}
    for node_id, load in loads.items():
        state_of(selector, node_id).in_flight = load

    counts = Counter(picks(selector, 300))

    assert counts["a"] == 0
    assert counts["c"] > counts["b"] > 0  # c wins each draw it is in: 2 of 3
    await selector.stop()


async def test_the_client_stops_sending_to_an_unreachable_node(nodes: Nodes) -> None:
    await nodes.dead("a")
    b = await nodes.start("b")
    client = nodes.client()

    for _ in range(20):
        await client.call(SERVICE, "GetUser", get_user())

    # Three refused connections eject "a"; every call after that goes straight to "b".
    failures = client.breakers.snapshot()[f"{SERVICE}.GetUser"]["counts"]["failure"]
    assert failures == 3
    assert len(b.calls) == 20


async def test_a_node_answering_unavailable_itself_is_not_ejected(nodes: Nodes) -> None:
    async def refuse(node: FakeNode, request: Any) -> None:
        raise ServiceError(Reason.UNAVAILABLE, "my store is down")

    a = await nodes.start("a", answer=refuse)
    await nodes.start("b")
    client = nodes.client()

    for _ in range(12):
        await client.call(SERVICE, "GetUser", get_user())

    # It was reached: its calls are retried elsewhere, but it keeps getting its turn.
    assert len(a.calls) == 6


async def test_least_in_flight_sends_most_calls_to_the_faster_node(nodes: Nodes) -> None:
    async def sluggish(node: FakeNode, request: Any) -> None:
        await asyncio.sleep(0.02)

    slow_node = await nodes.start("a", answer=sluggish)
    fast_node = await nodes.start("b")
    client = nodes.client(Strategy.LEAST_IN_FLIGHT)

    async def worker() -> None:
        for _ in range(25):
            await client.call(SERVICE, "GetUser", get_user())

    await asyncio.gather(*(worker() for _ in range(8)))

    assert len(slow_node.calls) + len(fast_node.calls) == 200
    assert len(fast_node.calls) > 3 * len(slow_node.calls)
