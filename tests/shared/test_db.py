"""Database work that fails fast: a hung or unreachable database is a prompt 503, not a hang."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from shared import db, deadline
from shared.errors import Reason, ServiceError


async def test_work_past_its_timeout_is_unavailable_in_time() -> None:
    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        async with db.failing_fast(0.05):
            await asyncio.sleep(5)  # a statement on a server that never answers

    assert caught.value.reason is Reason.UNAVAILABLE
    assert time.monotonic() - started < 1


async def test_the_callers_deadline_wins_when_it_is_nearer() -> None:
    started = time.monotonic()
    with deadline.budget(0.05), pytest.raises(ServiceError) as caught:
        async with db.failing_fast(30):
            await asyncio.sleep(5)

    assert time.monotonic() - started < 1
    assert caught.value.reason is Reason.TIMEOUT  # the caller's time ran out, not the database


async def test_a_database_that_cannot_be_reached_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "users.db").mkdir()  # a directory where the database file should be
    engine = db.create_engine(f"sqlite:///{tmp_path}/users.db")
    before = set(threading.enumerate())
    try:
        with pytest.raises(ServiceError) as caught:
            async with db.failing_fast(2), engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
        # aiosqlite queues a failed connection's stop without awaiting it: its thread must
        # finish while this loop runs, or it reports to a closed loop (a warning later).
        for thread in set(threading.enumerate()) - before:
            await asyncio.to_thread(thread.join, 5)

    assert caught.value.reason is Reason.UNAVAILABLE
    assert str(caught.value) == "the database is unavailable"
