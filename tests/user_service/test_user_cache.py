"""GetUser from memory: never stale after this replica's writes, at most the TTL after others'."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import db
from tests.support.eventually import eventually
from user_service.cache import UserCache
from user_service.repository import SqlUserRepository, ensure_schema

SEED_ID = 10001


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(f"sqlite:///{tmp_path}/users.db")
    await ensure_schema(engine)
    yield engine
    await engine.dispose()


async def test_a_login_recorded_by_this_replica_is_seen_at_once(engine: AsyncEngine) -> None:
    users = SqlUserRepository(db.session_factory(engine), cache=UserCache(ttl_s=3600))
    assert (await users.by_id(SEED_ID)) is not None  # now cached
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    await users.record_login("event-1", SEED_ID, at, "", "")

    stored = await users.by_id(SEED_ID)
    assert stored is not None
    assert stored.last_login_at == at


async def test_a_change_made_by_another_replica_is_seen_within_the_ttl(
    engine: AsyncEngine,
) -> None:
    ttl_s = 0.3
    this = SqlUserRepository(db.session_factory(engine), cache=UserCache(ttl_s=ttl_s))
    other = SqlUserRepository(db.session_factory(engine))
    assert (await this.by_id(SEED_ID)) is not None
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    await other.record_login("event-1", SEED_ID, at, "", "")
    changed_at = time.monotonic()

    async def last_login() -> datetime | None:
        stored = await this.by_id(SEED_ID)
        return stored.last_login_at if stored else None

    await eventually(last_login, lambda seen: seen == at, timeout=ttl_s + 0.2, interval=0.01)
    assert time.monotonic() - changed_at <= ttl_s + 0.2
