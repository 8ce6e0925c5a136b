"""The same storage on MariaDB: schema and seed from sql/, PyMySQL URLs accepted."""

from __future__ import annotations

import asyncio

import pymysql
import pytest
from argon2 import PasswordHasher

from shared import db
from shared.errors import Reason, ServiceError
from tests.conftest import MARIADB
from user_service.logic import UserLogic
from user_service.repository import SqlUserRepository, ensure_schema

pytestmark = pytest.mark.integration


async def test_a_new_mysql_database_gets_the_schema_and_seed_from_sql(
    mariadb_database: str,
) -> None:
    engine = db.create_engine(mariadb_database)  # a mysql+pymysql:// URL, as people write it
    try:
        await ensure_schema(engine)
        await ensure_schema(engine)  # a second start changes nothing
        logic = UserLogic(SqlUserRepository(db.session_factory(engine)), PasswordHasher())

        user = await logic.verify_credentials("micro", "123")
        created = await logic.create_user(None, "名前", "pässwörd")
        with pytest.raises(ServiceError) as caught:
            await logic.create_user(None, "名前", "again, as before")
    finally:
        await engine.dispose()

    assert (user.id, user.name) == (10001, "micro")
    assert (created.id, created.name) == (10002, "名前")
    assert caught.value.reason is Reason.ALREADY_EXISTS
    database = mariadb_database.rsplit("/", 1)[1]
    with pymysql.connect(**MARIADB, database=database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pwd FROM user WHERE user_id = 10001")
        row = cursor.fetchone()
    assert row is not None
    (stored,) = row
    # The seed's hash, made with OWASP's costs, was made again with the hasher's at login.
    assert stored.startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(stored)


async def test_concurrent_creates_without_an_id_get_distinct_ids_on_mariadb(
    mariadb_database: str,
) -> None:
    engine = db.create_engine(mariadb_database, pool_size=20)
    try:
        await ensure_schema(engine)
        fast = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        logic = UserLogic(SqlUserRepository(db.session_factory(engine)), fast)

        created = await asyncio.gather(
            *(logic.create_user(None, f"racer{n}", "s3cret!!") for n in range(20))
        )
        chosen = await logic.create_user(20000, "chosen", "s3cret!!")
        after = await logic.create_user(None, "after", "s3cret!!")
    finally:
        await engine.dispose()

    assert len({user.id for user in created}) == 20
    assert all(user.id > 10001 for user in created)
    assert (chosen.id, after.id) == (20000, 20001)
