"""Server streams that end when their server stops, instead of holding its drain.

A long-lived stream (a config watch) never finishes on its own: on stop, gRPC's graceful
drain would wait the whole `drain_s` for it, then cut it. Ending it at once, with status
OK, lets the caller subscribe again on another node (this one is already deregistered)
and lets the server stop as soon as its unary calls are done.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

from shared.server.links import Context

_REASON = "the server is stopping"


class _StreamEndedError(Exception):
    """The stream was ended by `end_all`."""


class OpenStreams:
    """The server streams in progress, ended together by `end_all`."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ending = False

    def end_all(self) -> None:
        """End every stream now, and any that starts from now on before it runs."""
        self._ending = True
        for task in self._tasks:
            task.cancel(_REASON)

    def ending_at_stop(self, behavior: Any) -> Any:
        """`behavior` (an async generator, or a coroutine that writes with `context.write`)
        ended with status OK by `end_all`."""
        if inspect.isasyncgenfunction(behavior):

            async def streamed(request: Any, context: Context) -> AsyncIterator[Any]:
                with contextlib.suppress(_StreamEndedError), self._tracked():
                    async for item in behavior(request, context):
                        yield item

            return streamed

        async def written(request: Any, context: Context) -> None:
            with contextlib.suppress(_StreamEndedError), self._tracked():
                await behavior(request, context)

        return written

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        task = asyncio.current_task()
        if self._ending or task is None:
            raise _StreamEndedError
        self._tasks.add(task)
        try:
            yield
        except asyncio.CancelledError:
            # Only our own cancellation ends the stream cleanly: the caller going away (or
            # any other cancellation) stays one.
            if not self._ending or task.cancelling() != 1:
                raise
            task.uncancel()
            raise _StreamEndedError from None
        finally:
            self._tasks.discard(task)
