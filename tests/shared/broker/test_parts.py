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
    EventSpec,
    NotAnEventError,
    decode,
    event_spec,
    publish_event,
    subject_of,
)
from shared.broker.streams import declare_stream, known_streams
from shared.broker.subjects import consumer_name, covers, find_stream, is_valid
from shared.proto.auth.v1.auth_events_pb2 import TokenRevoked
from shared.proto.auth.v1.auth_pb2 import RevokeTokenRequest
from shared.proto.user.v1.user_events_pb2 import UserLoggedIn, UserLoginFailed
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
def test_a_pattern_covers_the_literal_subjects_it_matches(
    pattern: str, subject: str, expected: bool
) -> None:
    assert covers(pattern, subject) is expected


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
    await broker.subscribe(UserLoggedIn, logins, queue="audit")  # by event type
    await broker.subscribe(subject_of(TokenRevoked), revoked, queue="audit")  # or subject

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
    assert settings.streams == {}  # the kit has no streams of its own
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


def test_events_declare_their_subject_and_stream_in_their_contract() -> None:
    assert event_spec(UserLoggedIn) == EventSpec("user.logged_in", "USER")
    assert event_spec(UserLoginFailed) == EventSpec("audit.user_login_failed", "AUDIT")
    assert event_spec(TokenRevoked) == EventSpec("auth.token_revoked", "AUTH")
    streams = known_streams(BrokerSettings(streams={"CACHE": ("cache.>",)}))
    assert streams["USER"] == ("user.>",)  # derived: `<first token>.>`
    assert streams["AUTH"] == ("auth.>",)
    assert streams["CACHE"] == ("cache.>",)


async def test_a_message_that_declares_no_event_is_refused_with_the_fix() -> None:
    broker = MemoryBroker(metrics=BrokerMetrics(CollectorRegistry()))
    with pytest.raises(NotAnEventError, match=r"auth\.v1\.RevokeTokenRequest is not an event"):
        await publish_event(broker, RevokeTokenRequest(token="t"))
    with pytest.raises(NotAnEventError, match=r"\(micro\.v1\.event\)"):
        await broker.subscribe(RevokeTokenRequest, Collector(), queue="audit")


def test_streams_never_fight_over_their_subjects() -> None:
    event_spec(UserLoggedIn)
    declare_stream("USER", "user.created")  # another event of the same stream: same subjects
    with pytest.raises(ValueError, match="holds user"):
        declare_stream("USER", "account.created")
    with pytest.raises(ValueError, match="belongs to stream USER"):
        declare_stream("PEOPLE", "user.renamed")
    with pytest.raises(ValueError, match="upper case"):
        declare_stream("user.stream", "user.x")
    assert known_streams(BrokerSettings())["USER"] == ("user.>",)


def test_a_refused_stream_declaration_leaves_no_stream_behind() -> None:
    event_spec(UserLoggedIn)
    with pytest.raises(ValueError, match="belongs to stream USER"):
        declare_stream("PEOPLE2", "user.renamed")

    assert "PEOPLE2" not in known_streams(BrokerSettings())
