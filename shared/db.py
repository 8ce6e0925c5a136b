"""SQLAlchemy asyncio engine and sessions: MySQL through PyMySQL (aiomysql), or SQLite."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared import deadline
from shared.errors import Reason, ServiceError

log = logging.getLogger(__name__)

_ASYNC_DRIVERS = {
    "mysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
    "sqlite": "sqlite+aiosqlite",
}


def async_url(url: str) -> str:
    """Accept the URL people write (mysql+pymysql://, sqlite:///) and use the async driver.

    aiomysql is PyMySQL driven by asyncio, so a PyMySQL URL means the same server and options.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in _ASYNC_DRIVERS and parsed.drivername not in (
        "mysql+aiomysql",
        "sqlite+aiosqlite",
    ):
        parsed = parsed.set(drivername=_ASYNC_DRIVERS[backend])
    if parsed.get_backend_name() == "mysql" and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed.render_as_string(hide_password=False)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    pool_timeout_s: float = 2.0,
    connect_timeout_s: float = 2.0,
    statement_timeout_s: float | None = None,
) -> AsyncEngine:
    """An engine that fails fast when the server is gone: a request waits at most
    `pool_timeout_s` for a pooled connection and `connect_timeout_s` for a new one (not
    SQLAlchemy's 30 s and the driver's 10 s, far beyond any request's budget), and a
    connection found dead is replaced (pre-ping), so service resumes when the server does.
    `statement_timeout_s` bounds each statement on the server (MariaDB's max_statement_time).
    """
    url = async_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        return create_async_engine(url, echo=echo)
    init = "SET time_zone = '+00:00'"
    if statement_timeout_s is not None:
        init += f", max_statement_time = {statement_timeout_s:g}"
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        pool_timeout=pool_timeout_s,
        pool_pre_ping=True,
        pool_recycle=3600,
        # Timestamps are stored as UTC whatever the server's zone is.
        connect_args={"init_command": init, "connect_timeout": connect_timeout_s},
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def failing_fast(timeout_s: float) -> AsyncIterator[None]:
    """Bound database work by `timeout_s`, and by what is left of the caller's budget.

    A server that is down, unreachable or hung (stopped, partitioned: the driver has no read
    timeout) then answers `ServiceError(UNAVAILABLE)` in time, a 503 the caller may try
    again, instead of the caller's deadline running out on a hang. SQLAlchemy drops a
    connection cut off mid-statement, and pre-ping replaces dead ones: nothing to restart
    when the server is back.
    """
    left = deadline.remaining()
    # When the caller's deadline comes first, it is what runs out: a timeout, not an outage.
    caller_first = left is not None and left < timeout_s
    limit = max(0.0, left) if left is not None and caller_first else timeout_s
    try:
        async with asyncio.timeout(limit):
            yield
    except TimeoutError:
        if caller_first:
            raise ServiceError(Reason.TIMEOUT, "the caller's deadline ran out") from None
        log.warning("the database did not answer within %.2f s", limit)
        raise ServiceError(Reason.UNAVAILABLE, "the database did not answer in time") from None
    except (OperationalError, InterfaceError, PoolTimeoutError) as error:
        log.warning("database unavailable: %s", error)
        raise ServiceError(Reason.UNAVAILABLE, "the database is unavailable") from error
