"""Bodies a hostile client sends to a real user_api: too large (413 at once, memory flat),
too deep or with absurd numbers (422 with a message); never a traceback in the log."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import StartService
from tests.support.http import wait_until_ready
from tests.support.ports import free_port
from tests.support.services import ServiceProcess

pytestmark = pytest.mark.integration

CHUNK = b"x" * 65536


@pytest.fixture
async def api(start_service: StartService) -> tuple[int, ServiceProcess]:
    for module in ("config_service", "auth_service", "user_service"):
        start_service(module)
    port = free_port()
    process = start_service("user_api", HTTP_PORT=str(port))
    await wait_until_ready(f"http://127.0.0.1:{port}")
    return port, process


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _ask_first(port: int, size: int, content_type: str) -> int:
    """Declare `size` bytes and wait, as curl does for large bodies (Expect: 100-continue):
    the status the server answers without asking for the body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST /user/login HTTP/1.1\r\nHost: api\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {size}\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
    return int(status_line.split()[1])


async def _stream(port: int, size: int, content_type: str) -> tuple[int | None, int]:
    """Send up to `size` bytes, chunked, without waiting for leave; stop when the server
    answers or drops the connection. The status read (None when the reset came first: a
    server that stops reading may close with unread data, which resets the connection)
    and how many bytes went out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST /user/login HTTP/1.1\r\nHost: api\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n".encode()
    )
    answer = asyncio.create_task(reader.readline())
    sent = 0
    try:
        while sent < size and not answer.done():
            writer.write(b"10000\r\n" + CHUNK + b"\r\n")
            await writer.drain()
            sent += len(CHUNK)
    except ConnectionError:
        pass
    try:
        status_line = await asyncio.wait_for(answer, timeout=10)
    except ConnectionError:
        return None, sent
    finally:
        writer.close()
    return int(status_line.split()[1]), sent


SIZES = (10 * 2**20, 200 * 2**20)
TYPES = ("application/json", "application/x-www-form-urlencoded")


async def test_a_large_body_is_refused_at_once_and_memory_stays_flat(
    api: tuple[int, ServiceProcess],
) -> None:
    port, process = api
    before = _rss_kib(process.pid)

    for size in SIZES:
        for content_type in TYPES:
            started = time.monotonic()
            declared = await _ask_first(port, size, content_type)
            streamed, sent = await _stream(port, size, content_type)

            assert declared == 413
            assert streamed in (413, None)
            assert sent < 8 * 2**20  # cut near the 64 KiB limit (plus what sockets buffer)
            assert time.monotonic() - started < 3
    assert _rss_kib(process.pid) - before < 20 * 1024
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        assert (await http.get("/healthz")).status_code == 200
    assert "Traceback" not in process.logs()


BAD_JSON = [
    (b"[" * 60_000, "nested deeper"),  # 100,000 would be over the 64 KiB limit: 413
    (b'{"userName": "micro", "pwd": ' + b"9" * 5000 + b"}", "a number of 5000"),
    (b'{"userName": "micro", "pwd": 1e999}', "out of range"),
    (b'{"userName": "micro", "pwd": NaN}', "NaN"),
    (b'{"userName": "micro", "pwd": "12', "not valid JSON"),
]


async def test_bad_json_gets_422_with_a_clear_message_and_no_traceback(
    api: tuple[int, ServiceProcess],
) -> None:
    port, process = api
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        for body, says in BAD_JSON:
            response = await http.post(
                "/user/login", content=body, headers={"Content-Type": "application/json"}
            )

            assert response.status_code == 422, response.text
            assert response.json()["error"]["reason"] == "INVALID_ARGUMENT"
            assert says in response.json()["error"]["message"]
    assert "Traceback" not in process.logs()
