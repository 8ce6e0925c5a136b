"""The NATS broker against real nats-server processes (see tests/support/nats.py)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import pytest
from nats.js.api import ConsumerInfo
from prometheus_client import CollectorRegistry

from shared.broker import BrokerMetrics, BrokerSettings, Event, NatsBroker
from shared.broker.outbox import Outgoing
from shared.broker.protocol import STREAM_HEADER
from shared.broker.spool import SqliteOutbox
from shared.broker.subjects import consumer_name
from tests.shared.broker.helpers import Collector, sample, wait_until
from tests.support.nats import NatsServer
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

SUBJECT = "user.logged_in"
MakeBroker = Callable[..., Awaitable[NatsBroker]]


@pytest.fixture
def metrics_registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def make_broker(
    nats_server: NatsServer, metrics_registry: CollectorRegistry
) -> AsyncIterator[MakeBroker]:
    made: list[NatsBroker] = []
    metrics = BrokerMetrics(metrics_registry)

    async def make(service: str = "svc", **overrides: object) -> NatsBroker:
        settings = BrokerSettings.model_validate(
            {
                "url": nats_server.url,
                "ack_wait_s": 1.0,
                "max_deliver": 3,
                "nak_delay_s": 0.05,
                "reconnect_wait_s": 0.05,
                "reconnect_max_wait_s": 0.2,
                "publish_timeout_s": 1.0,
                "close_timeout_s": 3.0,
                # Raw subjects: no event declares these tests' stream.
                "streams": {"USER": ("user.>",)},
                **overrides,
            }
        )
        broker = NatsBroker(settings, service, metrics=metrics)
        await broker.start()
        made.append(broker)
        return broker

    yield make
    await asyncio.gather(*(broker.stop() for broker in made))


async def consumer_info(server: NatsServer, queue: str, subject: str = SUBJECT) -> ConsumerInfo:
    nc = await nats.connect(server.url)
    try:
        info: ConsumerInfo = await nc.jetstream().consumer_info(
            "USER", consumer_name(queue, subject)
        )
        return info
    finally:
        await nc.close()


async def settled(server: NatsServer, queue: str) -> ConsumerInfo:
    """The consumer's state once every delivered event is acked (acks are asynchronous)."""
    async with asyncio.timeout(5):
        while True:
            info = await consumer_info(server, queue)
            if info.num_ack_pending == 0 and info.num_pending == 0:
                return info
            await asyncio.sleep(0.02)


async def test_replicas_of_a_service_share_durable_events(
    make_broker: MakeBroker, nats_server: NatsServer
) -> None:
    replicas = [await make_broker("user_service") for _ in range(2)]
    collectors = [Collector(), Collector()]
    for replica, collector in zip(replicas, collectors, strict=True):
        await replica.subscribe(SUBJECT, collector, queue="user_service")
    publisher = await make_broker("user_api")

    ids = [await publisher.publish(SUBJECT, b"%d" % i) for i in range(100)]
    await wait_until(lambda: sum(len(c.events) for c in collectors) >= 100)

    handled = collectors[0].ids + collectors[1].ids
    assert sorted(handled) == sorted(ids)
    assert all(c.events for c in collectors)
    info = await settled(nats_server, "user_service")
    assert info.num_redelivered == 0


async def test_each_service_gets_every_durable_event(make_broker: MakeBroker) -> None:
    audit, stats = Collector(), Collector()
    await (await make_broker("audit")).subscribe(SUBJECT, audit, queue="audit")
    await (await make_broker("stats")).subscribe("user.>", stats, queue="stats")
    publisher = await make_broker("user_api")

    ids = [await publisher.publish(SUBJECT, b"") for _ in range(50)]
    await audit.wait_for(50)
    await stats.wait_for(50)
    assert sorted(audit.ids) == sorted(stats.ids) == sorted(ids)


async def test_core_queue_groups(make_broker: MakeBroker) -> None:
    members = [Collector(), Collector()]
    other = Collector()
    for member in members:
        await (await make_broker("api")).subscribe(
            "cache.flush", member, queue="api", durable=False
        )
    await (await make_broker("web")).subscribe("cache.*", other, queue="web", durable=False)
    publisher = await make_broker("admin")

    ids = [await publisher.publish("cache.flush", b"") for _ in range(100)]
    await other.wait_for(100)
    await wait_until(lambda: sum(len(m.events) for m in members) >= 100)
    assert sorted(members[0].ids + members[1].ids) == sorted(ids)
    assert sorted(other.ids) == sorted(ids)


async def test_publishing_while_nats_is_down_neither_blocks_nor_loses(
    make_broker: MakeBroker, nats_server: NatsServer, metrics_registry: CollectorRegistry
) -> None:
    seen = Collector()
    await (await make_broker("audit")).subscribe(SUBJECT, seen, queue="audit")
    publisher = await make_broker("user_api")
    await nats_server.stop()

    ids, slowest = [], 0.0
    for i in range(50):
        started = time.perf_counter()
        ids.append(await publisher.publish(SUBJECT, b"%d" % i))
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 0.005
    assert sample(metrics_registry, "broker_outbox_size") == 50

    await nats_server.start()
    assert await publisher.flush(10)
    await seen.wait_for(50)
    assert sorted(set(seen.ids)) == sorted(ids)
    assert sample(metrics_registry, "broker_events_published_total", subject=SUBJECT) == 50
    assert sample(metrics_registry, "broker_outbox_size") == 0


async def test_a_crash_before_the_ack_redelivers_and_applies_once(
    make_broker: MakeBroker, nats_server: NatsServer
) -> None:
    applied: dict[str, bytes] = {}  # plays a table with a UNIQUE event_id
    deliveries = Collector()

    async def handler(event: Event) -> None:
        await deliveries(event)
        applied.setdefault(event.event_id, event.data)
        if event.delivery_count == 1:
            raise RuntimeError("crashed after writing, before the ack")

    await (await make_broker("user_service")).subscribe(SUBJECT, handler, queue="user_service")
    event_id = await (await make_broker("user_api")).publish(SUBJECT, b"ann")

    await deliveries.wait_for(2)
    assert [e.delivery_count for e in deliveries.events] == [1, 2]
    assert applied == {event_id: b"ann"}
    assert (await settled(nats_server, "user_service")).num_ack_pending == 0


async def test_an_event_not_acked_within_ack_wait_is_delivered_again(
    make_broker: MakeBroker,
) -> None:
    applied: dict[str, int] = {}  # plays a table with a UNIQUE event_id
    deliveries, finished = Collector(), Collector()

    async def slow_first_time(event: Event) -> None:
        await deliveries(event)
        if event.delivery_count == 1:
            await deliveries.wait_for(2)  # outlives ack_wait (1 s): the server redelivers
        applied.setdefault(event.event_id, event.delivery_count)
        await finished(event)

    subscriber = await make_broker("user_service", max_in_flight=2)
    await subscriber.subscribe(SUBJECT, slow_first_time, queue="user_service")
    event_id = await (await make_broker("user_api")).publish(SUBJECT, b"")

    await finished.wait_for(2)
    assert [e.delivery_count for e in deliveries.events] == [1, 2]
    assert applied == {event_id: 2}


async def test_after_max_deliver_the_event_is_kept_in_the_dlq_stream(
    make_broker: MakeBroker, nats_server: NatsServer, metrics_registry: CollectorRegistry
) -> None:
    calls = Collector()

    async def poison(event: Event) -> None:
        await calls(event)
        raise ValueError("cannot parse")

    nc = await nats.connect(nats_server.url)
    dead = await nc.subscribe("dlq.>")
    try:
        await (await make_broker("user_service")).subscribe(SUBJECT, poison, queue="user_service")
        # As every event the kit publishes: it names the stream it is meant for.
        event_id = await (await make_broker("user_api")).publish(
            SUBJECT, b"bad", headers={"traceparent": "00-abc", STREAM_HEADER: "USER"}
        )
        letter = await dead.next_msg(timeout=10)
        stored = await nc.jetstream().get_last_msg("DLQ", "dlq." + SUBJECT)
    finally:
        await nc.close()

    assert [e.delivery_count for e in calls.events] == [1, 2, 3]
    assert letter.subject == "dlq." + SUBJECT
    assert stored.data == letter.data == b"bad"
    headers = stored.headers or {}
    assert headers["Dlq-Event-Id"] == event_id
    assert headers["Dlq-Queue"] == "user_service"
    assert headers["Dlq-Deliveries"] == "3"
    assert headers["Dlq-Stream"] == "USER"
    assert "cannot parse" in headers["Dlq-Error"]
    assert headers["traceparent"] == "00-abc"
    assert (await settled(nats_server, "user_service")).num_ack_pending == 0
    labels = {"subject": SUBJECT, "queue": "user_service"}
    assert sample(metrics_registry, "broker_events_dead_lettered_total", **labels) == 1


async def test_a_last_attempt_that_never_acks_is_dead_lettered(
    make_broker: MakeBroker, nats_server: NatsServer
) -> None:
    release = asyncio.Event()
    calls = Collector()

    async def hangs(event: Event) -> None:
        await calls(event)
        await release.wait()

    nc = await nats.connect(nats_server.url)
    dead = await nc.subscribe("dlq.>")
    try:
        subscriber = await make_broker("user_service", max_deliver=1)
        await subscriber.subscribe(SUBJECT, hangs, queue="user_service")
        await (await make_broker("user_api")).publish(SUBJECT, b"")
        letter = await dead.next_msg(timeout=10)
    finally:
        release.set()
        await nc.close()
    assert len(calls.events) == 1
    assert (letter.headers or {})["Dlq-Deliveries"] == "2"


async def test_subscriptions_survive_a_server_restart(
    make_broker: MakeBroker, nats_server: NatsServer
) -> None:
    durable, core = Collector(), Collector()
    subscriber = await make_broker("audit")
    await subscriber.subscribe(SUBJECT, durable, queue="audit")
    await subscriber.subscribe("cache.flush", core, queue="audit", durable=False)
    publisher = await make_broker("user_api")

    await publisher.publish(SUBJECT, b"before")
    await publisher.publish("cache.flush", b"before")
    await durable.wait_for(1)
    await core.wait_for(1)
    await settled(nats_server, "audit")  # else the ack may be lost with the server: redelivery

    await nats_server.restart()
    # A core message reaches only subscribers the server knows of: wait for the replay.
    await wait_until(lambda: subscriber.connected and publisher.connected)
    await publisher.publish(SUBJECT, b"after")
    await publisher.publish("cache.flush", b"after")
    await durable.wait_for(2)
    await core.wait_for(2)
    assert [e.data for e in durable.events] == [b"before", b"after"]
    assert [e.data for e in core.events] == [b"before", b"after"]


async def test_durable_subscriptions_recover_when_the_server_loses_its_state(
    make_broker: MakeBroker, nats_server: NatsServer
) -> None:
    seen = Collector()
    await (await make_broker("audit")).subscribe(SUBJECT, seen, queue="audit")
    publisher = await make_broker("user_api")
    await publisher.publish(SUBJECT, b"before")
    await seen.wait_for(1)
    await settled(nats_server, "audit")

    await nats_server.stop()
    shutil.rmtree(nats_server.store_dir)
    await nats_server.start()
    await publisher.publish(SUBJECT, b"after")
    await seen.wait_for(2)
    assert [e.data for e in seen.events] == [b"before", b"after"]


async def test_a_full_outbox_drops_counts_and_warns(
    make_broker: MakeBroker,
    nats_server: NatsServer,
    metrics_registry: CollectorRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await nats_server.stop()
    started = time.perf_counter()
    publisher = await make_broker("user_api", outbox_size=5)
    assert time.perf_counter() - started < 1.0  # start() does not wait for NATS

    with caplog.at_level(logging.WARNING, logger="shared.broker"):
        for _ in range(8):
            await publisher.publish(SUBJECT, b"")
    assert sample(metrics_registry, "broker_events_dropped_total", subject=SUBJECT) == 3
    full = [r for r in caplog.records if "outbox full" in r.getMessage()]
    assert len(full) == 3
    assert all(r.levelno == logging.WARNING for r in full)

    await nats_server.start()
    assert await publisher.flush(10)
    assert sample(metrics_registry, "broker_events_published_total", subject=SUBJECT) == 5


async def test_close_flushes_and_headers_travel(make_broker: MakeBroker) -> None:
    seen = Collector()
    await (await make_broker("audit")).subscribe(SUBJECT, seen, queue="audit")
    publisher = await make_broker("user_api")
    ids = [
        await publisher.publish(SUBJECT, b"", headers={"traceparent": f"00-{i}"}) for i in range(20)
    ]
    await publisher.stop()

    events = await seen.wait_for(20)
    assert sorted(e.event_id for e in events) == sorted(ids)
    assert {e.headers["traceparent"] for e in events} == {f"00-{i}" for i in range(20)}


async def test_with_nats_down_start_and_close_return_and_count_the_loss(
    metrics_registry: CollectorRegistry,
) -> None:
    settings = BrokerSettings(
        url=f"nats://127.0.0.1:{free_port()}",
        close_timeout_s=0.2,
        streams={"USER": ("user.>",)},
    )
    broker = NatsBroker(settings, "svc", metrics=BrokerMetrics(metrics_registry))
    async with asyncio.timeout(2):
        await broker.start()
        await broker.subscribe(SUBJECT, Collector(), queue="svc")
        await broker.subscribe("cache.flush", Collector(), queue="svc", durable=False)
        await broker.publish(SUBJECT, b"")
        assert not await broker.flush(0.05)
        await broker.stop()
    assert sample(metrics_registry, "broker_events_dropped_total", subject=SUBJECT) == 1


async def test_a_spooled_event_reaches_its_stream_before_this_process_declares_it(
    nats_server: NatsServer, make_broker: MakeBroker, tmp_path: Path
) -> None:
    # An earlier run spooled an event of stream AUDIT and died; this run has not published
    # or subscribed to any AUDIT event yet, and no other process created the stream.
    spool = tmp_path / "spool.sqlite3"
    earlier = SqliteOutbox(
        _never_sent,
        path=str(spool),
        capacity=10,
        max_bytes=10_000,
        metrics=BrokerMetrics(CollectorRegistry()),
    )
    outgoing = Outgoing("audit.done", b"kept", "event-1", {STREAM_HEADER: "AUDIT"})
    assert await earlier.put(outgoing)
    await earlier.stop()

    broker = await make_broker(spool_path=str(spool))
    assert await broker.flush(5)
    nc = await nats.connect(nats_server.url)
    try:
        info = await nc.jetstream().stream_info("AUDIT", subjects_filter="audit.done")
    finally:
        await nc.close()
    assert info.config.subjects == ["audit.>"]
    assert (info.state.subjects or {}).get("audit.done") == 1


async def _never_sent(item: Outgoing) -> None:
    raise AssertionError(f"{item.event_id} sent by the earlier run")
