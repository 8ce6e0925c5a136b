"""Storage of users: the `user` table, through SQLAlchemy asyncio (the contract is in logic.py)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Integer,
    String,
    UniqueConstraint,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared import db
from shared.broker.events import now_ms
from shared.outbox import OutboxColumns, stage_event
from shared.proto.user.v1.user_events_pb2 import UserCreated
from shared.sqlite_reads import SqliteReads
from user_service.cache import UserCache
from user_service.logic import DuplicateUserError, StoredUser

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_Timestamp = DateTime().with_variant(mysql.TIMESTAMP(fsp=3), "mysql")


class Base(DeclarativeBase):
    """The tables of sql/, which is the schema's source: tests/user_service/test_schema.py
    proves these classes equal what MariaDB holds after loading it (names of keys too)."""


class UserRow(Base):
    __tablename__ = "user"
    __table_args__ = (
        UniqueConstraint("user_name", name="user_user_name_uindex"),
        UniqueConstraint("user_id", name="user_user_id_uindex"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Integer)
    user_name: Mapped[str] = mapped_column(String(64))
    pwd: Mapped[str] = mapped_column(String(128))
    created_time: Mapped[datetime] = mapped_column(_Timestamp, server_default=func.now())
    updated_time: Mapped[datetime] = mapped_column(
        _Timestamp, server_default=func.now(), onupdate=func.now()
    )
    last_login_time: Mapped[datetime | None] = mapped_column(_Timestamp, nullable=True)


class UserIdRow(Base):
    """Public user ids taken so far: the database allocates the next one (sql/004)."""

    __tablename__ = "user_id_seq"
    # SQLite: never hand out an id again, like AUTO_INCREMENT.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)


class LoginRow(Base):
    __tablename__ = "login_history"
    __table_args__ = (
        UniqueConstraint("event_id", name="login_history_event_id_uindex"),
        # A user's history, newest first, without a sort.
        Index("login_history_user_id_index", "user_id", "logged_in_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(Integer)
    logged_in_at: Mapped[datetime] = mapped_column(_Timestamp)
    client_address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(255), default="")


_USERS = Base.metadata.tables["user"]
_LOGINS = Base.metadata.tables["login_history"]

# A login's statements, built once (SQLAlchemy then reuses their cache keys and compiled
# SQL); the record is two Core statements, not the ORM's unit of work, whose flush and
# session synchronisation were a fifth of user_service's event-loop time per login.
_BY_NAME = select(UserRow).where(UserRow.user_name == bindparam("name"))
_RECORD_LOGIN = insert(_LOGINS)
# Events may arrive out of order: the last login time only moves forward.
_ADVANCE_LAST_LOGIN = (
    update(_USERS)
    .where(_USERS.c.user_id == bindparam("uid"))
    .where(or_(_USERS.c.last_login_time.is_(None), _USERS.c.last_login_time < bindparam("at")))
    .values(last_login_time=bindparam("at"))
)

# A hash made again with the current costs replaces the one that was verified, and only it.
_REPLACE_HASH = (
    update(_USERS)
    .where(_USERS.c.user_id == bindparam("uid"))
    .where(_USERS.c.pwd == bindparam("old"))
    .values(pwd=bindparam("new"))
)


class OutboxRow(OutboxColumns, Base):
    """Events user_service causes, written with the change (sql/005_outbox.sql)."""

    __tablename__ = "outbox"


def _stored(row: UserRow) -> StoredUser:
    return StoredUser(
        id=row.user_id,
        name=row.user_name,
        password_hash=row.pwd,
        created_at=_aware(row.created_time),
        last_login_at=_aware(row.last_login_time) if row.last_login_time else None,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _from_columns(row: tuple[Any, ...]) -> StoredUser:
    user_id, name, password_hash, created, last_login = row
    return StoredUser(
        id=user_id,
        name=name,
        password_hash=password_hash,
        created_at=_aware(datetime.fromisoformat(created)),
        last_login_at=_aware(datetime.fromisoformat(last_login)) if last_login else None,
    )


_COLUMNS = 'SELECT user_id, user_name, pwd, created_time, last_login_time FROM "user" WHERE '


class SqlUserRepository:
    """`UserRepository` (see logic.py) on SQLAlchemy asyncio: MariaDB or SQLite."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: SqliteReads | None = None,
        cache: UserCache | None = None,
        *,
        timeout_s: float = 5.0,
    ) -> None:
        self._sessions = sessions
        self._cache = cache or UserCache(ttl_s=0)
        # On SQLite, GetUser's point read skips aiosqlite's thread (shared/sqlite_reads.py).
        self._reads = reads
        # Each operation, checkout to commit: past it (or the caller's deadline) the
        # database counts as unavailable (shared.db.failing_fast), answered 503.
        self._timeout_s = timeout_s

    async def by_name(self, name: str) -> StoredUser | None:
        # Through SQLAlchemy (and its SQL span): a login costs an Argon2 hash, ~18 ms, so the
        # thread hop is noise here; only GetUser's point read takes the direct path.
        async with db.failing_fast(self._timeout_s), self._sessions() as session:
            row = await session.scalar(_BY_NAME, {"name": name})
            return _stored(row) if row else None

    async def by_id(self, user_id: int) -> StoredUser | None:
        if (cached := self._cache.get(user_id)) is not None:
            return cached
        found = await self._by_id(user_id)
        if found is not None:
            self._cache.put(found)
        return found

    async def _by_id(self, user_id: int) -> StoredUser | None:
        if self._reads is not None:
            columns = self._reads.one(_COLUMNS + "user_id = ?", (user_id,))
            return _from_columns(columns) if columns else None
        async with db.failing_fast(self._timeout_s), self._sessions() as session:
            row = await session.scalar(select(UserRow).where(UserRow.user_id == user_id))
            return _stored(row) if row else None

    async def create(self, user_id: int | None, name: str, password_hash: str) -> StoredUser:
        async with db.failing_fast(self._timeout_s), self._sessions() as session:
            try:
                # The id comes from the database's counter (or the caller's id is marked
                # taken there, which moves the counter past it): no max + 1 to race for.
                connection = await session.connection()
                taken = await connection.execute(
                    insert(UserIdRow) if user_id is None else insert(UserIdRow).values(id=user_id)
                )
                allocated = taken.lastrowid if user_id is None else user_id
                row = UserRow(user_id=allocated, user_name=name, pwd=password_hash)
                session.add(row)
                # In the same transaction: the user and user.created are committed together.
                created = UserCreated(user_id=allocated, user_name=name, occurred_at_ms=now_ms())
                stage_event(session, OutboxRow, created)
                await session.commit()
            except IntegrityError as error:
                raise DuplicateUserError(name) from error
            await session.refresh(row)
            self._cache.forget(row.user_id)
            return _stored(row)

    async def record_login(
        self, event_id: str, user_id: int, at: datetime, client_address: str, user_agent: str
    ) -> bool:
        """Store one login and the user's last login time; False if the event was stored before."""
        moment = at.astimezone(UTC).replace(tzinfo=None)
        login = {
            "event_id": event_id,
            "user_id": user_id,
            "logged_in_at": moment,
            "client_address": client_address[:64],
            "user_agent": user_agent[:255],
        }
        self._cache.forget(user_id)
        async with db.failing_fast(self._timeout_s), self._sessions() as session:
            try:
                await session.execute(_RECORD_LOGIN, login)
                await session.execute(_ADVANCE_LAST_LOGIN, {"uid": user_id, "at": moment})
                await session.commit()
                self._cache.forget(user_id)
            except IntegrityError:  # the event's unique id: it was applied before
                await session.rollback()
                return False
            return True

    async def replace_hash(self, user_id: int, old: str, new: str) -> bool:
        async with db.failing_fast(self._timeout_s), self._sessions() as session:
            connection = await session.connection()
            replaced = await connection.execute(
                _REPLACE_HASH, {"uid": user_id, "old": old, "new": new}
            )
            await session.commit()
        self._cache.forget(user_id)
        return replaced.rowcount == 1


_MYSQL_SCHEMA = (
    "001_schema.sql",
    "003_login_history.sql",
    "004_user_ids.sql",
    "005_outbox.sql",
)
_SEED = "002_seed.sql"


async def ensure_schema(engine: AsyncEngine, *, seed: bool = True) -> None:
    """Create missing tables, and (with `seed`) the seed user on a new database (SQLite or
    MySQL)."""
    async with engine.begin() as connection:
        if engine.dialect.name == "mysql":
            for name in _MYSQL_SCHEMA:  # CREATE TABLE IF NOT EXISTS: safe on every start
                await _run_sql_file(connection, SQL_DIR / name)
        else:
            await connection.run_sync(Base.metadata.create_all)
        if seed and not await connection.scalar(select(func.count()).select_from(UserRow)):
            await _run_sql_file(connection, SQL_DIR / _SEED)
    await _ids_after_existing_users(engine)


async def _ids_after_existing_users(engine: AsyncEngine) -> None:
    """Move the id counter past the users already there (the seed, a database from before
    sql/004), so that the ids it hands out are free."""
    async with engine.connect() as connection:
        highest_user = await connection.scalar(select(func.max(UserRow.user_id)))
        highest_taken = await connection.scalar(select(func.max(UserIdRow.id)))
    if highest_user is None or (highest_taken is not None and highest_taken >= highest_user):
        return
    # IntegrityError: another replica starting at the same time did it.
    with contextlib.suppress(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(insert(UserIdRow).values(id=highest_user))


async def _run_sql_file(connection: AsyncConnection, path: Path) -> None:
    for statement in _statements(await asyncio.to_thread(path.read_text)):
        await connection.execute(text(statement))


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]
