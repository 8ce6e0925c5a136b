"""Serving an ASGI app with uvicorn under the kit's shutdown order.

uvicorn takes SIGTERM/SIGINT for itself and re-raises them once it has stopped, which kills
the process before the runtime is closed (events in the outbox, spans not yet exported).
Here the kit's stop signal ends the server, and the caller's clean-up runs after.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator
from typing import Any

import uvicorn

from shared.runtime import stop_signal


class HttpServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_server(app: Any, *, host: str, port: int) -> HttpServer:
    """A uvicorn server for `app`, logging through the kit's logging, with no signal handlers."""
    # httptools parses HTTP/1.1 in C (uvicorn's pure-Python h11 costs more CPU per request);
    # the loop is whichever the entrypoint runs (uvloop, see shared/entrypoint.py).
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    return HttpServer(config)


async def serve_http(
    app: Any, *, host: str, port: int, until: Awaitable[Any] | None = None
) -> None:
    """Serve `app` until SIGTERM/SIGINT (or `until`), or until the server fails; then stop it."""
    server = http_server(app, host=host, port=port)
    stopping = asyncio.ensure_future(until if until is not None else stop_signal().wait())
    serving = asyncio.create_task(server.serve(), name="http")
    try:
        await asyncio.wait({stopping, serving}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        server.should_exit = True
        await serving
