"""Where a circuit's state is shared with the service's other replicas: one Redis hash per
command, touched only from `SharedState`'s worker thread.

The kit keeps this storage itself rather than using pybreaker's Redis storage, which answers
"closed" when Redis fails or has lost the key: every replica then closed its open circuits
once per sync interval for as long as Redis was down, and sent a burst of calls to the
failing service each time instead of one trial call. Here a failure raises, and a missing
state reads as nothing recorded; either way each replica keeps the state it has. pybreaker
still keeps each circuit's state machine, in memory (`shared.breaker.circuit`), and so never
needs redis-py: the kit imports it without (13 MB of every service's memory).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # imported when a service shares its circuits, not by every service
    import redis


class SharedStorage(Protocol):
    """One command's shared state. Both methods may block and raise: `SharedState` calls
    them on its worker thread and keeps the circuit per replica while they fail."""

    def read(self) -> tuple[str, datetime | None] | None:
        """The state and, if open, when it opened; None when nothing is recorded."""
        ...

    def write(self, state: str, opened_at: datetime | None) -> None: ...


StorageFactory = Callable[[str], SharedStorage]


class MemoryStorage:
    """Shared storage within one process: for tests, and for replicas sharing a process."""

    def __init__(self) -> None:
        self._state: tuple[str, datetime | None] | None = None

    def read(self) -> tuple[str, datetime | None] | None:
        return self._state

    def write(self, state: str, opened_at: datetime | None) -> None:
        self._state = (state, opened_at)


class RedisStorage:
    """`<key>` is a hash: `state`, and `opened_at` in whole seconds since the epoch (wall
    clock: the replicas share no other) while the state has one, written together."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._client = client
        self._key = key

    def read(self) -> tuple[str, datetime | None] | None:
        state, opened_at = self._client.hmget(self._key, ["state", "opened_at"])
        if state is None:
            return None
        when = None if opened_at is None else datetime.fromtimestamp(int(opened_at), UTC)
        return state.decode() if isinstance(state, bytes) else state, when

    def write(self, state: str, opened_at: datetime | None) -> None:
        with self._client.pipeline() as transaction:  # MULTI: read whole, never half
            transaction.hset(self._key, "state", state)
            if opened_at is None:
                transaction.hdel(self._key, "opened_at")
            else:
                transaction.hset(self._key, "opened_at", int(opened_at.timestamp()))
            transaction.execute()


def redis_storage_factory(
    redis_url: str,
    namespace: str = "micro",
    *,
    socket_timeout_s: float = 0.25,
) -> StorageFactory:
    """Storage that shares each command's circuit state (closed / open / half-open and the
    time it opened) through Redis, in the hash `<namespace>:breaker:<command>`.

    Only the state is shared. The rolling window, the error %, the bulkhead and the single
    trial call are per replica: a replica that sees the circuit opened elsewhere fails fast
    too, and after the sleep window each replica sends its own one trial call.

    redis-py's client here is synchronous, so `Breakers` calls the storage on a worker thread
    of its own, never on the event loop. The short socket timeout bounds how far behind the
    other replicas a sick Redis can leave this one. Making the client does no I/O.
    """
    import redis  # here: only a service that shares its circuits loads it

    client = redis.Redis.from_url(
        redis_url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
    )

    def create(command: str) -> SharedStorage:
        return RedisStorage(client, f"{namespace}:breaker:{command}")

    return create
