from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry

from shared.broker import BrokerMetrics, BrokerSettings, Event, MemoryBroker
from tests.shared.broker.helpers import Collector, sample, total

MakeBroker = Callable[..., Awaitable[MemoryBroker]]
# These tests use raw subjects, which no event declares: their stream is configured.
RAW_SUBJECTS = BrokerSettings(url="memory://", streams={"USER": ("user.>",)})


@pytest.fixture
def metrics_registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def make_broker(metrics_registry: CollectorRegistry) -> AsyncIterator[MakeBroker]:
    made: list[MemoryBroker] = []

    async def make(**overrides: object) -> MemoryBroker:
        settings = BrokerSettings.model_validate(
            {
                "url": "memory://",
                "nak_delay_s": 0.0,
                "max_deliver": 3,
                "streams": {"USER": ("user.>",)},  # raw subjects: no event declares it
                **overrides,
            }
        )
        broker = MemoryBroker(settings, metrics=BrokerMetrics(metrics_registry))
        await broker.start()
        made.append(broker)
        return broker

    yield make
    for broker in made:
        await broker.stop()


async def test_a_queue_group_handles_each_event_once(make_broker: MakeBroker) -> None:
    broker = await make_broker()
    first, second = Collector(), Collector()
    await broker.subscribe("user.logged_in", first, queue="user_service")
    await broker.subscribe("user.logged_in", second, queue="user_service")

    ids = [await broker.publish("user.logged_in", b"%d" % i) for i in range(100)]
    assert await broker.flush(5)

    handled = first.ids + second.ids
    assert sorted(handled) == sorted(ids)
    assert first.events
    assert second.events


async def test_every_group_gets_every_event(make_broker: MakeBroker) -> None:
    broker = await make_broker()
    audit, stats = Collector(), Collector()
    await broker.subscribe("user.>", audit, queue="audit")
    await broker.subscribe("user.logged_in", stats, queue="stats", durable=False)

    ids = [await broker.publish("user.logged_in", b"x") for _ in range(10)]
    await broker.publish("auth.token_revoked", b"not for them")
    assert await broker.flush(5)

    assert audit.ids == ids
    assert stats.ids == ids


async def test_a_failed_event_is_delivered_again_and_applied_once(
    make_broker: MakeBroker,
) -> None:
    broker = await make_broker()
    applied: dict[str, bytes] = {}  # plays a table with a UNIQUE event_id
    deliveries: list[int] = []

    async def handler(event: Event) -> None:
        deliveries.append(event.delivery_count)
        applied.setdefault(event.event_id, event.data)
        if event.delivery_count == 1:
            raise RuntimeError("crashed before the ack")

    await broker.subscribe("user.logged_in", handler, queue="user_service")
    event_id = await broker.publish("user.logged_in", b"ann")
    assert await broker.flush(5)

    assert deliveries == [1, 2]
    assert applied == {event_id: b"ann"}
    assert broker.dead_letters == []


async def test_after_max_deliver_the_event_is_a_dead_letter(
    make_broker: MakeBroker, metrics_registry: CollectorRegistry
) -> None:
    broker = await make_broker(max_deliver=3)
    calls: list[int] = []

    async def handler(event: Event) -> None:
        calls.append(event.delivery_count)
        raise ValueError("poison")

    await broker.subscribe("user.logged_in", handler, queue="user_service")
    event_id = await broker.publish("user.logged_in", b"poison")
    assert await broker.flush(5)

    assert calls == [1, 2, 3]
    [dead] = broker.dead_letters
    assert (dead.event.event_id, dead.queue, dead.event.delivery_count) == (
        event_id,
        "user_service",
        3,
    )
    assert "poison" in dead.error
    labels = {"subject": "user.logged_in", "queue": "user_service"}
    assert sample(metrics_registry, "broker_events_dead_lettered_total", **labels) == 1
    assert sample(metrics_registry, "broker_handler_errors_total", **labels) == 3


async def test_a_core_subscription_is_not_redelivered(make_broker: MakeBroker) -> None:
    broker = await make_broker()
    calls: list[Event] = []

    async def handler(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("boom")

    await broker.subscribe("cache.flush", handler, queue="api", durable=False)
    await broker.publish("cache.flush", b"")
    assert await broker.flush(5)

    assert len(calls) == 1
    assert broker.dead_letters == []


async def test_events_wait_while_offline_and_a_full_outbox_drops_loudly(
    make_broker: MakeBroker, metrics_registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    broker = await make_broker(outbox_size=3)
    seen = Collector()
    await broker.subscribe("user.logged_in", seen, queue="audit")
    broker.set_online(False)

    with caplog.at_level(logging.WARNING, logger="shared.broker"):
        ids = [await broker.publish("user.logged_in", b"%d" % i) for i in range(5)]

    assert not await broker.flush(0.05)
    assert sample(metrics_registry, "broker_events_dropped_total", subject="user.logged_in") == 2
    assert sample(metrics_registry, "broker_outbox_size") == 3
    assert sum("outbox full" in r.getMessage() for r in caplog.records) == 2
    assert all(r.levelno == logging.WARNING for r in caplog.records)

    broker.set_online(True)
    assert await broker.flush(5)
    assert seen.ids == ids[:3]
    assert sample(metrics_registry, "broker_events_published_total", subject="user.logged_in") == 3
    assert sample(metrics_registry, "broker_outbox_size") == 0


async def test_headers_and_the_publish_hook_reach_the_handler(
    metrics_registry: CollectorRegistry,
) -> None:
    def hook(subject: str, headers: dict[str, str]) -> None:
        headers["traceparent"] = f"00-{subject}"

    broker = MemoryBroker(RAW_SUBJECTS, metrics=BrokerMetrics(metrics_registry), on_publish=hook)
    await broker.start()
    seen = Collector()
    await broker.subscribe("user.logged_in", seen, queue="audit")
    await broker.publish("user.logged_in", b"", headers={"x-a": "1"}, event_id="e-1")
    await broker.stop()

    [event] = seen.events
    assert event.event_id == "e-1"
    assert event.headers["x-a"] == "1"
    assert event.headers["traceparent"] == "00-user.logged_in"
    assert event.headers["Nats-Msg-Id"] == "e-1"


async def test_a_broken_hook_costs_neither_the_event_nor_the_request(
    metrics_registry: CollectorRegistry,
) -> None:
    def hook(subject: str, headers: dict[str, str]) -> None:
        raise RuntimeError("tracing bug")

    broker = MemoryBroker(RAW_SUBJECTS, metrics=BrokerMetrics(metrics_registry), on_publish=hook)
    await broker.start()
    seen = Collector()
    await broker.subscribe("user.logged_in", seen, queue="audit")
    await broker.publish("user.logged_in", b"still sent")
    await broker.stop()
    assert [e.data for e in seen.events] == [b"still sent"]


async def test_mistakes_raise_at_once(make_broker: MakeBroker) -> None:
    broker = await make_broker()
    with pytest.raises(ValueError, match="no stream"):
        await broker.subscribe("cache.flush", Collector(), queue="api")
    with pytest.raises(ValueError, match="invalid subject"):
        await broker.publish("user.*", b"")
    with pytest.raises(ValueError, match="invalid subject"):
        await broker.subscribe("user..x", Collector(), queue="api", durable=False)
    # As NATS refuses it: a fake that took it would let a mistake pass every unit test.
    for queue in ("", "a.b", "a b"):
        with pytest.raises(ValueError, match="invalid queue group"):
            await broker.subscribe("user.logged_in", Collector(), queue=queue)


async def test_closing_sends_what_is_queued_and_drops_and_counts_the_rest(
    make_broker: MakeBroker, metrics_registry: CollectorRegistry
) -> None:
    broker = await make_broker(close_timeout_s=0.05)
    broker.set_online(False)
    await broker.publish("user.logged_in", b"")
    await broker.stop()
    assert total(metrics_registry, "broker_events_dropped_total") == 1
    assert sample(metrics_registry, "broker_outbox_size") == 0
