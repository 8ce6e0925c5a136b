"""The application: one object that runs a service from start to stop (kratos' `App`).

    async with App.open(settings) as app:      # the runtime: tracing, registry, client, broker
        add_to(app.grpc_server(), logic)       # parts, started in the order they are added
        app.http_server(asgi_app, host=..., port=...)
        app.subscribe(subject, handler)
        await app.run()                        # until SIGTERM/SIGINT

`run` starts every part, then registers the gRPC nodes once all of them serve. On the
signal the stack unwinds in reverse: NOT_SERVING and deregister, then each part stops
(the gRPC server drains, uvicorn finishes its requests), then the runtime closes (the
broker flushes its outbox, the spans are exported). Everything opened is on one
`AsyncExitStack`, so the order of closing is the reverse of opening by construction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shared.broker import Handler
from shared.config import ServiceSettings
from shared.lifecycle import Announced, BackgroundTask, Part, Registration, Running, stop_signal
from shared.registry import Registry
from shared.runtime import Runtime
from shared.server import GrpcServer

if TYPE_CHECKING:
    from shared.http import HttpServer

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)
P = TypeVar("P", bound=Part)
T = TypeVar("T")


class Subscription:
    """A broker subscription as a part; the broker's own stop ends it."""

    def __init__(self, runtime: Runtime[Any], subject: str, handler: Handler) -> None:
        self._runtime = runtime
        self._subject = subject
        self._handler = handler

    async def start(self) -> None:
        await self._runtime.subscribe(self._subject, self._handler)

    async def stop(self) -> None:
        pass  # nothing to release: the broker drains its subscriptions when it stops


class App(Generic[S]):
    def __init__(self, runtime: Runtime[S], stack: AsyncExitStack) -> None:
        self.runtime = runtime
        self._stack = stack
        self._parts: list[Part] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: S, *, registry: Registry | None = None) -> AsyncIterator[App[S]]:
        """The runtime opened on the app's stack; everything closes when the block ends."""
        async with AsyncExitStack() as stack:
            yield cls(await Runtime.build(settings, stack, registry=registry), stack)

    @property
    def settings(self) -> S:
        """The settings in force: the environment's, overridden by config_service."""
        return self.runtime.settings

    def add(self, part: P) -> P:
        """Start `part` with the others in `run`, stop it in reverse order."""
        self._parts.append(part)
        return part

    def grpc_server(self, **options: Any) -> GrpcServer:
        """The service's gRPC server, registered by `run` once every part serves."""
        return self.add(self.runtime.grpc_server(**options))

    def http_server(self, app: Any, *, host: str, port: int, **options: Any) -> HttpServer:
        """An ASGI app served by uvicorn under the app's signal handling; `options` are
        `shared.http.HttpServer`'s (the read deadline, the proxies to believe)."""
        # Imported here: a gRPC-only service never loads uvicorn (a few MB of its memory).
        from shared.http import HttpServer

        return self.add(HttpServer(app, host=host, port=port, **options))

    def subscribe(self, subject: str, handler: Handler) -> None:
        """Handle `subject` once per service, each event in a span."""
        self.add(Subscription(self.runtime, subject, handler))

    def background(self, job: Callable[[], Awaitable[None]], *, name: str) -> None:
        """Run `job` while the service runs; the service stops if it ends."""
        self.add(BackgroundTask(job, name))

    async def enter(self, context: AbstractAsyncContextManager[T]) -> T:
        """Enter `context` now; it exits in its turn when the app stops."""
        return await self._stack.enter_async_context(context)

    def on_stop(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Call `callback` when the app stops, after the parts added from now on."""
        self._stack.push_async_callback(callback)

    async def run(self, until: Awaitable[object] | None = None) -> None:
        """Start the parts, register, and return on SIGTERM/SIGINT (or `until`), or when a
        part ends on its own; the stack then stops everything in reverse order."""
        stopping = asyncio.ensure_future(until if until is not None else stop_signal().wait())
        try:
            for part in self._parts:
                await part.start()
                self._stack.push_async_callback(part.stop)
            servers = [part for part in self._parts if isinstance(part, Announced)]
            if servers:
                registration = Registration(self.runtime.registry, servers)
                self._stack.push_async_callback(registration.stop)
                await registration.start()
            ended = {
                asyncio.ensure_future(part.wait()): part
                for part in self._parts
                if isinstance(part, Running)
            }
            try:
                await asyncio.wait({stopping, *ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter, part in ended.items():
                    if waiter.done():
                        log.error("%r ended on its own: stopping the service", part)
                    waiter.cancel()
        finally:
            stopping.cancel()
