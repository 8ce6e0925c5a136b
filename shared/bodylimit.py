"""An ASGI middleware that refuses request bodies beyond a limit per path prefix, with 413.

Enforced while reading: a declared Content-Length over the limit is refused before a byte
of the body is read, and a body without one (chunked) is counted as it streams in and cut
off at the limit, so memory never holds more than the limit whatever the client sends.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KIB = 1024
MIB = 1024 * KIB


class BodyTooLargeError(Exception):
    pass


class BodyLimit:
    """`limits` maps path prefixes to bytes (the longest matching prefix wins)."""

    def __init__(
        self, app: ASGIApp, *, default: int = MIB, limits: Mapping[str, int] | None = None
    ) -> None:
        self._app = app
        self._default = default
        self._limits = sorted((limits or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        return next((n for prefix, n in self._limits if path.startswith(prefix)), self._default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        declared, chunked = _framing(scope)
        if not declared and not chunked:  # no body can follow (a GET): nothing to count
            await self._app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, counted_receive, tracked_send)
        except BodyTooLargeError:
            if started:  # the app answered before reading it all: nothing more to say
                return
            await _too_large(send, limit)


def _framing(scope: Scope) -> tuple[int | None, bool]:
    """The request's Content-Length (None if absent), and whether its body is chunked."""
    length, chunked = None, False
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            # A malformed one: the server refuses it before we get here.
            with contextlib.suppress(ValueError):
                length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
    return length, chunked


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "error": {
                "reason": "PAYLOAD_TOO_LARGE",
                "message": f"request body over the limit of {limit} bytes",
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            # The rest of the body is never read: the connection cannot be reused.
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
