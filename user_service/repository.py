"""Storage of users: the `user` table, through SQLAlchemy asyncio (the contract is in logic.py)."""

from __future__ import annotations

import asyncio
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
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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
    ) -> None:
        self._sessions = sessions
        self._cache = cache or UserCache(ttl_s=0)
        # On SQLite, GetUser's point read skips aiosqlite's thread (shared/sqlite_reads.py).
        self._reads = reads

    async def by_name(self, name: str) -> StoredUser | None:
        # Through SQLAlchemy (and its SQL span): a login costs an Argon2 hash, 50 ms, so the
        # thread hop is noise here; only GetUser's point read takes the direct path.
        async with self._sessions() as session:
            row = await session.scalar(select(UserRow).where(UserRow.user_name == name))
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
        async with self._sessions() as session:
            row = await session.scalar(select(UserRow).where(UserRow.user_id == user_id))
            return _stored(row) if row else None

    async def create(self, user_id: int | None, name: str, password_hash: str) -> StoredUser:
        async with self._sessions() as session:
            if user_id is None:
                highest = await session.scalar(select(func.max(UserRow.user_id)))
                user_id = max(highest or 10000, 10000) + 1
            row = UserRow(user_id=user_id, user_name=name, pwd=password_hash)
            session.add(row)
            try:
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
        row = LoginRow(
            event_id=event_id,
            user_id=user_id,
            logged_in_at=moment,
            client_address=client_address[:64],
            user_agent=user_agent[:255],
        )
        # Events may arrive out of order: the last login time only moves forward.
        last_login = (
            update(UserRow)
            .where(UserRow.user_id == user_id)
            .where(or_(UserRow.last_login_time.is_(None), UserRow.last_login_time < moment))
            .values(last_login_time=moment)
        )
        self._cache.forget(user_id)
        async with self._sessions() as session:
            try:
                session.add(row)
                await session.execute(last_login)
                await session.commit()
                self._cache.forget(user_id)
            except IntegrityError:  # the event's unique id: it was applied before
                await session.rollback()
                return False
            return True


_MYSQL_SCHEMA = ("001_schema.sql", "003_login_history.sql")
_SEED = "002_seed.sql"


async def ensure_schema(engine: AsyncEngine) -> None:
    """Create missing tables, and the seed user on a new database (SQLite or MySQL)."""
    async with engine.begin() as connection:
        if engine.dialect.name == "mysql":
            for name in _MYSQL_SCHEMA:  # CREATE TABLE IF NOT EXISTS: safe on every start
                await _run_sql_file(connection, SQL_DIR / name)
        else:
            await connection.run_sync(Base.metadata.create_all)
        if not await connection.scalar(select(func.count()).select_from(UserRow)):
            await _run_sql_file(connection, SQL_DIR / _SEED)


async def _run_sql_file(connection: AsyncConnection, path: Path) -> None:
    for statement in _statements(await asyncio.to_thread(path.read_text)):
        await connection.execute(text(statement))


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]
