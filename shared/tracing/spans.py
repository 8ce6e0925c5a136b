"""Span scopes and error recording shared by the instrumentation modules.

Plain classes with `__slots__` rather than `@contextmanager` generators: these run once or
more per request, and a generator-based context manager costs several times as much.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

import grpc
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanContext, Status, StatusCode

from shared.errors import ServiceError, is_business

ERROR_REASON = "error.reason"

# An empty context: the parent of a server span that arrived without a traceparent, so it
# becomes a root even when the server itself was started inside some span.
ROOT_CONTEXT = Context()


def record_error(span: Span, exc: BaseException) -> None:
    """Mark `span` as failed by `exc`; a business `ServiceError` only gets `error.reason`."""
    if not span.is_recording():
        return
    if isinstance(exc, ServiceError):
        span.set_attribute(ERROR_REASON, str(exc.reason))
        if exc.is_business:
            return
    if isinstance(exc, asyncio.CancelledError):
        # The caller went away: worth seeing, but not a bug with a traceback.
        span.set_status(Status(StatusCode.ERROR, "cancelled"))
        return
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def is_business_reason(reason: str | None, code: grpc.StatusCode | None = None) -> bool:
    """A reason read off the wire: declared (by the kit or this process), else by its code."""
    return is_business(reason, code)


def unsampled_parent(parent: SpanContext | None, skip_unsampled: bool) -> bool:
    """True when the sampler would drop a child of `parent`, so no span need be asked for."""
    return (
        skip_unsampled
        and parent is not None
        and parent.is_valid
        and not parent.trace_flags & 1  # the W3C "sampled" bit
    )


class ActiveSpan:
    """Makes `span` current for the block, records an escaping error, ends it (if `end`)."""

    __slots__ = ("_end", "_span", "_token")

    def __init__(self, span: Span, *, end: bool = True) -> None:
        self._span = span
        self._end = end
        self._token: object = None

    def __enter__(self) -> Span:
        self._token = context_api.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        context_api.detach(self._token)  # type: ignore[arg-type]
        if exc is not None:
            record_error(self._span, exc)
        if self._end:
            self._span.end()


class EndingSpan:
    """Yields `span` without making it current; records an escaping error and ends it."""

    __slots__ = ("_span",)

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            record_error(self._span, exc)
        self._span.end()
