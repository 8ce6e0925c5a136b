"""Load shedding and the server's limits, on in-process grpc.aio servers: a method admits
what it can start within the caller's deadline and sheds the rest at once (OVERLOADED),
which a caller's breaker holds neither for nor against the node; waiting calls take turns
per fairness key; messages are bounded; a call without a deadline gets the default one."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from shared import deadline
from shared.breaker import BreakerMetrics, Breakers, BreakerSettings
from shared.errors import REASON_METADATA_KEY, Reason, ServiceError
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.server import FAIRNESS_METADATA_KEY, Admission, per_core
from shared.server.shedding import Gate
from tests.support.grpc_nodes import SERVICE, Nodes, get_user, running_nodes, slow

COMMAND = f"{SERVICE}.GetUser"


@pytest.fixture
async def nodes() -> AsyncIterator[Nodes]:
    async with running_nodes() as cluster:
        yield cluster


def one_at_a_time(queue: int) -> dict[str, Admission]:
    return {"GetUser": Admission(limit=1, queue=queue)}


async def test_beyond_the_limit_and_the_queue_calls_are_shed_at_once(nodes: Nodes) -> None:
    node = await nodes.start("a", answer=slow(0.3), admissions=one_at_a_time(queue=1))
    client = nodes.client()

    started = time.perf_counter()
    with deadline.budget(2.0):
        calls = [asyncio.ensure_future(client.call(SERVICE, "GetUser", get_user())) for _ in "123"]
        await asyncio.wait(calls, return_when=asyncio.FIRST_COMPLETED)
        shed_after = time.perf_counter() - started
        results = await asyncio.gather(*calls, return_exceptions=True)

    errors = [r for r in results if isinstance(r, ServiceError)]
    assert [e.reason for e in errors] == [Reason.OVERLOADED]
    assert errors[0].http_status == 503
    assert shed_after < 0.2  # not after the running call
    assert len(node.calls) == 2
    counts = client.breakers.snapshot()[COMMAND]["counts"]
    assert (counts["success"], counts["shed"], counts["failure"], counts["rejected"]) == (
        2,
        1,
        0,
        0,
    )


async def test_a_shed_call_is_no_failure_however_many(nodes: Nodes) -> None:
    await nodes.start("a", answer=slow(0.2), admissions=one_at_a_time(queue=0))
    client = nodes.client()

    with deadline.budget(2.0):
        results = await asyncio.gather(
            *(client.call(SERVICE, "GetUser", get_user()) for _ in range(40)),
            return_exceptions=True,
        )

    assert sum(isinstance(r, ServiceError) for r in results) == 39
    snapshot = client.breakers.snapshot()[COMMAND]
    assert (snapshot["state"], snapshot["volume"], snapshot["counts"]["shed"]) == ("closed", 1, 39)


async def test_a_call_waits_only_while_its_deadline_leaves_time_for_the_work(
    nodes: Nodes,
) -> None:
    await nodes.start("a", answer=slow(0.6), admissions=one_at_a_time(queue=5))
    client = nodes.client()
    running = asyncio.ensure_future(client.call(SERVICE, "GetUser", get_user(), timeout=2))
    await asyncio.sleep(0.05)

    started = time.perf_counter()
    with pytest.raises(ServiceError) as caught:
        await client.call(SERVICE, "GetUser", get_user(), timeout=0.4)
    waited = time.perf_counter() - started

    # Shed before the caller's deadline, so that the caller sees no timeout.
    assert caught.value.reason is Reason.OVERLOADED
    assert 0.25 <= waited < 0.4
    await running


async def test_a_freed_slot_goes_to_the_other_clients_in_turn(nodes: Nodes) -> None:
    node = await nodes.start("a", answer=slow(0.1), admissions=one_at_a_time(queue=3))
    client = nodes.client()

    def login_of(who: str) -> Any:
        return client.call(
            SERVICE, "GetUser", get_user(), timeout=3, metadata=[(FAIRNESS_METADATA_KEY, who)]
        )

    flood = [asyncio.ensure_future(login_of("attacker")) for _ in range(4)]
    await asyncio.sleep(0.03)  # one runs, three wait
    await login_of("user")
    await asyncio.gather(*flood)

    order = [seen.get(FAIRNESS_METADATA_KEY) for seen in node.metadata]
    # The attacker's turn came first (it waited first), then the user's: not after the flood.
    assert order == ["attacker", "attacker", "user", "attacker", "attacker"], order


async def test_a_retryable_call_shed_by_one_node_is_served_by_another(nodes: Nodes) -> None:
    a = await nodes.start("a", answer=slow(0.3), admissions=one_at_a_time(queue=0))
    b = await nodes.start("b")
    client = nodes.client()
    busy = asyncio.ensure_future(client.call(SERVICE, "GetUser", get_user(), timeout=2))
    await a.called.wait()
    await client.call(SERVICE, "GetUser", get_user())  # b's turn

    reply = await client.call(SERVICE, "GetUser", get_user(), timeout=2)  # a's turn: shed

    assert reply.user.name == "b"
    assert (len(a.calls), len(b.calls)) == (1, 2)
    await busy


async def test_a_node_that_never_answers_is_ejected_after_three_timeouts(nodes: Nodes) -> None:
    hung = await nodes.start("a", answer=slow(30))
    healthy = [await nodes.start(name) for name in "bc"]
    breakers = Breakers(
        BreakerSettings(timeout_ms=200), metrics=BreakerMetrics(CollectorRegistry())
    )
    client = nodes.client(breakers=breakers)

    for _ in range(30):
        with deadline.budget(2.0):
            await client.call(SERVICE, "GetUser", get_user())  # retried elsewhere: no error

    assert len(hung.calls) == 3
    assert sum(len(node.calls) for node in healthy) == 30
    [state] = [s for s in client.selector.states(SERVICE) if s.node.id.endswith("-a")]
    assert state.ejected_until > time.monotonic()


async def test_a_message_over_the_limit_is_refused_with_resource_exhausted(
    nodes: Nodes,
) -> None:
    node = await nodes.start("a", max_message_bytes=64 * 1024)
    assert node.server is not None
    async with grpc.aio.insecure_channel(node.server.address) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CreateUser(user_pb2.CreateUserRequest(name="x" * 100_000), timeout=5)
        small = await stub.CreateUser(user_pb2.CreateUserRequest(name="x" * 60_000), timeout=5)

    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert small.user.name == "x" * 60_000
    assert node.calls == ["CreateUser"]


async def test_a_call_without_a_deadline_runs_with_the_default_budget(nodes: Nodes) -> None:
    node = await nodes.start("a", default_deadline_s=7.0)
    assert node.server is not None
    async with grpc.aio.insecure_channel(node.server.address) as channel:
        await user_pb2_grpc.UserServiceStub(channel).GetUser(get_user())  # no timeout

    [budget] = node.budget
    assert budget is not None
    assert 6.5 < budget <= 7.0


async def test_a_call_without_a_deadline_is_cut_at_the_default_one(nodes: Nodes) -> None:
    node = await nodes.start("a", answer=slow(30), default_deadline_s=0.2)
    assert node.server is not None
    async with grpc.aio.insecure_channel(node.server.address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await user_pb2_grpc.UserServiceStub(channel).GetUser(get_user())

    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert (REASON_METADATA_KEY, "TIMEOUT") in tuple(caught.value.trailing_metadata() or ())
    await asyncio.wait_for(node.cancelled.wait(), 1)


async def test_the_gate_hands_a_slot_over_and_forgets_who_gave_up() -> None:
    gate = Gate(Admission(limit=1, queue=2))
    assert gate.try_enter()
    assert not gate.try_enter()

    gave_up = await gate.wait("a", 0.01)  # nobody leaves in time
    waiting = asyncio.ensure_future(gate.wait("a", 5))
    cancelled = asyncio.ensure_future(gate.wait("b", 5))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.sleep(0)
    assert (gave_up, gate.queued) == (False, 1)

    gate.leave()  # the slot passes to the one still waiting
    assert await waiting
    assert (gate.running, gate.queued) == (1, 0)
    gate.leave()
    assert gate.running == 0
    assert gate.try_enter()


def test_an_admission_is_sized_by_the_cores() -> None:
    cores = os.cpu_count() or 1
    assert per_core(calls=1, queue=2) == Admission(limit=cores, queue=2 * cores)
    with pytest.raises(ValueError, match="limit >= 1"):
        Admission(limit=0, queue=1)
