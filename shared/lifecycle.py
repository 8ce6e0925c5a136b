"""What has a lifecycle: parts that start and stop, and the registration of a service.

Every part of a running service (a server, a subscription, a background task) has the
same two names, `start` and `stop`; the application (`shared.app.App`) starts them in
order and stops them in reverse. `Registration` is a part too: it registers the nodes
of the started servers and, on stop, says NOT_SERVING and deregisters them first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from shared.registry import Registry, ServiceNode

log = logging.getLogger(__name__)


class Part(Protocol):
    async def start(self) -> object:
        """Return once the part serves (a server listens, a subscription is made)."""

    async def stop(self) -> None:
        """Finish what is in flight, within the part's own bound, and release it."""


@runtime_checkable
class Running(Protocol):
    async def wait(self) -> None:
        """Return when the part has ended on its own (a failure): the service stops then."""


@runtime_checkable
class Announced(Protocol):
    """A server that callers find through the registry, with a health status."""

    node: ServiceNode | None

    async def set_serving(self, serving: bool) -> None: ...


def stop_signal() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT (Ctrl-C).

    Install it before starting, so that a signal right after registration is not fatal.
    The handlers stay installed: a second signal during the (bounded) drain is ignored
    rather than killing the process before it has deregistered.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


class Registration:
    """Start: register every server's node, then say SERVING (healthy once findable).

    Stop: NOT_SERVING, then deregister at once, so callers stop picking the nodes before
    the servers drain (kratos' order).
    """

    def __init__(self, registry: Registry, servers: Sequence[Announced]) -> None:
        self._registry = registry
        self._servers = list(servers)
        self._registered: list[tuple[Announced, ServiceNode]] = []

    async def start(self) -> None:
        for server in self._servers:
            if server.node is None:
                raise RuntimeError("a server must be started before it is registered")
            await self._registry.register(server.node)
            self._registered.append((server, server.node))
        for server, node in self._registered:
            await server.set_serving(True)
            log.info("%s serving on %s as %s", node.name, node.address, node.id)

    async def stop(self) -> None:
        for server, _ in self._registered:
            await server.set_serving(False)
        for _, node in reversed(self._registered):
            await self._registry.deregister(node)
            log.info("%s deregistered %s", node.name, node.id)
        self._registered.clear()


class BackgroundTask:
    """A coroutine run for as long as the service runs; cancelled on stop."""

    def __init__(self, job: Callable[[], Awaitable[None]], name: str) -> None:
        self._job = job
        self.name = name
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async def run() -> None:
            await self._job()

        self._task = asyncio.create_task(run(), name=self.name)

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.wait({self._task})  # never cancels the task itself

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task  # a job that failed on its own raises here
