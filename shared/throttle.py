"""Sliding-window throttles over the `limits` library, in memory or shared through Redis.

The kit names the mechanism only; which keys are counted and how many hits a window allows
is each service's policy. Windows are `limits`' sliding window counters: the current fixed
window's count plus the previous one's, weighted by how much of it still overlaps the
sliding window, so a client cannot double its rate at a window's edge as with fixed
windows. Two counters per key, whatever the limit: a flood of distinct keys (addresses,
made-up account names) costs little memory. `limits`' exact moving window keeps every
hit's time instead, and its asyncio memory store sends each stored key to a worker
thread on every expiry pass: 16 % of the example front's event-loop time per login.

Redis is called through a breaker (`guard`, the kit's own). While Redis fails, or its
circuit is open, each replica counts in its own memory: requests are still throttled
(per replica), and none waits on a Redis that does not answer. A throttle guards the
service from abuse; it must not become the outage itself, nor stop guarding in one.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from shared.breaker import Command
from shared.errors import Reason, ServiceError

log = logging.getLogger(__name__)

T = TypeVar("T")
Windows = SlidingWindowCounterRateLimiter


def client_key(address: str, *, ipv6_prefix: int = 64) -> str:
    """The key a client's requests count under: its IPv4 address, or its IPv6 address's
    network. One IPv6 host picks any address of its /64 at will (privacy addresses do so
    by themselves), so a window per IPv6 address would hold nobody back; a /64 is one LAN,
    as an IPv4 address behind NAT is one household. An IPv4-mapped IPv6 address is its
    IPv4 address; anything that is not an address is its own key."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
    return str(ip)


def parse_limit(text: str) -> RateLimitItem:
    """`"10/minute"`, `"5 per 15 minutes"`: raises ValueError when it is not a limit."""
    return parse(text)


class Throttle:
    """Counts hits per key in sliding windows. One instance per process (it owns a pool).

    `guard` is the breaker around Redis (by default one of its own, named
    `redis.throttle`); pass `Breakers.command(...)` to see it with the others."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        namespace: str = "micro",
        guard: Command | None = None,
    ) -> None:
        self._local = Windows(MemoryStorage())
        self._shared: tuple[Windows, Command] | None = None
        if redis_url:
            # limits' asyncio Redis client (redis-py's): nothing blocks the event loop.
            storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix=f"{namespace}:throttle",
                wrap_exceptions=True,
                socket_timeout=0.5,
                socket_connect_timeout=0.5,
            )
            self._shared = Windows(storage), guard or Command("redis.throttle")

    async def retry_after(self, limit: RateLimitItem, *key: str) -> float | None:
        """Seconds until `key` may hit again, or None when it may now (counts nothing)."""

        async def check(windows: Windows) -> float | None:
            if await windows.test(limit, *key):
                return None
            return await _wait(windows, limit, key)

        return await self._on_windows(check)

    async def hit(self, limit: RateLimitItem, *key: str) -> float | None:
        """Count one hit for `key`; None if it was allowed, else seconds until it will be."""

        async def count(windows: Windows) -> float | None:
            if await windows.hit(limit, *key):
                return None
            return await _wait(windows, limit, key)

        return await self._on_windows(count)

    async def clear(self, limit: RateLimitItem, *key: str) -> None:
        """Forget `key`'s hits (after a success that vouches for it)."""

        async def forget(windows: Windows) -> None:
            await windows.clear(limit, *key)

        await self._on_windows(forget)

    async def _on_windows(self, use: Callable[[Windows], Awaitable[T]]) -> T:
        if self._shared is None:
            return await use(self._local)
        shared, guard = self._shared

        async def on_shared(timeout_s: float) -> T:
            return await use(shared)

        async def on_local(error: BaseException) -> T:
            if not (isinstance(error, ServiceError) and error.reason is Reason.CIRCUIT_OPEN):
                log.warning("throttle storage unavailable, counting in this replica: %s", error)
            return await use(self._local)

        return await guard.run(on_shared, fallback=on_local)


async def _wait(windows: Windows, limit: RateLimitItem, key: tuple[str, ...]) -> float:
    stats = await windows.get_window_stats(limit, *key)
    return float(max(math.ceil(stats.reset_time - time.time()), 1))
