"""Sliding-window throttles over the `limits` library, in memory or shared through Redis.

The kit names the mechanism only; which keys are counted and how many hits a window allows
is each service's policy. Windows are `limits`' sliding window counters: the current fixed
window's count plus the previous one's, weighted by how much of it still overlaps the
sliding window, so a client cannot double its rate at a window's edge as with fixed
windows. Two counters per key, whatever the limit: a flood of distinct keys (addresses,
made-up account names) costs little memory. `limits`' exact moving window keeps every
hit's time instead, and its asyncio memory store sends each stored key to a worker
thread on every expiry pass: 16 % of the example front's event-loop time per login.

Redis unreachable means the throttle lets requests through (and logs it): a throttle guards
the service from abuse; it must not become the outage itself.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

log = logging.getLogger(__name__)


def parse_limit(text: str) -> RateLimitItem:
    """`"10/minute"`, `"5 per 15 minutes"`: raises ValueError when it is not a limit."""
    return parse(text)


class Throttle:
    """Counts hits per key in sliding windows. One instance per process (it owns a pool)."""

    def __init__(self, redis_url: str | None = None, *, namespace: str = "micro") -> None:
        storage: Storage
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
        else:
            storage = MemoryStorage()
        self._storage = storage
        self._windows = SlidingWindowCounterRateLimiter(storage)

    async def retry_after(self, limit: RateLimitItem, *key: str) -> float | None:
        """Seconds until `key` may hit again, or None when it may now (counts nothing)."""
        try:
            if await self._windows.test(limit, *key):
                return None
            stats = await self._windows.get_window_stats(limit, *key)
        except StorageError as error:
            log.warning("throttle storage unavailable, letting the request through: %s", error)
            return None
        return float(max(math.ceil(stats.reset_time - time.time()), 1))

    async def hit(self, limit: RateLimitItem, *key: str) -> float | None:
        """Count one hit for `key`; None if it was allowed, else seconds until it will be."""
        try:
            if await self._windows.hit(limit, *key):
                return None
            stats = await self._windows.get_window_stats(limit, *key)
        except StorageError as error:
            log.warning("throttle storage unavailable, letting the request through: %s", error)
            return None
        return float(max(math.ceil(stats.reset_time - time.time()), 1))

    async def clear(self, limit: RateLimitItem, *key: str) -> None:
        """Forget `key`'s hits (after a success that vouches for it)."""
        try:
            await self._windows.clear(limit, *key)
        except StorageError as error:
            log.warning("throttle storage unavailable: %s", error)
