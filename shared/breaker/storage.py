"""Where pybreaker keeps a circuit's state: in memory, or in Redis to share it across replicas."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pybreaker
import redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

StorageFactory = Callable[[str], pybreaker.CircuitBreakerStorage]


def memory_storage(command: str) -> pybreaker.CircuitBreakerStorage:
    return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)


def redis_storage_factory(
    redis_url: str,
    namespace: str = "micro",
    *,
    socket_timeout_s: float = 0.25,
) -> StorageFactory:
    """Storage that shares each command's circuit state (closed / open / half-open and the
    time it opened) through Redis under `<namespace>:<command>:pybreaker:*`.

    Only the state is shared. The rolling window, the error %, the bulkhead and the single
    trial call are per replica: a replica that sees the circuit opened elsewhere fails fast
    too, and after the sleep window each replica sends its own one trial call.

    pybreaker's Redis storage is synchronous, so the kit touches Redis only on a state change
    and once per sync interval per command (see `Breakers(sync_interval_s=...)`), never per
    call; the short socket timeout bounds how long a sick Redis can stall the event loop.
    If Redis is unreachable when a command is first used, that command keeps its state in
    memory (logged) rather than failing every call.
    """
    client = redis.Redis.from_url(
        redis_url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
    )

    def create(command: str) -> pybreaker.CircuitBreakerStorage:
        try:
            return pybreaker.CircuitRedisStorage(
                pybreaker.STATE_CLOSED, client, namespace=f"{namespace}:{command}"
            )
        except RedisError:
            logger.warning(
                "breaker %s: Redis unreachable, keeping the circuit state in memory",
                command,
                exc_info=True,
            )
            return memory_storage(command)

    return create
