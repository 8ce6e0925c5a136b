from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from shared.breaker import BreakerMetrics, Breakers, BreakerSettings
from shared.errors import Reason, ServiceError

NAME = "user_service.VerifyCredentials"


def calls(registry: CollectorRegistry, outcome: str) -> float | None:
    return registry.get_sample_value("breaker_calls_total", {"command": NAME, "outcome": outcome})


def gauge(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name, {"command": NAME})


async def test_outcomes_latency_and_gauges(clock: Any) -> None:
    registry = CollectorRegistry()
    breakers = Breakers(
        BreakerSettings(timeout_ms=20, max_concurrent_requests=1, request_volume_threshold=6),
        clock=clock,
        metrics=BreakerMetrics(registry),
    )
    command = breakers.command(NAME)

    async def ok(timeout_s: float) -> str:
        return "ok"

    async def boom(timeout_s: float) -> str:
        raise ConnectionError

    async def not_found(timeout_s: float) -> str:
        raise ServiceError(Reason.NOT_FOUND)

    async def cached(error: BaseException) -> str:
        return "cached"

    async def hang(timeout_s: float) -> str:
        await asyncio.sleep(10)
        return "too late"

    await command.run(ok)
    with pytest.raises(ServiceError):
        await command.run(not_found)
    assert await command.run(boom, fallback=cached) == "cached"
    slow = asyncio.create_task(command.run(hang))
    await asyncio.sleep(0)
    assert gauge(registry, "breaker_in_flight") == 1
    with pytest.raises(ServiceError, match="in flight"):
        await command.run(ok)
    assert gauge(registry, "breaker_state") == 0
    with pytest.raises(ServiceError, match="timed out"):
        await slow  # 3 errors in 5 calls: below the volume
    assert command.state == "closed"
    with pytest.raises(ConnectionError):
        await command.run(boom)  # 4 errors in 6 calls
    assert gauge(registry, "breaker_state") == 1
    with pytest.raises(ServiceError, match="open"):
        await command.run(ok)

    assert {
        outcome: calls(registry, outcome)
        for outcome in (
            "success",
            "business_error",
            "failure",
            "timeout",
            "rejected",
            "short_circuited",
            "fallback",
            "shed",
        )
    } == {
        "success": 1,
        "business_error": 1,
        "failure": 2,
        "timeout": 1,
        "rejected": 1,
        "short_circuited": 1,
        "fallback": 1,
        "shed": 0,
    }
    # Only calls that ran are timed.
    assert registry.get_sample_value("breaker_call_latency_seconds_count", {"command": NAME}) == 5
    assert gauge(registry, "breaker_in_flight") == 0
