"""A session's own failures, on a fake socket: the client is told, and the log says why."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from google.protobuf.message import Message
from starlette.websockets import WebSocketState

from shared.broker import MemoryBroker
from shared.broker.protocol import Handler
from shared.broker.settings import BrokerSettings
from user_api.ws.pushes import EventHub
from user_api.ws.session import INTERNAL_ERROR, Limits, Session

LIMITS = Limits(
    max_frame_bytes=65536, max_in_flight=10, idle_timeout_s=30, send_queue=10, recheck_s=30
)


class FakeSocket:
    """What Session uses of starlette's WebSocket: frames in, texts out, one close."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[str] = []
        self.closed: tuple[int, str] | None = None
        self.application_state = WebSocketState.CONNECTED

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self.application_state = WebSocketState.DISCONNECTED


class UnreachableBroker(MemoryBroker):
    async def subscribe(
        self,
        subject: str | type[Message],
        handler: Handler,
        *,
        queue: str,
        durable: bool = True,
    ) -> None:
        raise ConnectionError("the broker went away")


async def no_call(service: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
    raise AssertionError("no call is made")


async def still_valid() -> None:
    return None


async def test_a_failure_of_the_session_itself_closes_with_1011_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    socket = FakeSocket()
    session = Session(
        socket,  # type: ignore[arg-type]  # the part of WebSocket that Session uses
        user_id=10001,
        call=no_call,
        check=still_valid,
        hub=EventHub(UnreachableBroker(BrokerSettings(url="memory://")), "user_api"),
        limits=LIMITS,
    )
    frame = json.dumps({"id": "s", "subscribe": "user.logged_in"})
    socket.incoming.put_nowait({"type": "websocket.receive", "text": frame})

    with caplog.at_level(logging.ERROR, logger="user_api.ws.session"):
        await asyncio.wait_for(session.run(), 5)

    assert socket.closed == (INTERNAL_ERROR, "internal error")  # not 1000, "all is well"
    assert "WebSocket session of user 10001 failed" in caplog.text
    assert "the broker went away" in caplog.text
