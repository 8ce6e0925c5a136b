"""User use cases against a real (SQLite) database seeded from sql/."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest
from argon2 import PasswordHasher

from shared import db
from shared.errors import Reason, ServiceError
from shared.memory import IdleTrim
from shared.sqlite_reads import SqliteReads
from user_service.errors import INVALID_CREDENTIALS
from user_service.logic import UserLogic
from user_service.repository import SqlUserRepository, ensure_schema

T = TypeVar("T")
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


# Every use case runs with reads through SQLAlchemy and with SQLite point reads on the loop
# (what user_service uses on SQLite): both must see every committed write at once.
@pytest.fixture(params=["sqlalchemy-reads", "direct-sqlite-reads"])
async def logic(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[UserLogic]:
    url = f"sqlite:///{tmp_path}/users.db"
    engine = db.create_engine(url)
    await ensure_schema(engine)
    reads = SqliteReads.for_url(url) if request.param == "direct-sqlite-reads" else None
    yield UserLogic(SqlUserRepository(db.session_factory(engine), reads), FAST_HASHER)
    if reads is not None:
        reads.close()
    await engine.dispose()


async def test_the_seed_user_logs_in_with_the_readme_password(logic: UserLogic) -> None:
    user = await logic.verify_credentials("micro", "123")

    assert (user.id, user.name) == (10001, "micro")


@pytest.mark.parametrize(("name", "password"), [("micro", "wrong"), ("nobody", "123"), ("", "")])
async def test_bad_credentials_all_fail_the_same_way(
    logic: UserLogic, name: str, password: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        await logic.verify_credentials(name, password)

    assert caught.value.reason is INVALID_CREDENTIALS
    assert str(caught.value) == "invalid user name or password"


async def test_a_created_user_is_stored_hashed_and_can_log_in(
    logic: UserLogic, tmp_path: Path
) -> None:
    created = await logic.create_user(None, "alice", "s3cret!!")

    assert created.id == 10002
    assert (await logic.verify_credentials("alice", "s3cret!!")).id == created.id
    assert b"s3cret!!" not in (tmp_path / "users.db").read_bytes()


def stored_hash(tmp_path: Path, user_id: int = 10001) -> str:
    with sqlite3.connect(tmp_path / "users.db") as connection:
        (password_hash,) = connection.execute(
            'SELECT pwd FROM "user" WHERE user_id = ?', (user_id,)
        ).fetchone()
    return str(password_hash)


async def test_a_hash_with_other_costs_is_made_again_at_the_next_login(
    logic: UserLogic, tmp_path: Path
) -> None:
    seeded = stored_hash(tmp_path)  # sql/002_seed.sql: OWASP's costs, not FAST_HASHER's
    with pytest.raises(ServiceError):
        await logic.verify_credentials("micro", "wrong")
    assert stored_hash(tmp_path) == seeded  # a failed login changes nothing

    await logic.verify_credentials("micro", "123")
    rehashed = stored_hash(tmp_path)
    await logic.verify_credentials("micro", "123")

    assert rehashed != seeded
    assert not FAST_HASHER.check_needs_rehash(rehashed)
    assert stored_hash(tmp_path) == rehashed  # made once, then kept


async def test_a_hash_changed_since_it_was_read_is_not_replaced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/users.db"
    engine = db.create_engine(url)
    await ensure_schema(engine)
    users = SqlUserRepository(db.session_factory(engine))
    try:
        replaced = await users.replace_hash(10001, "a hash read before a change", "new")
    finally:
        await engine.dispose()

    assert replaced is False
    assert stored_hash(tmp_path).startswith("$argon2id$v=19$m=19456")


class UnwritableHashes(SqlUserRepository):
    async def replace_hash(self, user_id: int, old: str, new: str) -> bool:
        raise ServiceError(Reason.UNAVAILABLE, "the database is unavailable")


async def test_a_rehash_that_cannot_be_stored_leaves_the_login_standing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/users.db"
    engine = db.create_engine(url)
    await ensure_schema(engine)
    logic = UserLogic(UnwritableHashes(db.session_factory(engine)), FAST_HASHER)
    try:
        user = await logic.verify_credentials("micro", "123")
    finally:
        await engine.dispose()

    assert user.id == 10001
    assert stored_hash(tmp_path).startswith("$argon2id$v=19$m=19456")


async def test_a_taken_name_is_refused(logic: UserLogic) -> None:
    with pytest.raises(ServiceError) as caught:
        await logic.create_user(None, "micro", "whatever")

    assert caught.value.reason is Reason.ALREADY_EXISTS


@pytest.mark.parametrize(
    ("user_id", "name", "password"),
    [
        (None, "no spaces", "long enough"),
        (None, "x" * 65, "long enough"),
        (None, "bob", "7 chars"),
        (None, "bob", "x" * 1025),
        (-1, "bob", "long enough"),
    ],
)
async def test_invalid_new_users_are_refused_with_a_clear_reason(
    logic: UserLogic, user_id: int | None, name: str, password: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        await logic.create_user(user_id, name, password)

    assert caught.value.reason is Reason.INVALID_ARGUMENT


async def test_the_shortest_password_is_a_setting(tmp_path: Path) -> None:
    engine = db.create_engine(f"sqlite+aiosqlite:///{tmp_path}/users.db")
    try:
        await ensure_schema(engine)
        users = SqlUserRepository(db.session_factory(engine))
        logic = UserLogic(users, FAST_HASHER, password_min_length=12)
        with pytest.raises(ServiceError) as caught:
            await logic.create_user(None, "bob", "11 chars ok")
        assert caught.value.message == "password: 12 to 1024 characters"
        assert (await logic.create_user(None, "bob", "twelve chars")).name == "bob"
    finally:
        await engine.dispose()


async def test_an_unknown_id_is_not_found(logic: UserLogic) -> None:
    with pytest.raises(ServiceError) as caught:
        await logic.get_user(424242)

    assert caught.value.reason is Reason.NOT_FOUND


async def test_an_end_user_reads_only_their_own_record(logic: UserLogic) -> None:
    assert (await logic.get_user(10001, for_user="10001")).name == "micro"
    eve = await logic.create_user(None, "eve", "eve's password")
    for other in (eve.id, 424242):  # an existing id or not: the same answer
        with pytest.raises(ServiceError) as caught:
            await logic.get_user(other, for_user="10001")
        assert caught.value.reason is Reason.PERMISSION_DENIED


async def test_a_login_event_delivered_twice_is_applied_once(logic: UserLogic) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    first = await logic.record_login("event-1", 10001, at, "10.0.0.1", "curl/8")
    again = await logic.record_login("event-1", 10001, at, "10.0.0.1", "curl/8")

    assert (first, again) == (True, False)
    assert (await logic.get_user(10001)).last_login_at == at


async def test_an_older_login_arriving_late_keeps_the_newer_last_login(logic: UserLogic) -> None:
    newer = datetime(2026, 1, 2, tzinfo=UTC)
    await logic.record_login("event-new", 10001, newer, "", "")
    await logic.record_login("event-old", 10001, datetime(2025, 1, 1, tzinfo=UTC), "", "")

    assert (await logic.get_user(10001)).last_login_at == newer


async def test_concurrent_creates_without_an_id_get_distinct_ids_from_the_database(
    logic: UserLogic,
) -> None:
    created = await asyncio.gather(
        *(logic.create_user(None, f"racer{n}", "s3cret!!") for n in range(20))
    )

    assert len({user.id for user in created}) == 20
    assert min(user.id for user in created) == 10002


async def test_an_id_given_by_the_caller_is_never_handed_out_again(logic: UserLogic) -> None:
    await logic.create_user(10005, "chosen", "s3cret!!")

    allocated = [await logic.create_user(None, f"next{n}", "s3cret!!") for n in range(2)]

    assert [user.id for user in allocated] == [10006, 10007]


class CountingTrim(IdleTrim):
    """IdleTrim that counts the jobs it runs (each one's memory goes back when idle)."""

    def __init__(self) -> None:
        super().__init__(threads=1)
        self.jobs: list[str] = []

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        self.jobs.append(getattr(fn, "__name__", "?"))
        return await super().run(fn, *args)


async def test_the_dummy_hash_is_made_on_the_trimmed_threads_before_serving(
    tmp_path: Path,
) -> None:
    # Made anywhere else, Argon2's 19 MiB of scratch memory stay in the heap until a login.
    url = f"sqlite:///{tmp_path}/users.db"
    engine = db.create_engine(url)
    await ensure_schema(engine)
    trim = CountingTrim()
    logic = UserLogic(SqlUserRepository(db.session_factory(engine)), FAST_HASHER, trim)
    try:
        await logic.prepare()
        assert trim.jobs == ["hash"]
        with pytest.raises(ServiceError) as caught:
            await logic.verify_credentials("nobody", "123")
        assert caught.value.reason is INVALID_CREDENTIALS
        assert trim.jobs == ["hash", "_verify"]  # the unknown user costs one verification
    finally:
        await trim.close()
        await engine.dispose()
