"""Apply an event at most once per process, for handlers without a storage key.

Delivery is at least once, so every handler must be idempotent. The sturdy way is in
the handler's own storage: a UNIQUE `event_id` column makes the second insert fail
(a history table keyed on the event id, for example). `SeenEvents` is the light way for
handlers whose effect has no such key: it remembers ids for a while, in memory only,
so it covers redeliveries to the same process (a lost ack, an ack timeout), not a
restart or another replica.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from shared.broker.protocol import Event, Handler


class SeenEvents:
    def __init__(
        self,
        *,
        ttl_s: float = 600.0,
        max_size: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_size = max_size
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        self._expire()
        return event_id in self._seen

    def __len__(self) -> int:
        self._expire()
        return len(self._seen)

    def add(self, event_id: str) -> None:
        self._seen[event_id] = self._clock() + self._ttl_s
        self._seen.move_to_end(event_id)
        while len(self._seen) > self._max_size:
            self._seen.popitem(last=False)

    def _expire(self) -> None:
        now = self._clock()
        while self._seen:
            event_id, expires = next(iter(self._seen.items()))
            if expires > now:
                return
            del self._seen[event_id]


def once(handler: Handler, seen: SeenEvents) -> Handler:
    """`handler`, skipping events it already handled. An event is marked only once the
    handler returns, so a failed attempt is retried in full on redelivery."""

    async def handle(event: Event) -> None:
        if not event.event_id:  # no id to remember (a core message from elsewhere)
            await handler(event)
            return
        if event.event_id in seen:
            return
        await handler(event)
        seen.add(event.event_id)

    return handle
