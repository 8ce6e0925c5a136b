"""One database schema: `sql/` (what compose loads) is the source, and the ORM classes of
user_service describe exactly what MariaDB holds after loading it: the same tables,
columns (name, type family, nullability) and indexes (name, columns, uniqueness)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT
from sqlalchemy import (
    BigInteger,
    Engine,
    Integer,
    String,
    UniqueConstraint,
    create_engine,
    inspect,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.sql.sqltypes import DateTime, TypeEngine

from tests.conftest import MARIADB
from user_service.repository import SQL_DIR, Base

pytestmark = pytest.mark.integration

Index = tuple[str, tuple[str, ...], bool]


@pytest.fixture
def loaded(mariadb_database: str) -> Iterator[Engine]:
    """The test's database after every file of sql/, in order, as compose loads them."""
    database = mariadb_database.rsplit("/", 1)[1]
    with (
        pymysql.connect(
            **MARIADB, database=database, client_flag=CLIENT.MULTI_STATEMENTS
        ) as connection,
        connection.cursor() as cursor,
    ):
        for path in sorted(Path(SQL_DIR).glob("*.sql")):
            cursor.execute(path.read_text())
            while cursor.nextset():
                pass
        connection.commit()
    engine = create_engine(mariadb_database)
    try:
        yield engine
    finally:
        engine.dispose()


def family(type_: TypeEngine[Any]) -> str:
    """What a column holds, at the grain where a mismatch would be a bug."""
    if isinstance(type_, BigInteger):
        return "bigint"
    if isinstance(type_, Integer):
        return "int"
    if isinstance(type_, String):
        return f"string({type_.length})"
    if isinstance(type_, DateTime | mysql.TIMESTAMP):
        return "timestamp"
    return type(type_).__name__


def test_the_orm_tables_are_the_ones_sql_creates(loaded: Engine) -> None:
    assert set(inspect(loaded).get_table_names()) == set(Base.metadata.tables)


@pytest.mark.parametrize("table", sorted(Base.metadata.tables))
def test_columns_match_in_name_type_and_nullability(loaded: Engine, table: str) -> None:
    dialect = loaded.dialect
    model = {
        column.name: (family(column.type.dialect_impl(dialect)), column.nullable)
        for column in Base.metadata.tables[table].columns
    }
    database = {
        column["name"]: (family(column["type"]), column["nullable"])
        for column in inspect(loaded).get_columns(table)
    }

    assert model == database


@pytest.mark.parametrize("table", sorted(Base.metadata.tables))
def test_keys_and_indexes_match_in_name_columns_and_uniqueness(loaded: Engine, table: str) -> None:
    model_table = Base.metadata.tables[table]
    model: set[Index] = {
        (str(index.name), tuple(c.name for c in index.columns), bool(index.unique))
        for index in model_table.indexes
    }
    model |= {
        (str(constraint.name), tuple(c.name for c in constraint.columns), True)
        for constraint in model_table.constraints
        if isinstance(constraint, UniqueConstraint)
    }
    inspector = inspect(loaded)
    database: set[Index] = {
        (str(index["name"]), tuple(str(c) for c in index["column_names"]), index["unique"])
        for index in inspector.get_indexes(table)
    }

    assert model == database
    assert [c.name for c in model_table.primary_key] == (
        inspector.get_pk_constraint(table)["constrained_columns"]
    )
