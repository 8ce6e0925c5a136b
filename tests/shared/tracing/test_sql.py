from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.tracing import instrument_sqlalchemy
from tests.shared.tracing.conftest import Recorded


@pytest.fixture
async def engine(tmp_path: Path, recorded: Recorded) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
    instrument_sqlalchemy(engine, recorded.tracing)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"))
    yield engine
    await engine.dispose()


async def test_statement_span_is_a_child_of_the_current_span(
    recorded: Recorded, engine: AsyncEngine
) -> None:
    with recorded.tracing.tracer.start_as_current_span("handler") as handler:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO users (name) VALUES (:n)"), {"n": "ada"})
            await conn.execute(text("SELECT name FROM users WHERE id = :id"), {"id": 1})
    names = [span.name for span in recorded.spans()]
    assert "CREATE" not in names  # start-up DDL outside any span is not traced
    select = recorded.one("SELECT")
    assert select.kind is SpanKind.CLIENT
    assert select.parent is not None
    assert select.parent.span_id == handler.get_span_context().span_id
    assert select.attributes is not None
    assert select.attributes["db.system.name"] == "sqlite"
    assert select.attributes["db.query.text"] == "SELECT name FROM users WHERE id = ?"
    assert recorded.one("INSERT").parent is not None


async def test_failed_statement_is_an_error(recorded: Recorded, engine: AsyncEngine) -> None:
    with recorded.tracing.tracer.start_as_current_span("handler"):
        async with engine.connect() as conn:
            with pytest.raises(OperationalError):
                await conn.execute(text("SELECT * FROM nowhere"))
    span = recorded.one("SELECT")
    assert span.status.status_code is StatusCode.ERROR
    assert span.end_time is not None
