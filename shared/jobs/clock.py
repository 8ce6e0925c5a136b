"""Wall-clock time for the scheduler, behind a seam so tests can drive it by hand.

Ticks are wall-clock instants shared by every replica, so the scheduler sleeps until an
instant, not for a duration: `SystemClock` re-reads the time after each nap, which also
follows a clock that was stepped (NTP) while it slept.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta
from typing import Protocol

# A stepped wall clock is noticed within this long even in the middle of a long wait.
_MAX_NAP_S = 30.0


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return at `when` or right away when it has passed."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        # A wall-clock deadline, not a wait for an event: nothing else could wake us earlier.
        while (remaining := (when - self.now()).total_seconds()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(remaining, _MAX_NAP_S))


class ManualClock:
    """A clock that moves only when told: `advance()` wakes whoever is due.

    `sleepers(n)` waits until at least `n` tasks sleep on the clock, which is how a test
    knows the scheduler has finished with a tick and waits for the next one.
    """

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._queue: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._changed = asyncio.Condition()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, (when, next(self._order), future))
        async with self._changed:
            self._changed.notify_all()
        await future

    def advance(self, delta: timedelta) -> None:
        self.set(self._now + delta)

    def set(self, moment: datetime) -> None:
        self._now = moment
        while self._queue and self._queue[0][0] <= moment:
            _, _, future = heapq.heappop(self._queue)
            if not future.done():
                future.set_result(None)

    def _waiting(self) -> int:
        return sum(1 for _, _, future in self._queue if not future.done())

    async def sleepers(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._waiting() >= count)
