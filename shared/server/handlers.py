"""What every RPC handler of the kit gets: the caller's deadline as a budget, and errors
turned into gRPC statuses with a reason, never a traceback on the wire."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc

from shared import deadline
from shared.errors import Reason, ServiceError
from shared.server.metrics import HANDLED, LATENCY

log = logging.getLogger(__name__)

UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> None:
    if not isinstance(error, ServiceError):
        log.error("unhandled error in an RPC handler", exc_info=error)
        error = ServiceError(Reason.INTERNAL, "internal error")
    await context.abort(error.grpc_code, error.message, error.trailing_metadata())


def guard_unary(behavior: UnaryBehavior, method: str = "rpc") -> UnaryBehavior:
    ok = HANDLED.labels(method, "OK")
    latency = LATENCY.labels(method)

    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        with deadline.budget(context.time_remaining()):
            try:
                response = await behavior(request, context)
            except Exception as error:
                code = (
                    error.grpc_code if isinstance(error, ServiceError) else grpc.StatusCode.INTERNAL
                )
                HANDLED.labels(method, code.name).inc()
                await _abort(context, error)
            else:
                ok.inc()
                return response
            finally:
                latency.observe(time.perf_counter() - started)

    return guarded


def guard_stream(behavior: StreamBehavior) -> StreamBehavior:
    async def guarded(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        with deadline.budget(context.time_remaining()):
            try:
                async for item in behavior(request, context):
                    yield item
            except Exception as error:
                await _abort(context, error)

    return guarded


class GuardInterceptor(grpc.aio.ServerInterceptor):
    """Wraps unary-unary and unary-stream handlers with `guard_unary` / `guard_stream`."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        if handler.unary_unary is not None:
            guarded = guard_unary(cast(UnaryBehavior, handler.unary_unary), method)
            return handler._replace(unary_unary=guarded)  # type: ignore[attr-defined,no-any-return]
        if handler.unary_stream is not None:
            streamed = guard_stream(cast(StreamBehavior, handler.unary_stream))
            return handler._replace(unary_stream=streamed)  # type: ignore[attr-defined,no-any-return]
        return handler


__all__ = ["GuardInterceptor", "guard_stream", "guard_unary"]
