"""Load shedding: a method admits only the work it can finish within the caller's deadline.

Each method has a gate. At most `limit` calls run at once (for a CPU-bound method, about
one per core: more only queue inside the thread pool, out of sight); the rest wait in a
bounded queue, each only as long as its caller's deadline leaves time to do the work
(the remaining time less twice the method's recent service time). A call that cannot start in
time is answered at once with OVERLOADED (RESOURCE_EXHAUSTED): the caller's breaker counts
it as neither a success nor a failure, and a retryable call may go to another node.
Without this, the work queues behind the caller's timeout, every caller times out, and
the timeouts open the caller's circuit for everyone.

Waiting calls queue per fairness key (metadata `x-fairness-key`, set by a front door to
the end client it serves, for example its address; absent, one key for all) and a freed
slot goes to the keys in turn: a client that floods a method fills its own queue, and
another client's call waits for one slot, not behind the flood.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from shared.errors import Reason, ServiceError
from shared.metadata import metadata_value
from shared.server.links import Context, Handler, ServerMiddleware, abort

FAIRNESS_METADATA_KEY = "x-fairness-key"
# The answer must reach the caller before its deadline does, or it counts as a timeout.
_SLACK_S = 0.05
# Weight of the newest call in the service time estimate (an exponential moving average).
_EWMA = 0.2


@dataclass(frozen=True, slots=True)
class Admission:
    """`limit` calls of a method run at once; up to `queue` more wait, per fairness key."""

    limit: int
    queue: int

    def __post_init__(self) -> None:
        if self.limit < 1 or self.queue < 0:
            raise ValueError(f"an admission needs limit >= 1 and queue >= 0, not {self}")


def per_core(calls: int = 1, queue: int = 2) -> Admission:
    """For a CPU-bound method: `calls` running and `queue` waiting per core of this host."""
    cores = os.cpu_count() or 1
    return Admission(limit=calls * cores, queue=queue * cores)


class Gate:
    """The admission state of one method. Used from one event loop, without locks."""

    __slots__ = ("_keys", "_queued", "_waiting", "limit", "queue", "running", "service_s")

    def __init__(self, admission: Admission) -> None:
        self.limit = admission.limit
        self.queue = admission.queue
        self.running = 0
        self.service_s = 0.0
        self._queued = 0
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        # The keys with waiting calls, in the order their turn comes.
        self._keys: deque[str] = deque()

    @property
    def queued(self) -> int:
        return self._queued

    def try_enter(self) -> bool:
        """Take a slot if one is free and nobody waits for it (the fast path)."""
        if self.running < self.limit and not self._queued:
            self.running += 1
            return True
        return False

    async def wait(self, key: str, patience: float) -> bool:
        """Wait at most `patience` seconds for a slot; False when the call must be shed."""
        queue = self._waiting.get(key)
        if patience <= 0 or len(queue or ()) >= self.queue:
            return False
        if queue is None:
            queue = self._waiting[key] = deque()
            self._keys.append(key)
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(turn)
        self._queued += 1
        try:
            async with asyncio.timeout(patience):
                await turn
        except TimeoutError:
            self._give_up(key, turn)
            return False
        except asyncio.CancelledError:
            self._give_up(key, turn)
            raise
        return True

    def leave(self) -> None:
        """Free a slot: it goes to the next key's oldest waiting call, if any."""
        keys, waiting = self._keys, self._waiting
        while keys:
            key = keys.popleft()
            queue = waiting[key]
            turn = queue.popleft()
            if queue:
                keys.append(key)
            else:
                del waiting[key]
            self._queued -= 1
            if not turn.done():
                turn.set_result(None)
                return
        self.running -= 1

    def _give_up(self, key: str, turn: asyncio.Future[None]) -> None:
        if turn.done() and not turn.cancelled():
            self.leave()  # handed a slot just as it gave up: pass it on
            return
        queue = self._waiting.get(key)
        if queue is None or turn not in queue:
            return  # `leave` took it off already
        queue.remove(turn)
        self._queued -= 1
        if not queue:
            del self._waiting[key]
            self._keys.remove(key)


def shedding(method: str, admission: Admission, default_deadline_s: float) -> ServerMiddleware:
    """The gate of `method` around its handler; see the module's docstring."""
    gate = Gate(admission)
    clock = time.perf_counter

    def link(next: Handler) -> Handler:
        async def admitted(request: Any, context: Context) -> Any:
            if not gate.try_enter():
                remaining = context.time_remaining()
                if remaining is None:
                    remaining = default_deadline_s
                # Room for the work twice over: a busy host runs it slower than it did.
                patience = remaining - 2 * gate.service_s - _SLACK_S
                if not await gate.wait(_fairness_key(context), patience):
                    overloaded = ServiceError(
                        Reason.OVERLOADED,
                        f"{method} is overloaded: {gate.running} running, {gate.queued} waiting",
                        retry_after=1.0,
                    )
                    await abort(context, overloaded)
            started = clock()
            try:
                return await next(request, context)
            finally:
                gate.service_s += (clock() - started - gate.service_s) * _EWMA
                gate.leave()

        return admitted

    return link


def _fairness_key(context: Context) -> str:
    return metadata_value(context, FAIRNESS_METADATA_KEY) or ""
