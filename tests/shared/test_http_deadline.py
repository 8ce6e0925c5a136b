"""Each HTTP request must arrive whole within the deadline; what arrived in time is served
however long it takes. A real uvicorn on loopback, a raw socket as the slow client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from fastapi import Request, WebSocket
from websockets.asyncio.client import connect

from shared.http import HttpServer
from shared.tracing import Tracing
from shared.web import web_app

DEADLINE_S = 0.5
# Far beyond the deadline: a connection the deadline should have closed is still open then.
PATIENCE_S = 5.0


@pytest.fixture
async def address() -> AsyncIterator[tuple[str, int]]:
    app = web_app(title="front", version="1", tracing=Tracing.disabled())

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(DEADLINE_S * 3)  # a handler slower than the deadline
        return {"status": "done"}

    @app.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        async for text in socket.iter_text():
            await socket.send_text(text)

    server = HttpServer(app, host="127.0.0.1", port=0, read_timeout_s=DEADLINE_S)
    await server.start()
    host, port = server.address.split(":")
    try:
        yield host, int(port)
    finally:
        await server.stop()


async def closed_without_answer(address: tuple[str, int], sent: bytes) -> bool:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(sent)
        return await asyncio.wait_for(reader.read(), PATIENCE_S) == b""
    finally:
        writer.close()


@pytest.mark.parametrize(
    "sent",
    [
        b"",  # connects and says nothing
        b"POST /echo HTTP/1.1\r\nHost: front\r\n",  # a head that never ends
        b"POST /echo HTTP/1.1\r\nHost: front\r\nContent-Length: 10\r\n\r\n12",  # a short body
    ],
    ids=["nothing", "partial-head", "partial-body"],
)
async def test_a_request_that_does_not_arrive_in_time_loses_its_connection(
    address: tuple[str, int], sent: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        assert await closed_without_answer(address, sent)

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_request_that_arrived_is_served_however_long_it_takes(
    address: tuple[str, int],
) -> None:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(b"GET /slow HTTP/1.1\r\nHost: front\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PATIENCE_S)
        # Kept alive: the next request on the same connection gets its own deadline.
        writer.write(b"POST /echo HTTP/1.1\r\nHost: front\r\nContent-Length: 3\r\n\r\nabc")
        await asyncio.wait_for(reader.readuntil(b'"done"}'), PATIENCE_S)
        echoed = await asyncio.wait_for(reader.readuntil(b'{"bytes":3}'), PATIENCE_S)
    finally:
        writer.close()

    assert head.startswith(b"HTTP/1.1 200")
    assert echoed.endswith(b'{"bytes":3}')


async def test_a_request_queued_behind_a_slow_one_is_not_cut_while_it_waits(
    address: tuple[str, int],
) -> None:
    reader, writer = await asyncio.open_connection(*address)
    try:
        # Pipelined: the second head arrives while the first is answered, its body later.
        writer.write(b"GET /slow HTTP/1.1\r\nHost: front\r\n\r\n")
        writer.write(b"POST /echo HTTP/1.1\r\nHost: front\r\nContent-Length: 3\r\n\r\n")
        slow = await asyncio.wait_for(reader.readuntil(b'"done"}'), PATIENCE_S)
        writer.write(b"abc")
        echoed = await asyncio.wait_for(reader.readuntil(b'{"bytes":3}'), PATIENCE_S)
    finally:
        writer.close()

    assert slow.startswith(b"HTTP/1.1 200")
    assert echoed.endswith(b'{"bytes":3}')


async def test_a_websocket_outlives_the_deadline(address: tuple[str, int]) -> None:
    host, port = address
    async with connect(f"ws://{host}:{port}/ws") as socket:
        await asyncio.sleep(DEADLINE_S * 3)  # idle past the deadline: nothing may close it
        await socket.send("still here")
        assert await asyncio.wait_for(socket.recv(), PATIENCE_S) == "still here"
