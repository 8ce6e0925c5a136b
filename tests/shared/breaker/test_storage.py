"""Shared circuit state through the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry

from shared.breaker import BreakerMetrics, Breakers, redis_storage_factory
from shared.errors import Reason, ServiceError
from tests.support import integration

REDIS_URL = "redis://127.0.0.1:6379/0"
NAME = "user_service.VerifyCredentials"


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


def replica(clock: Any, storage_url: str, namespace: str) -> Breakers:
    return Breakers(
        clock=clock,
        storage_factory=redis_storage_factory(storage_url, namespace),
        metrics=BreakerMetrics(CollectorRegistry()),
    )


async def ok(timeout_s: float) -> str:
    return "ok"


async def boom(timeout_s: float) -> str:
    raise ConnectionError("down")


@pytest.mark.integration
async def test_replicas_share_the_open_state(namespace: str, new_clock: Any) -> None:
    clock_a, clock_b = new_clock(), new_clock()
    a = replica(clock_a, REDIS_URL, namespace).command(NAME)
    b = replica(clock_b, REDIS_URL, namespace).command(NAME)
    for _ in range(20):
        with pytest.raises(ConnectionError):
            await a.run(boom)
    assert a.state == "open"

    clock_b.advance(1)  # B re-reads shared state once per sync interval, not per call
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

    # A replica started now finds the circuit open.
    c = replica(new_clock(), REDIS_URL, namespace).command(NAME)
    assert c.state == "open"

    # A's trial closes the circuit for everyone.
    clock_a.advance(5)
    assert await a.run(ok) == "ok"
    assert a.state == "closed"
    clock_b.advance(1)
    assert await b.run(ok) == "ok"
    assert b.state == "closed"


@pytest.mark.integration
async def test_windows_stay_per_replica(namespace: str, new_clock: Any) -> None:
    a = replica(new_clock(), REDIS_URL, namespace).command(NAME)
    b = replica(new_clock(), REDIS_URL, namespace).command(NAME)
    for command in (a, b):
        for _ in range(10):
            with pytest.raises(ConnectionError):
                await command.run(boom)
    assert (a.state, b.state) == ("closed", "closed")


async def test_an_unreachable_redis_falls_back_to_memory(new_clock: Any) -> None:
    breakers = replica(new_clock(), "redis://127.0.0.1:1/0", "unused")
    assert await breakers.command(NAME).run(ok) == "ok"
