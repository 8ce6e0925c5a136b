"""Point reads on the loop: opening them beside a replica that is creating the database."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from shared.sqlite_reads import SqliteReads


def hold_a_write(path: Path, holding: threading.Event, release: threading.Event) -> None:
    """Another replica creating the schema: a write transaction on a new (rollback) file."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY)")
    connection.execute("BEGIN IMMEDIATE")
    connection.execute("INSERT INTO users VALUES (1)")
    holding.set()
    release.wait(10)
    connection.execute("COMMIT")
    connection.close()


async def test_reads_open_once_the_other_replica_has_written(tmp_path: Path) -> None:
    path = tmp_path / "users.db"
    holding, release = threading.Event(), threading.Event()
    writer = threading.Thread(target=hold_a_write, args=(path, holding, release))
    writer.start()
    try:
        await asyncio.to_thread(holding.wait, 10)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            SqliteReads(str(path))  # the switch to WAL is refused at once, not waited for
        opening = asyncio.create_task(SqliteReads.open(f"sqlite:///{path}"))
        await asyncio.sleep(0)  # its first attempt fails while the write goes on
        release.set()
        reads = await asyncio.wait_for(opening, 10)
    finally:
        release.set()
        await asyncio.to_thread(writer.join)

    assert reads is not None
    assert reads.one("SELECT id FROM users") == (1,)
    assert reads.one("PRAGMA journal_mode") == ("wal",)
    reads.close()


async def test_a_database_that_is_not_a_sqlite_file_has_no_point_reads() -> None:
    assert await SqliteReads.open("mysql+aiomysql://root@127.0.0.1/users") is None
    assert await SqliteReads.open("sqlite+aiosqlite:///:memory:") is None
