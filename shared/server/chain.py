"""The order of the server's chain of middleware, written here and nowhere else.

A unary call runs, outermost first:

    tracing     one SERVER span, parented on the caller's traceparent
    metrics     grpc_server_handled_total / grpc_server_handling_seconds
    policy      with mTLS: the caller's certificate identity must be one the method's
                `allowed_callers` lists, else PERMISSION_DENIED (shared.security.policy)
    shedding    admits only what can start within the caller's deadline (OVERLOADED)
    deadline    the caller's gRPC deadline (or the default) becomes the handler's budget
    errors      a ServiceError becomes its status and reason; anything else INTERNAL
    (yours)     links given to `GrpcServer(middleware=...)`, in that order
    handler     the servicer's method

A link is `Callable[[Handler], Handler]`, a handler the grpc.aio behaviour
`(request, context) -> awaitable`. A server stream gets tracing, policy, deadline and
errors, and ends when the server stops (shared.server.streams); client and bidirectional
streams get tracing and policy only. One interceptor composes the chain once per method
and keeps it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import grpc

from shared.middleware import chain, passthrough
from shared.security.policy import Policy
from shared.server import links
from shared.server.links import Handler, ServerMiddleware
from shared.server.shedding import Admission, shedding
from shared.server.streams import OpenStreams
from shared.tracing import Tracing, server_tracing

# How long a queued call without a deadline (and no default) may wait for a slot.
_NO_DEADLINE_S = 30.0

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
    admission: Admission | None = None,
    default_deadline_s: float | None = None,
) -> Handler:
    """The handler a unary call of `method` (`/package.Service/Method`) runs.

    `admission` bounds the calls running and waiting (none: no shedding); a call without
    a deadline gets `default_deadline_s` (none: no budget)."""
    shed = (
        passthrough
        if admission is None
        else shedding(method, admission, default_deadline_s or _NO_DEADLINE_S)
    )
    return chain(
        [
            server_tracing(tracing, method),
            links.metrics(method),
            passthrough if policy is None else links.policy(policy, method),
            shed,
            links.default_deadline(default_deadline_s),
            links.errors,
            *middleware,
        ],
        handler,
    )


def admission_of(
    method: str, admissions: Mapping[str, Admission], default: Admission | None
) -> Admission | None:
    """The admission declared for `method` by its path ("/pkg.Service/Method") or its name."""
    return admissions.get(method) or admissions.get(method.rpartition("/")[2]) or default


class ChainInterceptor(grpc.aio.ServerInterceptor):
    """Runs the chain around every method of the server it is given to."""

    def __init__(
        self,
        tracing: Tracing,
        middleware: Sequence[ServerMiddleware] = (),
        policy: Policy | None = None,
        *,
        admissions: Mapping[str, Admission] | None = None,
        default_admission: Admission | None = None,
        default_deadline_s: float | None = None,
    ) -> None:
        self._tracing = tracing
        # Server streams in progress, which the server ends when it stops.
        self.streams = OpenStreams()
        self._middleware = list(middleware)
        self._policy = policy
        self._admissions = dict(admissions or {})
        self._default_admission = default_admission
        self._default_deadline_s = default_deadline_s
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
                admission=admission_of(method, self._admissions, self._default_admission),
                default_deadline_s=self._default_deadline_s,
            )
            return handler._replace(unary_unary=composed)
        trace = server_tracing(self._tracing, method)
        policy = self._policy

        def checked(behavior: Any) -> Any:
            return behavior if policy is None else links.policy_guard(policy, method, behavior)

        if handler.unary_stream is not None:
            guarded = self.streams.ending_at_stop(links.guard_stream(handler.unary_stream))
            return handler._replace(unary_stream=trace(checked(guarded)))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=trace(checked(handler.stream_unary)))
        if handler.stream_stream is not None:
            return handler._replace(stream_stream=trace(checked(handler.stream_stream)))
        return handler
