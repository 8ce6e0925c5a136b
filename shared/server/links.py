"""The kit's links of the server chain; `shared.server.chain` puts them in order.

A handler is the grpc.aio behaviour `(request, context) -> awaitable response`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import grpc

from shared import deadline as deadlines
from shared.errors import Reason, ServiceError
from shared.security.policy import Policy
from shared.server.metrics import HANDLED, LATENCY
from shared.tracing.grpc_server import code_of

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Context], Awaitable[Any]]
ServerMiddleware = Callable[[Handler], Handler]
# What runs around a streaming behaviour, given the call's context.
StreamGuard = Callable[[Context], AbstractAsyncContextManager[object]]


def metrics(method: str) -> ServerMiddleware:
    """Count each call of `method` by its status code, and time it."""
    ok = HANDLED.labels(method, "OK")
    latency = LATENCY.labels(method)
    clock = time.perf_counter

    def link(next: Handler) -> Handler:
        async def measured(request: Any, context: Context) -> Any:
            started = clock()
            try:
                response = await next(request, context)
            except Exception as error:
                HANDLED.labels(method, _code(error, context).name).inc()
                raise
            else:
                ok.inc()
                return response
            finally:
                latency.observe(clock() - started)

        return measured

    return link


def _code(error: Exception, context: Context) -> grpc.StatusCode:
    if isinstance(error, ServiceError):
        return error.grpc_code
    if isinstance(error, grpc.aio.AbortError):  # the error link's (or the handler's) abort
        return code_of(context)
    return grpc.StatusCode.UNKNOWN


def policy(policy: Policy, method: str) -> ServerMiddleware:
    """Default deny: PERMISSION_DENIED unless the caller's certificate identity is one the
    method's `allowed_callers` lists (the policy logs the caller's identity)."""
    authorize = policy.authorize

    def link(next: Handler) -> Handler:
        async def checked(request: Any, context: Context) -> Any:
            try:
                authorize(method, context)
            except ServiceError as error:
                await abort(context, error)
            return await next(request, context)

        return checked

    return link


def around_streaming(behavior: Any, guard: StreamGuard) -> Any:
    """A streaming `behavior` run inside `guard(context)`, in the form it has: an async
    generator stays one (grpc.aio iterates it), a coroutine that writes with
    `context.write` (grpc's health Watch) stays one."""
    if inspect.isasyncgenfunction(behavior):

        async def streamed(request: Any, context: Context) -> AsyncIterator[Any]:
            async with guard(context):
                async for item in behavior(request, context):
                    yield item

        return streamed

    async def awaited(request: Any, context: Context) -> Any:
        async with guard(context):
            return await behavior(request, context)

    return awaited


def policy_guard(policy: Policy, method: str, behavior: Any) -> Any:
    """The policy check for a streaming behaviour, before its first message."""

    @contextlib.asynccontextmanager
    async def authorized(context: Context) -> AsyncIterator[None]:
        try:
            policy.authorize(method, context)
        except ServiceError as error:
            await abort(context, error)
        yield

    return around_streaming(behavior, authorized)


def deadline(next: Handler) -> Handler:
    """The caller's gRPC deadline becomes the handler's budget (`shared.deadline`)."""

    async def bounded(request: Any, context: Context) -> Any:
        with deadlines.budget(context.time_remaining()):
            return await next(request, context)

    return bounded


def default_deadline(seconds: float | None) -> ServerMiddleware:
    """As `deadline`, and a call that came without a deadline gets `seconds` (a caller
    that never gives up must not hold a handler forever); None: no budget for it."""
    if seconds is None:
        return deadline

    def link(next: Handler) -> Handler:
        async def bounded(request: Any, context: Context) -> Any:
            remaining = context.time_remaining()
            if remaining is not None:
                with deadlines.budget(remaining):
                    return await next(request, context)
            # gRPC cancels a call at its deadline; one without gets the same from here.
            try:
                with deadlines.budget(seconds):
                    async with asyncio.timeout(seconds):
                        return await next(request, context)
            except TimeoutError:
                timeout = ServiceError(Reason.TIMEOUT, f"no answer within the default {seconds} s")
                await abort(context, timeout)

        return bounded

    return link


def errors(next: Handler) -> Handler:
    """A `ServiceError` becomes its gRPC status with the reason in the trailing metadata;
    anything else is logged and becomes INTERNAL: never a traceback on the wire."""

    async def mapped(request: Any, context: Context) -> Any:
        try:
            return await next(request, context)
        except grpc.aio.AbortError:
            raise  # the status is set already
        except Exception as error:
            await abort(context, error)

    return mapped


def guard_stream(behavior: Any) -> Any:
    """The deadline and error links for a server stream."""
    return around_streaming(behavior, _deadline_and_errors)


@contextlib.asynccontextmanager
async def _deadline_and_errors(context: Context) -> AsyncIterator[None]:
    with deadlines.budget(context.time_remaining()):
        try:
            yield
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            await abort(context, error)


async def abort(context: Context, error: Exception) -> None:
    if not isinstance(error, ServiceError):
        log.error("unhandled error in an RPC handler", exc_info=error)
        error = ServiceError(Reason.INTERNAL, "internal error")
    await context.abort(error.grpc_code, error.message, error.trailing_metadata())
