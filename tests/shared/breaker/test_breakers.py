from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

import shared.breaker
from shared.breaker import BreakerMetrics, Breakers, BreakerSettings
from shared.errors import ServiceError


@pytest.fixture
def breakers(clock: Any) -> Breakers:
    return Breakers(clock=clock, metrics=BreakerMetrics(CollectorRegistry()))


async def boom(timeout_s: float) -> str:
    raise ConnectionError("down")


async def fail(breakers: Breakers, name: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ConnectionError):
            await breakers.command(name).run(boom)


def test_all_is_the_public_api() -> None:
    assert sorted(shared.breaker.__all__) == [
        "BreakerMetrics",
        "BreakerSettings",
        "Breakers",
        "Command",
        "default_is_failure",
        "redis_storage_factory",
    ]
    for name in shared.breaker.__all__:
        assert getattr(shared.breaker, name) is not None


def test_commands_are_made_once(breakers: Breakers) -> None:
    assert breakers.command("a.B") is breakers.command("a.B")
    assert breakers.command("a.B") is not breakers.command("a.C")


def test_the_constructor_defaults_apply(clock: Any) -> None:
    breakers = Breakers(
        BreakerSettings(timeout_ms=250), clock=clock, metrics=BreakerMetrics(CollectorRegistry())
    )
    assert breakers.command("a.B").settings.timeout_ms == 250


async def test_update_settings_takes_effect_on_an_existing_command(breakers: Breakers) -> None:
    command = breakers.command("a.B")
    await fail(breakers, "a.B", 5)
    assert command.state == "closed"
    breakers.update_settings({"default": {"request_volume_threshold": 6}})
    await fail(breakers, "a.B", 1)
    assert command.state == "open"


async def test_update_settings_layers_and_reaches_future_commands(breakers: Breakers) -> None:
    breakers.command("a.B")
    breakers.update_settings(
        {"default": {"timeout_ms": 300}, "a.B": {"timeout_ms": 40}, "x.Y": {"buckets": 5}}
    )
    assert breakers.command("a.B").settings.timeout_ms == 40
    assert breakers.command("x.Y").settings.timeout_ms == 300
    assert breakers.command("x.Y").settings.buckets == 5
    assert breakers.command("new.Z").settings.timeout_ms == 300

    seen: list[float] = []

    async def record(timeout_s: float) -> None:
        seen.append(timeout_s)

    await breakers.command("a.B").run(record)
    assert seen == [0.04]


def test_update_settings_replaces_the_previous_overrides(breakers: Breakers) -> None:
    breakers.update_settings({"a.B": {"timeout_ms": 40}})
    breakers.update_settings({"default": {"sleep_window_ms": 100}})
    settings = breakers.command("a.B").settings
    assert (settings.timeout_ms, settings.sleep_window_ms) == (1000, 100)


def test_configure_merges_into_the_overrides(breakers: Breakers) -> None:
    breakers.configure("a.B", timeout_ms=40)
    breakers.configure("a.B", sleep_window_ms=100)
    breakers.configure(error_percent_threshold=20)
    settings = breakers.command("a.B").settings
    assert (settings.timeout_ms, settings.sleep_window_ms) == (40, 100)
    assert settings.error_percent_threshold == 20


def test_an_invalid_update_changes_nothing(breakers: Breakers) -> None:
    breakers.configure("a.B", timeout_ms=40)
    with pytest.raises(ValidationError):
        breakers.update_settings({"default": {"timeout_ms": 10}, "a.B": {"buckets": 3}})
    assert breakers.command("a.B").settings.timeout_ms == 40
    assert breakers.command("c.D").settings.timeout_ms == 1000


async def test_a_new_window_size_restarts_the_counts(breakers: Breakers) -> None:
    await fail(breakers, "a.B", 3)
    breakers.configure("a.B", request_volume_threshold=30)
    assert breakers.command("a.B").snapshot()["volume"] == 3
    breakers.configure("a.B", rolling_window_ms=20000)
    assert breakers.command("a.B").snapshot()["volume"] == 0


async def test_set_fallback(breakers: Breakers) -> None:
    async def cached(error: BaseException) -> str:
        return "cached"

    breakers.set_fallback("a.B", cached)
    assert await breakers.command("a.B").run(boom) == "cached"
    breakers.set_fallback("a.B", None)
    with pytest.raises(ConnectionError):
        await breakers.command("a.B").run(boom)


async def test_snapshot_lists_every_command(breakers: Breakers, clock: Any) -> None:
    await fail(breakers, "b.Open", 20)
    breakers.command("a.Idle")
    snapshot = breakers.snapshot()
    assert list(snapshot) == ["a.Idle", "b.Open"]
    assert snapshot["b.Open"]["state"] == "open"
    assert snapshot["a.Idle"]["volume"] == 0
    with pytest.raises(ServiceError):
        await breakers.command("b.Open").run(boom)


def test_default_metrics_are_shared_by_every_breakers() -> None:
    Breakers()
    Breakers()  # a second registration on the global registry would raise
