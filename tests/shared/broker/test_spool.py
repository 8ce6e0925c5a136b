"""The spool: events waiting for the server are in a file, and outlive the process."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from shared.broker import BrokerMetrics, BrokerSettings, MemoryBroker
from shared.broker.outbox import Outgoing, make_outgoing
from shared.broker.spool import SqliteOutbox, spool_file
from tests.shared.broker.helpers import Collector, sample


def settings(path: Path, **overrides: object) -> BrokerSettings:
    return BrokerSettings.model_validate(
        {
            "url": "memory://",
            "streams": {"USER": ("user.>",)},  # raw subjects: no event declares it
            "spool_path": str(path),
            "close_timeout_s": 0.1,
            **overrides,
        }
    )


def rows_in(path: Path) -> int:
    with sqlite3.connect(path) as db:
        count: int = db.execute("SELECT count(*) FROM spool").fetchone()[0]
    return count


async def test_unsent_events_stay_in_the_file_and_go_out_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    registry = CollectorRegistry()
    first = MemoryBroker(settings(path), metrics=BrokerMetrics(registry))
    await first.start()
    first.set_online(False)
    ids = [await first.publish("user.logged_in", b"%d" % i) for i in range(50)]
    await first.stop()  # NATS never came back: nothing is dropped
    assert rows_in(path) == 50
    assert sample(registry, "broker_events_dropped_total", subject="user.logged_in") == 0

    second = MemoryBroker(settings(path), metrics=BrokerMetrics(CollectorRegistry()))
    seen = Collector()
    await second.subscribe("user.logged_in", seen, queue="audit")
    await second.start()
    assert await second.flush(5)
    # In order, with the ids they were published with (the server's dedup key).
    assert seen.ids == ids
    assert [event.data for event in seen.events] == [b"%d" % i for i in range(50)]
    await second.stop()
    assert rows_in(path) == 0


async def test_a_full_spool_drops_the_newest_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    broker = MemoryBroker(
        settings(tmp_path / "s.sqlite3", outbox_size=3), metrics=BrokerMetrics(registry)
    )
    await broker.start()
    broker.set_online(False)
    seen = Collector()
    await broker.subscribe("user.logged_in", seen, queue="audit")
    with caplog.at_level(logging.WARNING, logger="shared.broker"):
        ids = [await broker.publish("user.logged_in", b"x") for _ in range(5)]
    assert sample(registry, "broker_events_dropped_total", subject="user.logged_in") == 2
    assert sum("spool full" in r.getMessage() for r in caplog.records) == 2
    assert sample(registry, "broker_outbox_size") == 3

    broker.set_online(True)
    assert await broker.flush(5)
    assert seen.ids == ids[:3]
    assert sample(registry, "broker_outbox_size") == 0
    await broker.stop()


async def test_the_byte_bound_holds_too(tmp_path: Path) -> None:
    outbox = SqliteOutbox(
        _never_sent,
        path=str(tmp_path / "s.sqlite3"),
        capacity=100,
        max_bytes=10,
        metrics=BrokerMetrics(CollectorRegistry()),
    )
    assert await outbox.put(_item(b"123456"))
    assert not await outbox.put(_item(b"123456"))
    assert len(outbox) == 1
    await outbox.stop()


async def test_a_put_costs_the_event_loop_little(tmp_path: Path) -> None:
    """What the loop pays per spooled event (the insert runs on the spool's thread)."""
    outbox = SqliteOutbox(
        _never_sent,
        path=str(tmp_path / "s.sqlite3"),
        capacity=10_000,
        max_bytes=1 << 30,
        metrics=BrokerMetrics(CollectorRegistry()),
    )
    item = _item(b"x" * 200)
    await outbox.put(item)
    started = time.perf_counter()
    for _ in range(1000):
        await outbox.put(item)
    per_put_us = (time.perf_counter() - started) * 1000
    print(f"spool put: {per_put_us:.0f} us per event, awaited one at a time")
    # Generous: a loaded machine. Bounded by the disk, never by the loop.
    assert per_put_us < 5000
    await outbox.stop()


async def _never_sent(item: Outgoing) -> None:
    await asyncio.Event().wait()


def _item(data: bytes) -> Outgoing:
    return make_outgoing("user.x", data, headers=None, event_id=None, on_publish=None)


def test_replicas_sharing_a_volume_each_get_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "replica-7")
    assert spool_file("/data/api-{hostname}.sqlite3") == Path("/data/api-replica-7.sqlite3")
    assert spool_file("/data/api.sqlite3") == Path("/data/api.sqlite3")


async def test_a_spool_that_cannot_be_written_drops_and_counts_without_raising(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("")
    registry = CollectorRegistry()
    outbox = SqliteOutbox(
        _never_sent,
        path=str(tmp_path / "a-file" / "spool.sqlite3"),  # its folder is a file
        capacity=10,
        max_bytes=1000,
        metrics=BrokerMetrics(registry),
    )
    assert not await outbox.put(_item(b"x"))
    assert sample(registry, "broker_events_dropped_total", subject="user.x") == 1
    await outbox.stop()


async def test_the_relay_outlives_a_failed_delete_and_sends_every_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[bytes] = []

    async def send(item: Outgoing) -> None:
        sent.append(item.data)

    outbox = SqliteOutbox(
        send,
        path=str(tmp_path / "spool.sqlite3"),
        capacity=10,
        max_bytes=1000,
        metrics=BrokerMetrics(CollectorRegistry()),
        retry_max_s=0.01,
    )
    delete = outbox._delete
    failures = iter([sqlite3.OperationalError("disk I/O error")])

    def flaky_delete(seq: int, size: int) -> None:
        if error := next(failures, None):
            raise error
        delete(seq, size)

    monkeypatch.setattr(outbox, "_delete", flaky_delete)
    for data in (b"a", b"b", b"c"):
        assert await outbox.put(_item(data))
    outbox.start()
    assert await outbox.flush(5)
    await outbox.stop()
    # The event whose delete failed stays and goes again (the server drops the copy by id).
    assert sent == [b"a", b"a", b"b", b"c"]
    assert rows_in(tmp_path / "spool.sqlite3") == 0
