"""Shared circuit state through the real Redis at 127.0.0.1:6379, through a Redis of the
test's own that goes down, and through one that accepts connections and never answers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import redis
from prometheus_client import CollectorRegistry

from shared.breaker import BreakerMetrics, Breakers, redis_storage_factory
from shared.errors import Reason, ServiceError
from tests.support import integration
from tests.support.ports import free_port, wait_for_port_sync
from tests.support.silent import silent_server

REDIS_URL = "redis://127.0.0.1:6379/0"
NAME = "user_service.VerifyCredentials"

Replica = Callable[..., Breakers]


class OwnRedis(NamedTuple):
    process: subprocess.Popen[bytes]
    url: str


@pytest.fixture
@integration.real_server
def namespace() -> Iterator[str]:
    # No skip when Redis is missing: the machine provides it, and CI must run this.
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1)
    client.ping()
    namespace = f"test-breaker-{uuid.uuid4().hex}"
    yield namespace
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
@integration.real_server
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A Redis server of the test's own, which it may stop."""
    integration.require("redis")
    port = free_port()
    command = [shutil.which("redis-server") or "redis-server", "--port", str(port)]
    command += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        wait_for_port_sync(port)
        yield OwnRedis(server, f"redis://127.0.0.1:{port}/0")
    finally:
        server.kill()
        server.wait()


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    """Makes one process's Breakers on shared storage; closes them all after the test."""
    made: list[Breakers] = []

    def make(clock: Any, storage_url: str, namespace: str, **options: Any) -> Breakers:
        breakers = Breakers(
            clock=clock,
            storage_factory=redis_storage_factory(storage_url, namespace, **options),
            metrics=BreakerMetrics(CollectorRegistry()),
            sync_interval_s=3600,  # the tests read the shared states when they choose
        )
        made.append(breakers)
        return breakers

    yield make
    for breakers in made:
        await breakers.close()


async def ok(timeout_s: float) -> str:
    return "ok"


async def boom(timeout_s: float) -> str:
    raise ConnectionError("down")


@pytest.mark.integration
async def test_replicas_share_the_open_state(
    namespace: str, new_clock: Any, replica: Replica
) -> None:
    clock_a, clock_b = new_clock(), new_clock()
    breakers_a = replica(clock_a, REDIS_URL, namespace)
    breakers_b = replica(clock_b, REDIS_URL, namespace)
    a, b = breakers_a.command(NAME), breakers_b.command(NAME)
    for _ in range(20):
        with pytest.raises(ConnectionError):
            await a.run(boom)
    assert a.state == "open"

    # A read after A's write (one worker keeps them in order); then B's, as its task does
    # once per sync interval.
    await breakers_a.follow_shared()
    await breakers_b.follow_shared()
    ran = False

    async def probe(timeout_s: float) -> str:
        nonlocal ran
        ran = True
        return "ok"

    with pytest.raises(ServiceError) as caught:
        await b.run(probe)
    assert caught.value.reason is Reason.CIRCUIT_OPEN
    assert caught.value.retry_after is not None
    assert 1 <= caught.value.retry_after <= 5
    assert not ran
    assert b.state == "open"

    # A replica started now finds the circuit open: its task reads at once.
    breakers_c = replica(new_clock(), REDIS_URL, namespace)
    c = breakers_c.command(NAME)
    await breakers_c.follow_shared()
    assert c.state == "open"

    # A's trial closes the circuit for everyone.
    clock_a.advance(5)
    assert await a.run(ok) == "ok"
    assert a.state == "closed"
    await breakers_a.follow_shared()
    await breakers_b.follow_shared()
    assert b.state == "closed"
    assert await b.run(ok) == "ok"


@pytest.mark.integration
async def test_windows_stay_per_replica(namespace: str, new_clock: Any, replica: Replica) -> None:
    a = replica(new_clock(), REDIS_URL, namespace).command(NAME)
    b = replica(new_clock(), REDIS_URL, namespace).command(NAME)
    for command in (a, b):
        for _ in range(10):
            with pytest.raises(ConnectionError):
                await command.run(boom)
    assert (a.state, b.state) == ("closed", "closed")


async def test_an_unreachable_redis_leaves_the_circuit_per_replica(
    new_clock: Any, replica: Replica
) -> None:
    breakers = replica(new_clock(), "redis://127.0.0.1:1/0", "unused")
    command = breakers.command(NAME)
    assert await command.run(ok) == "ok"
    await breakers.follow_shared()  # nothing to read: no change, no error
    for _ in range(19):  # with the success, the volume (20) at which it may open
        with pytest.raises(ConnectionError):
            await command.run(boom)
    assert command.state == "open"


async def test_a_redis_that_never_answers_never_stalls_a_call(
    new_clock: Any, replica: Replica
) -> None:
    """redis-py's client blocks for its socket timeout; the calls must not."""
    async with silent_server() as port:
        breakers = replica(new_clock(), f"redis://127.0.0.1:{port}/0", "x", socket_timeout_s=2)
        started = time.monotonic()
        command = breakers.command(NAME)  # its storage is made in Redis, as it starts
        for _ in range(20):  # trips the circuit: a state written to the silent Redis
            with pytest.raises(ConnectionError):
                await command.run(boom)
        with pytest.raises(ServiceError):
            await command.run(ok)
        # Each read or write would have held the loop for 2 s at least.
        assert time.monotonic() - started < 1.0
        assert command.state == "open"


async def _trip(command: Any) -> None:
    for _ in range(20):  # the window's volume: it opens at the 20th call at the latest
        with pytest.raises(ConnectionError):
            await command.run(boom)
        if command.state == "open":
            return
    raise AssertionError(f"still {command.state}")


@pytest.mark.integration
async def test_a_redis_that_goes_down_leaves_open_circuits_open(
    own_redis: OwnRedis, new_clock: Any, replica: Replica
) -> None:
    """Each replica keeps its circuits while Redis is down, rather than closing them once per
    sync interval and letting a burst of calls through to the failing service each time."""
    breakers = replica(new_clock(), own_redis.url, "t")
    command = breakers.command(NAME)
    assert await command.run(ok) == "ok"
    await breakers.follow_shared()  # the shared state is reachable: nothing recorded yet
    own_redis.process.kill()
    own_redis.process.wait()

    await _trip(command)
    for _ in range(3):  # the follower's reads, once per sync interval
        await breakers.follow_shared()
    assert command.state == "open"
    with pytest.raises(ServiceError) as caught:
        await command.run(ok)
    assert caught.value.reason is Reason.CIRCUIT_OPEN


@pytest.mark.integration
async def test_a_state_that_redis_lost_leaves_the_circuits_as_they_are(
    namespace: str, new_clock: Any, replica: Replica
) -> None:
    """A restarted or flushed Redis has no state to give: nobody's circuit is closed by it."""
    breakers = replica(new_clock(), REDIS_URL, namespace)
    command = breakers.command(NAME)
    await _trip(command)
    await breakers.follow_shared()  # after the write of "open"
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1)
    assert client.delete(*client.scan_iter(f"{namespace}:*")) >= 1
    client.close()

    await breakers.follow_shared()
    assert command.state == "open"


_IMPORTS = """
    import sys
    import shared.app, shared.runtime  # what every service imports
    print("redis" in sys.modules)
    from shared.breaker import redis_storage_factory
    redis_storage_factory("redis://127.0.0.1:6379/0")
    print("redis" in sys.modules)
"""


def test_only_a_service_that_shares_its_circuits_loads_redis_py() -> None:
    # pybreaker imports it whenever it is installed: 13 MB of each service's idle memory.
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_IMPORTS)],
        cwd=Path(__file__).resolve().parents[3],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["False", "True"]
