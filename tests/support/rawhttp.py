"""Logins over keep-alive HTTP/1.1 connections opened ahead of time, for timing tests.

Sending a request is one write, and the clock runs from that write to the last byte of the
answer. An httpx request costs about a millisecond of the test's CPU before it leaves, so
a burst of 150 would leave over 150 ms and every timing would carry the test's own queue.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

_BODY = urllib.parse.urlencode({"userName": "micro", "pwd": "123"}).encode()
_LOGIN = (
    b"POST /user/login HTTP/1.1\r\nHost: api\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)
_HEALTH = b"GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n"


@dataclass
class Reply:
    """An HTTP answer and how long it took."""

    status: int
    seconds: float
    body: dict[str, Any]
    headers: httpx.Headers
    finished_at: float  # time.perf_counter()

    @property
    def reason(self) -> str | None:
        error = self.body.get("error")
        return error.get("reason") if isinstance(error, dict) else None


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def login(self) -> Reply:
        return await self._exchange(_LOGIN)

    async def check(self) -> None:
        assert (await self._exchange(_HEALTH)).status == 200

    async def _exchange(self, request: bytes) -> Reply:
        started = time.perf_counter()
        self._writer.write(request)
        status_line = await self._reader.readline()
        headers = httpx.Headers()
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip()] = value.strip()
        body = await self._reader.readexactly(int(headers["content-length"]))
        finished = time.perf_counter()
        status = int(status_line.split()[1])
        return Reply(status, finished - started, json.loads(body), headers, finished)

    async def close(self) -> None:
        self._writer.close()
        await self._writer.wait_closed()


class Connections:
    """Connections to user_api; `logins(n)` sends n logins at once, one per connection."""

    def __init__(self, connections: list[Connection]) -> None:
        self._all = connections

    @classmethod
    async def open(cls, base_url: str, count: int) -> Connections:
        url = httpx.URL(base_url)
        opened = await asyncio.gather(
            *(asyncio.open_connection(url.host, url.port) for _ in range(count))
        )
        connections = cls([Connection(reader, writer) for reader, writer in opened])
        # A first exchange on each makes user_api's side of every connection ready too.
        await asyncio.gather(*(c.check() for c in connections._all))
        return connections

    def __getitem__(self, index: int) -> Connection:
        return self._all[index]

    async def logins(self, count: int) -> list[Reply]:
        """`count` logins sent together, one per connection."""
        assert count <= len(self._all), "open more connections"
        return list(await asyncio.gather(*(c.login() for c in self._all[:count])))

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._all))
