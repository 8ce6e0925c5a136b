"""Where a circuit's state is shared with the service's other replicas: pybreaker's Redis
storage, which the kit touches only from `SharedState`'s worker thread."""

from __future__ import annotations

from collections.abc import Callable

import pybreaker
import redis

StorageFactory = Callable[[str], pybreaker.CircuitBreakerStorage]


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

    pybreaker's Redis storage is synchronous (and so is its creation, which writes the
    initial state), so `Breakers` calls this factory and the storage on a worker thread of
    its own, never on the event loop. The short socket timeout bounds how far behind the
    other replicas a sick Redis can leave this one.
    """
    client = redis.Redis.from_url(
        redis_url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
    )

    def create(command: str) -> pybreaker.CircuitBreakerStorage:
        return pybreaker.CircuitRedisStorage(
            pybreaker.STATE_CLOSED, client, namespace=f"{namespace}:{command}"
        )

    return create
