"""One CLIENT span per SQL statement, as a child of the current span.

A lean pair of SQLAlchemy cursor events rather than opentelemetry-instrumentation-sqlalchemy:
that one re-parses the engine URL on every statement, makes each span current through a
context manager, keeps pool metrics, and can be installed once per process only, whereas
the kit wants one call per engine and no work at all for unsampled requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from shared.tracing.setup import Tracing
from shared.tracing.spans import record_error

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine, ExceptionContext
    from sqlalchemy.ext.asyncio import AsyncEngine

_SPAN_ATTR = "_kit_otel_span"
_MAX_CACHED = 2048
_SYSTEMS = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mariadb", "sqlite": "sqlite"}


def instrument_sqlalchemy(
    engine: AsyncEngine | Engine, tracing: Tracing, *, root_spans: bool = False
) -> None:
    """Trace every statement run through `engine` (for an AsyncEngine: its `sync_engine`).

    Statements outside any span (start-up DDL, migrations) are not traced unless
    `root_spans`; under an unsampled span nothing is created at all.
    """
    if not tracing.enabled:
        return
    # Imported here, so that services without a database do not load SQLAlchemy.
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import AsyncEngine

    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    url = sync_engine.url
    system = _SYSTEMS.get(sync_engine.dialect.name, sync_engine.dialect.name)
    base: dict[str, Any] = {"db.system.name": system, "db.system": system}
    if url.database:
        base["db.namespace"] = url.database
    if url.host:
        base["server.address"] = url.host
    if url.port:
        base["server.port"] = url.port
    suffix = f" {url.database}" if url.database and system != "sqlite" else ""
    tracer = tracing.tracer
    skip_unsampled = tracing.skip_unsampled
    operations: dict[str, str] = {}

    def before(
        conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if context is None:
            return
        parent = trace.get_current_span().get_span_context()
        if not parent.is_valid:
            if not root_spans:
                return
        elif skip_unsampled and not parent.trace_flags & 1:
            return
        operation = operations.get(statement)
        if operation is None:
            operation = _operation(statement)
            if len(operations) >= _MAX_CACHED:
                operations.clear()
            operations[statement] = operation
        attributes = {**base, "db.operation.name": operation, "db.query.text": statement}
        span = tracer.start_span(operation + suffix, kind=SpanKind.CLIENT, attributes=attributes)
        setattr(context, _SPAN_ATTR, span)

    def after(
        conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        span = getattr(context, _SPAN_ATTR, None)
        if span is not None:
            setattr(context, _SPAN_ATTR, None)
            span.end()

    def on_error(exception_context: ExceptionContext) -> None:
        context = exception_context.execution_context
        span = getattr(context, _SPAN_ATTR, None)
        if span is not None:
            setattr(context, _SPAN_ATTR, None)
            record_error(span, exception_context.original_exception)
            span.end()

    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    event.listen(sync_engine, "handle_error", on_error)


def _operation(statement: str) -> str:
    text = statement.lstrip()
    while text.startswith("/*"):
        end = text.find("*/")
        if end < 0:
            break
        text = text[end + 2 :].lstrip()
    words = text.split(None, 1)
    return words[0].upper() if words else "SQL"
