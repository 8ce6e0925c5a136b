"""uvicorn as a part of the application, under the kit's shutdown order.

uvicorn takes SIGTERM/SIGINT for itself and re-raises them once it has stopped, which kills
the process before the runtime is closed (events in the outbox, spans not yet exported).
Here it installs no signal handlers: the application's stop signal stops it, and the
clean-up of the rest runs after.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from shared.http_deadline import with_read_deadline

# A request's head and body arrive within this many seconds of its first byte, or the
# connection is closed: a 64 KiB body at 6.5 KB/s, slower than a 2G phone.
READ_TIMEOUT_S = 10.0


class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        except SystemExit:  # uvicorn's answer to a port it cannot bind: a failed start instead
            where = f"{self.config.host}:{self.config.port}"
            raise OSError(f"HTTP server could not listen on {where}") from None
        self.listening.set()


class HttpServer:
    """Serves an ASGI app: `start` returns once it listens, `stop` lets requests finish."""

    def __init__(
        self,
        app: Any,
        *,
        host: str,
        port: int,
        read_timeout_s: float = READ_TIMEOUT_S,
        forwarded_allow_ips: str = "127.0.0.1",
    ) -> None:
        """`forwarded_allow_ips`: the peers (addresses, networks, or `*`) whose
        X-Forwarded-For and X-Forwarded-Proto are believed, i.e. the proxy in front; the
        request's client is then the address that proxy saw."""
        # httptools parses HTTP/1.1 in C (uvicorn's pure-Python h11 costs more CPU per request),
        # here with a deadline for each request to arrive whole (shared/http_deadline.py);
        # the loop is whichever the entrypoint runs (uvloop, see shared/entrypoint.py).
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=with_read_deadline(read_timeout_s),
            proxy_headers=True,
            forwarded_allow_ips=forwarded_allow_ips,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        self._server = _Uvicorn(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        """host:port it listens on (the bound port when asked for port 0)."""
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(), name="http")
        listening = asyncio.ensure_future(self._server.listening.wait())
        await asyncio.wait({self._task, listening}, return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if self._task.done():
            await self._task  # raises why it could not start
            raise RuntimeError("HTTP server ended while starting")

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.wait({self._task})  # never cancels the server itself

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
