"""A deadline for receiving each HTTP request: uvicorn's httptools protocol with a timer.

uvicorn has no timeout on request transmission (its issue #157, open since 2018):
`timeout_keep_alive` covers the idle time between requests only, and is cancelled by the
first byte of the next one. A client that connects and sends nothing, or a head or a body
one byte at a time (Slowloris), holds its connection, and a file descriptor, for as long
as it likes; ASGI middleware cannot help, since it runs once the head is parsed.

Here each request must arrive whole, head and body, within `read_timeout_s` of its first
byte (of the connection, for the first one); otherwise the connection is closed. Once a
request has arrived, its handler and its response take as long as they take, and a
WebSocket, once upgraded, is no longer this protocol's.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


class _ReadDeadline(HttpToolsProtocol):
    read_timeout_s: float = 10.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.pipeline:  # queued behind a request still being answered: uvicorn stops
            self._disarm()  # reading, so the rest of it waits on the server, not the client

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:  # the first byte of a request starts its clock
            self._deadline = self.loop.call_later(self.read_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            # One line per connection would let a flood write the log: debug only.
            log.debug("closing %s: no whole request within %s s", self.client, self.read_timeout_s)
            self.transport.close()


def with_read_deadline(seconds: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol, closing a connection whose request has not arrived
    whole within `seconds` (uvicorn.Config(http=...))."""
    return type("ReadDeadlineProtocol", (_ReadDeadline,), {"read_timeout_s": seconds})
