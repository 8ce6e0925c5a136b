"""What every RPC handler of the kit gets: the caller's deadline as a budget, and errors
turned into gRPC statuses with a reason, never a traceback on the wire."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from shared import deadline
from shared.errors import Reason, ServiceError

log = logging.getLogger(__name__)

UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamBehavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> None:
    if not isinstance(error, ServiceError):
        log.exception("unhandled error in %s", _method_name(context), exc_info=error)
        error = ServiceError(Reason.INTERNAL, "internal error")
    await context.abort(error.grpc_code, error.message, error.trailing_metadata())


def _method_name(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    try:
        return str(context._rpc_event.call_details.method.decode())  # type: ignore[attr-defined]
    except AttributeError:
        return "rpc"


def guard_unary(behavior: UnaryBehavior) -> UnaryBehavior:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        with deadline.budget(context.time_remaining()):
            try:
                return await behavior(request, context)
            except Exception as error:  # noqa: BLE001 - every error becomes a status
                await _abort(context, error)

    return guarded


def guard_stream(behavior: StreamBehavior) -> StreamBehavior:
    async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        with deadline.budget(context.time_remaining()):
            try:
                async for item in behavior(request, context):
                    yield item
            except Exception as error:  # noqa: BLE001 - every error becomes a status
                await _abort(context, error)

    return guarded


class GuardInterceptor(grpc.aio.ServerInterceptor):
    """Wraps unary-unary and unary-stream handlers with `guard_unary` / `guard_stream`."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=guard_unary(handler.unary_unary))  # type: ignore[attr-defined,no-any-return]
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=guard_stream(handler.unary_stream))  # type: ignore[attr-defined,no-any-return]
        return handler


__all__ = ["GuardInterceptor", "guard_stream", "guard_unary"]
