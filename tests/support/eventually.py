"""Waiting on state in another process (a database row, a counter) that sends no event."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    timeout: float = 15.0,
    interval: float = 0.1,
) -> T:
    """Probe until `until(value)` holds; the last value, or AssertionError on timeout."""
    give_up = time.monotonic() + timeout
    while True:
        value = await probe()
        if until(value):
            return value
        if time.monotonic() > give_up:
            raise AssertionError(f"still {value!r} after {timeout} s")
        await asyncio.sleep(interval)
