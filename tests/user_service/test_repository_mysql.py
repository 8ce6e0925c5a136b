"""The same storage on MariaDB: schema and seed from sql/, PyMySQL URLs accepted."""

from __future__ import annotations

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
            await logic.create_user(None, "名前", "again")
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
    assert stored.startswith("$argon2id$")
