"""The transactional outbox: an event is committed with its change, and relayed once.

On SQLite and on the machine's MariaDB (where replicas claim rows with SKIP LOCKED),
with the in-memory broker playing NATS' outages.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase

from shared import db
from shared.broker import BrokerMetrics, BrokerSettings, MemoryBroker
from shared.broker.events import decode, subject_of
from shared.outbox import OutboxColumns, OutboxRelay, stage_event
from shared.proto.user.v1.user_events_pb2 import UserCreated
from tests.shared.broker.helpers import Collector
from tests.support.eventually import eventually

N = 30


class Base(DeclarativeBase):
    pass


class Outbox(OutboxColumns, Base):
    __tablename__ = "test_outbox"


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.integration)])
async def sessions(
    request: pytest.FixtureRequest, tmp_path: object
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/outbox.db"
    else:
        url = request.getfixturevalue("mariadb_database").replace("pymysql", "aiomysql")
    engine = db.create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield db.session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    broker = MemoryBroker(
        BrokerSettings(url="memory://", close_timeout_s=1),
        metrics=BrokerMetrics(CollectorRegistry()),
    )
    await broker.start()
    yield broker
    await broker.stop()


async def create_users(sessions: async_sessionmaker[AsyncSession], count: int) -> list[str]:
    """`count` changes, each committing its event (the change itself is elided)."""
    ids = []
    for number in range(count):
        async with sessions() as session:
            ids.append(stage_event(session, Outbox, UserCreated(user_id=number, user_name="u")))
            await session.commit()
    return ids


async def pending(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Outbox)) or 0)


async def test_events_wait_in_the_table_while_the_broker_is_down_then_go_once_each(
    sessions: async_sessionmaker[AsyncSession], broker: MemoryBroker
) -> None:
    seen = Collector()
    await broker.subscribe(UserCreated, seen, queue="audit")
    broker.set_online(False)
    relay = OutboxRelay(sessions, Outbox, broker, poll_s=0.05, publish_timeout_s=0.2)
    await relay.start()
    try:
        ids = await create_users(sessions, N)
        await asyncio.sleep(0.3)  # the relay tries, and cannot: nothing goes, nothing is lost
        assert seen.ids == []
        assert await pending(sessions) == N

        broker.set_online(True)
        relay.wake()
        await seen.wait_for(N)
        assert await eventually(lambda: pending(sessions), lambda n: n == 0) == 0
        assert await broker.flush(5)
    finally:
        await relay.stop()
    assert seen.ids == ids  # in order, once each, with the ids they were written with
    users = [decode(event, UserCreated).user_id for event in seen.events]
    assert users == list(range(N))
    assert all(event.subject == subject_of(UserCreated) for event in seen.events)


async def test_a_rolled_back_change_publishes_nothing(
    sessions: async_sessionmaker[AsyncSession], broker: MemoryBroker
) -> None:
    async with sessions() as session:
        stage_event(session, Outbox, UserCreated(user_id=1))
        await session.rollback()
    assert await pending(sessions) == 0


async def test_a_crash_between_commit_and_publish_loses_nothing(
    sessions: async_sessionmaker[AsyncSession], broker: MemoryBroker
) -> None:
    """Committed by a process that died before its relay ran: the next relay sends them."""
    ids = await create_users(sessions, N)  # committed; no relay ran: "the crash"
    seen = Collector()
    await broker.subscribe(UserCreated, seen, queue="audit")
    relay = OutboxRelay(sessions, Outbox, broker, poll_s=0.05)
    assert await relay.relay_once() == N
    assert await broker.flush(5)
    assert seen.ids == ids
    assert await pending(sessions) == 0


# One relay per SQLite database (it has one writer): replicas share a MariaDB.
@pytest.mark.parametrize(
    "sessions", [pytest.param("mariadb", marks=pytest.mark.integration)], indirect=True
)
async def test_two_relays_publish_each_row_once(
    sessions: async_sessionmaker[AsyncSession], broker: MemoryBroker
) -> None:
    """Replicas claim rows (SKIP LOCKED on MariaDB): no event is published twice."""
    seen = Collector()
    await broker.subscribe(UserCreated, seen, queue="audit")
    ids = await create_users(sessions, N)
    relays = [OutboxRelay(sessions, Outbox, broker, poll_s=0.02, batch=5) for _ in range(2)]
    for relay in relays:
        await relay.start()
    try:
        await seen.wait_for(N)
        assert await eventually(lambda: pending(sessions), lambda n: n == 0) == 0
        assert await broker.flush(5)
    finally:
        for relay in relays:
            await relay.stop()
    assert sorted(seen.ids) == sorted(ids)
    assert len(seen.ids) == N
