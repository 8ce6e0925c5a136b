"""The client address that the login throttle counts: the peer's own, or, from the proxy in
front (FORWARDED_ALLOW_IPS), the one its X-Forwarded-For gives; for IPv6, its /64. A real
uvicorn on 127.0.0.1; the proxy calls from 127.0.0.2, another peer from 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.http import HttpServer
from tests.support.inprocess import in_process_system
from user_api.app import create_app

pytestmark = pytest.mark.integration  # real gRPC servers in this process

FORM = {"userName": "micro", "pwd": "123"}


@pytest.fixture
async def base_url(tmp_path: Path) -> AsyncIterator[str]:
    """user_api allowing 2 logins per address and minute, believing the proxy at 127.0.0.2."""
    async with in_process_system(tmp_path, login_limit_per_address="2/minute") as system:
        server = HttpServer(
            create_app(system.runtime), host="127.0.0.1", port=0, forwarded_allow_ips="127.0.0.2"
        )
        await server.start()
        try:
            yield f"http://{server.address}"
        finally:
            await server.stop()


async def logins(base_url: str, count: int, *, source: str, forwarded: str | None) -> list[int]:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    async with httpx.AsyncClient(base_url=base_url, transport=transport) as client:
        return [
            (await client.post("/user/login", data=FORM, headers=headers)).status_code
            for _ in range(count)
        ]


async def test_behind_the_proxy_each_forwarded_client_has_its_own_budget(base_url: str) -> None:
    first = await logins(base_url, 3, source="127.0.0.2", forwarded="203.0.113.7")
    second = await logins(base_url, 2, source="127.0.0.2", forwarded="198.51.100.9")
    # What a client wrote itself comes first; the proxy appends the address it saw.
    spoofed = await logins(base_url, 1, source="127.0.0.2", forwarded="192.0.2.1, 203.0.113.7")

    assert first == [200, 200, 429]
    assert second == [200, 200]
    assert spoofed == [429]


async def test_a_peer_that_is_not_the_proxy_cannot_pick_its_address(base_url: str) -> None:
    made_up = [f"203.0.113.{n}" for n in range(3)]
    statuses = [
        (await logins(base_url, 1, source="127.0.0.1", forwarded=address))[0] for address in made_up
    ]

    assert statuses == [200, 200, 429]


async def test_an_ipv6_client_counts_as_its_64_whichever_of_its_addresses_it_takes(
    base_url: str,
) -> None:
    one_lan = [f"2001:db8:0:1::{n:x}" for n in range(1, 4)]
    statuses = [
        (await logins(base_url, 1, source="127.0.0.2", forwarded=address))[0] for address in one_lan
    ]
    next_lan = await logins(base_url, 1, source="127.0.0.2", forwarded="2001:db8:0:2::1")
    mapped = await logins(base_url, 3, source="127.0.0.2", forwarded="::ffff:198.51.100.77")
    as_ipv4 = await logins(base_url, 1, source="127.0.0.2", forwarded="198.51.100.77")

    assert statuses == [200, 200, 429]
    assert next_lan == [200]
    assert mapped == [200, 200, 429]
    assert as_ipv4 == [429]  # the same client as its IPv4-mapped address
