"""The order of the server's chain of middleware, written here and nowhere else.

A unary call runs, outermost first:

    tracing     one SERVER span, parented on the caller's traceparent
    metrics     grpc_server_handled_total / grpc_server_handling_seconds
    policy      with mTLS: the caller's certificate identity must be one the method's
                `allowed_callers` lists, else PERMISSION_DENIED (shared.security.policy)
    (load shedding: its place, once the kit has it)
    deadline    the caller's gRPC deadline becomes the handler's budget
    errors      a ServiceError becomes its status and reason; anything else INTERNAL
    (yours)     links given to `GrpcServer(middleware=...)`, in that order
    handler     the servicer's method

A link is `Callable[[Handler], Handler]`, a handler the grpc.aio behaviour
`(request, context) -> awaitable`. A server stream gets tracing, policy, deadline and
errors; client and bidirectional streams get tracing and policy only. One interceptor
composes the chain once per method and keeps it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc

from shared.middleware import chain, passthrough
from shared.security.policy import Policy
from shared.server import links
from shared.server.links import Handler, ServerMiddleware
from shared.tracing import Tracing, server_tracing

if TYPE_CHECKING:
    MethodHandler = grpc.RpcMethodHandler[Any, Any]
    Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler | None]]


def compose(
    method: str,
    handler: Handler,
    *,
    tracing: Tracing,
    middleware: Sequence[ServerMiddleware] = (),
    policy: Policy | None = None,
) -> Handler:
    """The handler a unary call of `method` (`/package.Service/Method`) runs."""
    return chain(
        [
            server_tracing(tracing, method),
            links.metrics(method),
            passthrough if policy is None else links.policy(policy, method),
            links.deadline,
            links.errors,
            *middleware,
        ],
        handler,
    )


class ChainInterceptor(grpc.aio.ServerInterceptor):
    """Runs the chain around every method of the server it is given to."""

    def __init__(
        self,
        tracing: Tracing,
        middleware: Sequence[ServerMiddleware] = (),
        policy: Policy | None = None,
    ) -> None:
        self._tracing = tracing
        self._middleware = list(middleware)
        self._policy = policy
        self._wrapped: dict[str, tuple[MethodHandler, MethodHandler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> MethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if isinstance(method, bytes):
            method = method.decode()
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped: MethodHandler = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Any) -> Any:
        if handler.unary_unary is not None:
            composed = compose(
                method,
                handler.unary_unary,
                tracing=self._tracing,
                middleware=self._middleware,
                policy=self._policy,
            )
            return handler._replace(unary_unary=composed)
        trace = server_tracing(self._tracing, method)
        policy = self._policy

        def checked(behavior: Any) -> Any:
            return behavior if policy is None else links.policy_guard(policy, method, behavior)

        if handler.unary_stream is not None:
            guarded = links.guard_stream(handler.unary_stream)
            return handler._replace(unary_stream=trace(checked(guarded)))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=trace(checked(handler.stream_unary)))
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=trace(checked(handler.stream_stream)))
        return handler
