"""Waiting for an HTTP service to become ready, and logging in through it."""

from __future__ import annotations

import asyncio
import time

import httpx


async def wait_until_ready(base_url: str, timeout: float = 30.0) -> None:
    """Poll GET /readyz until it answers 200 (the process gives no other signal)."""
    give_up = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as http:
        while True:
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > give_up:
                raise TimeoutError(f"{base_url} not ready after {timeout} s")
            await asyncio.sleep(0.1)


async def login(
    http: httpx.AsyncClient, user: str = "micro", password: str = "123"
) -> httpx.Response:
    return await http.post("/user/login", data={"userName": user, "pwd": password})
