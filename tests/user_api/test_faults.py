"""Fault injection against the real processes: a frozen user_service, a saturated one, and
one of two killed. Every setting is the default (timeout 1000 ms, 100 concurrent calls,
20 calls and 50 % to open, a 5 s sleep window, 2 retries)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from shared.registry import EtcdRegistry
from tests.conftest import StartService
from tests.support.http import login
from tests.support.rawhttp import Connection, Reply
from tests.support.system import System, metric, start_system, timed_login

pytestmark = pytest.mark.integration

VERIFY = "user_service.VerifyCredentials"
VERIFY_PATH = "/user.v1.UserService/VerifyCredentials"
TIMEOUT_S = 1.0
SLEEP_WINDOW_S = 5.0

MakeSystem = Callable[..., Awaitable[System]]


@pytest.fixture
async def make_system(
    start_service: StartService, registry: EtcdRegistry
) -> AsyncIterator[MakeSystem]:
    systems: list[System] = []

    async def make(user_services: int = 1) -> System:
        system = await start_system(start_service, registry, user_services=user_services)
        systems.append(system)
        assert (await login(system.http)).status_code == 200  # connections are up
        return system

    yield make
    for system in systems:
        await system.close()


async def logins(system: System, count: int) -> None:
    for _ in range(count):
        assert (await login(system.http)).status_code == 200


def assert_timed_out(result: Reply) -> None:
    assert (result.status, result.reason) == (504, "TIMEOUT"), result
    assert TIMEOUT_S * 0.9 <= result.seconds <= TIMEOUT_S * 1.1, result


async def test_a_frozen_user_service_times_out_opens_the_circuit_and_recovers(
    make_system: MakeSystem,
) -> None:
    system = await make_system()
    connections = await system.connections(21)

    with system.frozen(system.users[0]):
        timed_out = await connections.logins(20)
        opened = time.monotonic()
        fast = await connections[20].login()

    for result in timed_out:
        assert_timed_out(result)
    assert (fast.status, fast.reason) == (503, "CIRCUIT_OPEN"), fast
    assert fast.seconds < 0.010
    assert 1 <= int(fast.headers["Retry-After"]) <= SLEEP_WINDOW_S

    scraped = await system.metrics()
    assert metric(scraped, "breaker_state", command=VERIFY) == 1.0
    assert metric(scraped, "breaker_calls_total", command=VERIFY, outcome="success") == 1
    assert metric(scraped, "breaker_calls_total", command=VERIFY, outcome="timeout") == 20
    assert metric(scraped, "breaker_calls_total", command=VERIFY, outcome="short_circuited") == 1
    assert metric(scraped, "breaker_call_latency_seconds_count", command=VERIFY) == 21
    assert metric(scraped, "breaker_in_flight", command=VERIFY) == 0

    # The node is back, but the circuit stays open for its sleep window; then one trial
    # call goes through, succeeds and closes it. No restart anywhere.
    while (result := await timed_login(system.http)).status != 200:
        assert (result.status, result.reason) == (503, "CIRCUIT_OPEN"), result
        await asyncio.sleep(0.05)
    recovered_after = time.monotonic() - opened
    assert SLEEP_WINDOW_S - 0.1 <= recovered_after <= SLEEP_WINDOW_S + 0.5
    assert (await system.breaker(VERIFY))["state"] == "closed"
    assert [(await login(system.http)).status_code for _ in range(3)] == [200] * 3


async def test_a_stuck_node_holds_100_calls_and_the_rest_are_rejected_at_once(
    make_system: MakeSystem,
) -> None:
    system = await make_system()
    # A busy service: the rolling window holds more successes than the 50 rejections to
    # come, so that they stay below the error threshold and the bulkhead alone answers.
    # Two at a time, one per core as user_service admits Argon2 calls: more would queue,
    # and on a slow host the queue sheds some (OVERLOADED), which is not this test's subject.
    await asyncio.gather(*(logins(system, 30) for _ in range(2)))
    connections = await system.connections(151)
    finished: list[Reply] = []
    fifty_finished = asyncio.Event()

    async def one_login(connection: Connection) -> Reply:
        result = await connection.login()
        finished.append(result)
        if len(finished) == 50:
            fifty_finished.set()
        return result

    with system.frozen(system.users[0]):
        calls = [asyncio.create_task(one_login(connections[i])) for i in range(150)]
        await fifty_finished.wait()
        # The other 100 are still in flight (until the timeout): one more is turned away.
        probe = await connections[150].login()
        in_flight = (await system.breaker(VERIFY))["in_flight"]
        results = await asyncio.gather(*calls)

    rejected = [r for r in results if r.status == 503]
    timed_out = [r for r in results if r.status == 504]
    assert (len(timed_out), len(rejected)) == (100, 50)
    assert {r.reason for r in rejected} == {"REJECTED"}
    assert {r.reason for r in timed_out} == {"TIMEOUT"}
    # Turned away as they arrived, not queued for the stuck node: each waited only for
    # user_api to take in the burst of 150 (one event loop, ~1 ms a request).
    burst_taken_in = max(r.finished_at for r in rejected)
    assert max(r.seconds for r in rejected) < TIMEOUT_S / 2
    # One request on its own while the 100 are in flight: rejected in a few ms.
    assert (probe.status, probe.reason) == (503, "REJECTED"), probe
    assert probe.seconds < 0.010
    assert in_flight == 100
    # Each in-flight call was cut at the timeout counted from when user_api made it, which
    # was between the request's start and the end of the burst.
    for result in timed_out:
        assert result.seconds >= TIMEOUT_S * 0.9
        assert result.finished_at <= burst_taken_in + TIMEOUT_S * 1.1


async def test_killing_one_of_two_user_services_fails_no_login(make_system: MakeSystem) -> None:
    system = await make_system(user_services=2)
    statuses: list[int] = []
    halfway = asyncio.Event()

    async def keep_logging_in() -> None:
        for _ in range(15):
            statuses.append((await login(system.http)).status_code)
            if len(statuses) >= 20:
                halfway.set()

    workers = asyncio.gather(*(keep_logging_in() for _ in range(4)))
    await halfway.wait()
    system.users[1].signal(signal.SIGKILL)  # mid-stream: some of its calls are in flight
    await workers

    assert statuses == [200] * 60
    # The killed node was tried (calls cut by the kill, then refused connections) and
    # every one of those calls was retried on the other node.
    failed = metric(
        await system.metrics(), "breaker_calls_total", command=VERIFY, outcome="failure"
    )
    assert failed >= 1
    # The survivor's own metrics port: what it served, and its own client's breakers.
    survivor = await system.metrics(system.user_metrics_ports[0])
    served = metric(survivor, "grpc_server_handled_total", grpc_method=VERIFY_PATH, grpc_code="OK")
    assert served >= 30
    assert (
        metric(
            survivor, "breaker_calls_total", command="config_service.GetConfig", outcome="success"
        )
        == 1
    )
