"""Point reads from a SQLite file on the event loop, without aiosqlite's thread hop.

aiosqlite runs every statement on a worker thread: for a primary-key read that SQLite answers
in microseconds, the hand-off to and from that thread costs far more than the read (about
half of a service's CPU on a hot read path). This connection is used on the loop directly,
for short indexed reads only. It is safe to do so because

- the database is in WAL mode (set here, persistent in the file): readers never wait for
  the writer, and the writer (SQLAlchemy asyncio, on its own connection) never waits for
  readers; a read sees the last committed transaction;
- it is read-only (`query_only`), so it never holds a write lock;
- a busy wait is bounded (`busy_timeout`), for the rare moment WAL itself needs a lock.

Switching a new file to WAL needs a moment without a writer, and SQLite refuses it at once
("database is locked") rather than wait: two replicas starting on one new file, one
creating the schema while the other switched, left the second dead at start. `open`
retries until the switch is made.

Writes, scans and anything slow stay on SQLAlchemy asyncio.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy.engine import make_url

from shared.retry import until_done

# The longest the loop may wait for a lock: WAL readers only wait on WAL recovery.
_BUSY_TIMEOUT_MS = 50


def sqlite_file(url: str) -> str | None:
    """The database file of a SQLite URL (None for other databases and in-memory ones)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


class SqliteReads:
    def __init__(self, path: str) -> None:
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._connection.execute("PRAGMA query_only=ON")
        except sqlite3.Error:
            self._connection.close()
            raise

    @classmethod
    def for_url(cls, url: str) -> SqliteReads | None:
        """A reader for the URL's SQLite file; None when the URL is not a SQLite file."""
        path = sqlite_file(url)
        return cls(path) if path is not None else None

    @classmethod
    async def open(cls, url: str) -> SqliteReads | None:
        """`for_url`, tried again while another connection is writing to a new file."""

        async def attempt() -> SqliteReads | None:
            return cls.for_url(url)

        return await until_done(
            attempt, "opening SQLite for reads", retry_on=(sqlite3.OperationalError,)
        )

    def one(self, sql: str, parameters: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        """The first row of an indexed read (call it only for reads that take microseconds)."""
        row: tuple[Any, ...] | None = self._connection.execute(sql, parameters).fetchone()
        return row

    def close(self) -> None:
        self._connection.close()
