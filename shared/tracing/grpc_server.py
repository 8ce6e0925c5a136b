"""Server spans for grpc.aio: one SERVER span per call, parented on the incoming traceparent.

`server_tracing(tracing, method)` is the first link of the server's chain of middleware
(`shared.server.chain`); `TracingServerInterceptor` runs it alone, for a plain grpc.aio
server. Either wraps each method handler once, so a call costs the span itself; under
an unsampled parent it only makes the parent's context current, so that calls the
handler makes carry it on.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Status, StatusCode

from shared.errors import REASON_METADATA_KEY, ServiceError
from shared.middleware import passthrough
from shared.tracing.grpc_client import STATUS_CODE
from shared.tracing.propagation import parent_from_metadata
from shared.tracing.setup import Tracing
from shared.tracing.spans import (
    ERROR_REASON,
    ROOT_CONTEXT,
    is_business_reason,
    record_error,
    unsampled_parent,
)

# Codes that mean the server failed, per the OpenTelemetry gRPC conventions; the others
# (NOT_FOUND, INVALID_ARGUMENT, ...) describe the request and leave the span status unset.
_SERVER_ERROR_CODES = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_Context = grpc.aio.ServicerContext[Any, Any]
_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


def server_tracing(
    tracing: Tracing, method: str
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The tracing link for `method` (`/package.Service/Method`), unary or streaming."""
    if not tracing.enabled:
        return passthrough
    name, attributes = _describe(method)
    return lambda behavior: _traced(tracing, name, attributes, behavior)


def _describe(method: str) -> tuple[str, dict[str, str]]:
    name = method.lstrip("/")
    service, _, short = name.rpartition("/")
    return name, {"rpc.system": "grpc", "rpc.service": service, "rpc.method": short}


class TracingServerInterceptor(grpc.aio.ServerInterceptor):
    """Put it first in the server's interceptors, so that its span covers the others."""

    def __init__(self, tracing: Tracing) -> None:
        self._tracing = tracing
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or not self._tracing.enabled:
            return handler
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Any) -> Any:
        name, attributes = _describe(method)
        for kind in _KINDS:
            behavior = getattr(handler, kind)
            if behavior is not None:
                traced = _traced(self._tracing, name, attributes, behavior)
                return handler._replace(**{kind: traced})
        return handler


def _traced(
    tracing: Tracing, name: str, attributes: dict[str, str], behavior: Callable[..., Any]
) -> Callable[..., Any]:
    tracer = tracing.tracer
    skip_unsampled = tracing.skip_unsampled

    def start(context: _Context) -> tuple[Span, bool]:
        parent = parent_from_metadata(context.invocation_metadata())
        if unsampled_parent(parent, skip_unsampled):
            return NonRecordingSpan(parent), False  # type: ignore[arg-type]
        parent_context = (
            ROOT_CONTEXT
            if parent is None
            else trace.set_span_in_context(NonRecordingSpan(parent), ROOT_CONTEXT)
        )
        span = tracer.start_span(name, parent_context, SpanKind.SERVER, attributes)
        return span, span.is_recording()

    if inspect.isasyncgenfunction(behavior):

        async def traced_stream(request: Any, context: _Context) -> AsyncIterator[Any]:
            span, recording = start(context)
            token = context_api.attach(trace.set_span_in_context(span))
            try:
                async for response in behavior(request, context):
                    yield response
            except BaseException as exc:
                if recording:
                    _finish_error(span, exc, context)
                raise
            else:
                if recording:
                    _finish_ok(span, context)
            finally:
                context_api.detach(token)
                if recording:
                    span.end()

        return traced_stream

    async def traced(request: Any, context: _Context) -> Any:
        span, recording = start(context)
        token = context_api.attach(trace.set_span_in_context(span))
        try:
            response = await behavior(request, context)
        except BaseException as exc:
            if recording:
                _finish_error(span, exc, context)
            raise
        else:
            if recording:
                _finish_ok(span, context)
            return response
        finally:
            context_api.detach(token)
            if recording:
                span.end()

    return traced


def _finish_ok(span: Span, context: _Context) -> None:
    code = code_of(context)
    span.set_attribute(STATUS_CODE, code.value[0])
    if code is not grpc.StatusCode.OK:
        _mark_status(span, code, context)


def _finish_error(span: Span, exc: BaseException, context: _Context) -> None:
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        # The caller cancelled or closed the stream: nothing failed on this side.
        span.set_attribute(STATUS_CODE, grpc.StatusCode.CANCELLED.value[0])
    elif isinstance(exc, ServiceError):
        span.set_attribute(STATUS_CODE, exc.grpc_code.value[0])
        record_error(span, exc)
    elif isinstance(exc, grpc.aio.AbortError):
        # context.abort() already set the code (and maybe the kit's reason); the exception
        # itself is only grpc's way of unwinding the handler.
        code = code_of(context)
        span.set_attribute(STATUS_CODE, code.value[0])
        _mark_status(span, code, context)
    else:
        span.set_attribute(STATUS_CODE, grpc.StatusCode.UNKNOWN.value[0])
        record_error(span, exc)


def _mark_status(span: Span, code: grpc.StatusCode, context: _Context) -> None:
    reason = None
    for key, value in context.trailing_metadata() or ():
        if key == REASON_METADATA_KEY and isinstance(value, str):
            reason = value
    if reason is not None:
        span.set_attribute(ERROR_REASON, reason)
    if code in _SERVER_ERROR_CODES and not is_business_reason(reason, code):
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {context.details() or ''}"))


def code_of(context: _Context) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        for status in grpc.StatusCode:
            if status.value[0] == code:
                return status
    return grpc.StatusCode.OK
