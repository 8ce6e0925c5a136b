"""The broker's small parts: subjects, idempotency, events, settings, the factory."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

import shared.broker
from shared.broker import (
    BrokerMetrics,
    BrokerSettings,
    Event,
    MemoryBroker,
    NatsBroker,
    SeenEvents,
    build_broker,
    connect_broker,
    once,
)
from shared.broker.events import (
    AUTH_TOKEN_REVOKED,
    USER_LOGGED_IN,
    decode,
    publish_event,
)
from shared.broker.jetstream import consumer_name
from shared.broker.subjects import covers, find_stream, is_valid, matches
from shared.proto.events.v1.events_pb2 import TokenRevoked, UserLoggedIn
from tests.shared.broker.helpers import Collector


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("user.logged_in", "user.logged_in", True),
        ("user.*", "user.logged_in", True),
        ("user.>", "user.a.b", True),
        ("user.>", "user", False),
        ("user.*", "user.a.b", False),
        ("auth.>", "user.logged_in", False),
        ("*.logged_in", "user.logged_in", True),
    ],
)
def test_matches(pattern: str, subject: str, expected: bool) -> None:
    assert matches(pattern, subject) is expected


def test_covers_and_find_stream() -> None:
    assert covers("user.>", "user.*")
    assert not covers("user.*", "user.>")
    streams = {"USER": ("user.>",), "AUTH": ("auth.>",)}
    assert find_stream(streams, "user.logged_in") == "USER"
    assert find_stream(streams, "auth.*") == "AUTH"
    assert find_stream(streams, ">") is None
    assert find_stream(streams, "cache.flush") is None


def test_subject_validity() -> None:
    assert is_valid("user.>", wildcards=True)
    assert not is_valid("user.>", wildcards=False)
    assert not is_valid("user.>.x", wildcards=True)
    assert not is_valid("user..x", wildcards=False)
    assert not is_valid("user x", wildcards=False)


def test_consumer_name_is_a_valid_nats_name() -> None:
    assert consumer_name("user_service", "user.*") == "user_service--user_any"
    assert "." not in consumer_name("a", "user.>")


def test_seen_events_forget_after_the_ttl_and_past_the_size() -> None:
    now = [0.0]
    seen = SeenEvents(ttl_s=10, max_size=2, clock=lambda: now[0])
    seen.add("a")
    assert "a" in seen
    now[0] = 11
    assert "a" not in seen
    for event_id in "bcd":
        seen.add(event_id)
    assert len(seen) == 2
    assert "b" not in seen


async def test_once_skips_what_was_handled_and_retries_what_failed() -> None:
    calls: list[str] = []

    async def handler(event: Event) -> None:
        calls.append(event.event_id)
        if event.data == b"fail":
            raise RuntimeError

    handle = once(handler, SeenEvents())
    await handle(Event("s", b"", event_id="1"))
    await handle(Event("s", b"", event_id="1", delivery_count=2))
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await handle(Event("s", b"fail", event_id="2"))
    assert calls == ["1", "2", "2"]


async def test_publish_event_sets_the_id_and_the_subject() -> None:
    broker = MemoryBroker(metrics=BrokerMetrics(CollectorRegistry()))
    await broker.start()
    logins, revoked = Collector(), Collector()
    await broker.subscribe(USER_LOGGED_IN, logins, queue="audit")
    await broker.subscribe(AUTH_TOKEN_REVOKED, revoked, queue="audit")

    login = UserLoggedIn(user_id=7, user_name="ann", occurred_at_ms=1)
    event_id = await publish_event(broker, login)
    await publish_event(broker, TokenRevoked(event_id="t-1", token_id="tok"))
    await broker.stop()

    assert login.event_id == event_id
    [event] = logins.events
    assert event.event_id == event_id
    assert decode(event, UserLoggedIn) == login
    assert [e.event_id for e in revoked.events] == ["t-1"]


def test_settings() -> None:
    settings = BrokerSettings()
    assert (settings.outbox_size, settings.ack_wait_s, settings.max_deliver) == (10_000, 30.0, 5)
    assert settings.streams == {"USER": ("user.>",), "AUTH": ("auth.>",)}
    assert BrokerSettings(url="nats://a:1, nats://b:2").servers == ["nats://a:1", "nats://b:2"]
    with pytest.raises(ValidationError):
        BrokerSettings(url="http://nats")
    with pytest.raises(ValidationError):
        settings.url = "memory://"  # type: ignore[misc]


async def test_the_factory_picks_the_implementation() -> None:
    metrics = BrokerMetrics(CollectorRegistry())
    memory = await connect_broker(BrokerSettings(url="memory://"), "svc", metrics=metrics)
    assert isinstance(memory, MemoryBroker)
    await memory.stop()
    assert isinstance(build_broker(BrokerSettings(), "svc", metrics=metrics), NatsBroker)


def test_all_names_exist() -> None:
    assert sorted(shared.broker.__all__) == sorted(
        name for name in shared.broker.__all__ if hasattr(shared.broker, name)
    )
