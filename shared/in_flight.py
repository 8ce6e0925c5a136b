"""A cap on the operations one key (a client, an account) has running at once, in this
process: past it, the next is refused at once, never queued.

A rate window (shared/throttle.py) bounds how many operations a key starts per minute; it
does not bound how many run at the same moment. Sent all at once, a window's whole allowance
occupies that many of a shared resource together (a breaker's bulkhead, a worker pool),
and a few keys can then fill it for everyone. This cap keeps each key to a small share.

Which keys, and how many places each, is the service's policy. A key is forgotten when its
last operation ends: a flood of distinct keys holds memory only while it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class InFlight:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self._limit = limit
        self._running: dict[str, int] = {}

    def running(self, key: str) -> int:
        return self._running.get(key, 0)

    def __len__(self) -> int:
        """The keys with an operation running."""
        return len(self._running)

    def try_hold(self, key: str) -> contextlib.AbstractContextManager[None] | None:
        """A context that holds one of `key`'s places while it is entered, or None when
        they are all taken. Enter it before the next `await`: the place is taken on
        entering, so one never entered holds nothing."""
        if self._running.get(key, 0) >= self._limit:
            return None
        return self._holding(key)

    @contextlib.contextmanager
    def _holding(self, key: str) -> Iterator[None]:
        self._running[key] = self._running.get(key, 0) + 1
        try:
            yield
        finally:
            left = self._running[key] - 1
            if left:
                self._running[key] = left
            else:
                del self._running[key]
