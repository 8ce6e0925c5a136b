"""A circuit's state, kept by pybreaker and moved on Hystrix's terms.

pybreaker owns the state machine and its listeners, on its memory storage. It counts
consecutive failures and its `call()` blocks, so the kit never uses `call()`: the state is
read from a local copy that a pybreaker listener keeps current, and changed through
`open()`, `half_open()` and `close()`, which never wait on anything. A circuit shared with
other replicas mirrors its changes through `SharedState`, off the event loop.

pybreaker imports redis-py whenever it is installed, for a Redis storage the kit does not
use (`shared.breaker.storage` says why): 13 MB of every service's memory, so it is imported
without it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from shared.breaker.shared_state import SharedState
from shared.imports import without_optional

with without_optional("redis"):
    import pybreaker

CLOSED = pybreaker.STATE_CLOSED
OPEN = pybreaker.STATE_OPEN
HALF_OPEN = pybreaker.STATE_HALF_OPEN

logger = logging.getLogger(__name__)


class _StateListener(pybreaker.CircuitBreakerListener):
    def __init__(self, circuit: Circuit) -> None:
        self._circuit = circuit

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self._circuit._on_state_change(new_state.name)


class Circuit:
    """`opened_at` is on the injected clock, not pybreaker's wall clock, so that the sleep
    window can be tested with a fake one. `trial_in_flight` is per replica."""

    __slots__ = (
        "_breaker",
        "_changes",
        "_following",
        "_name",
        "_on_close",
        "opened_at",
        "shared",
        "sleep_s",
        "state",
        "trial_in_flight",
    )

    def __init__(
        self,
        name: str,
        *,
        sleep_s: float,
        on_close: Callable[[], None],
        shared: SharedState | None = None,
    ) -> None:
        self._name = name
        self._on_close = on_close
        self.shared = shared
        # Local changes so far: a shared state read before one of them is out of date.
        self._changes = 0
        self._following = False
        self.sleep_s = sleep_s
        self.trial_in_flight = False
        self._breaker = pybreaker.CircuitBreaker(
            name=name,
            state_storage=pybreaker.CircuitMemoryStorage(CLOSED),
            reset_timeout=sleep_s,
            listeners=[_StateListener(self)],
        )
        self.state: str = CLOSED
        self.opened_at = -math.inf

    def set_sleep_window(self, sleep_s: float) -> None:
        self.sleep_s = self._breaker.reset_timeout = sleep_s

    def admit(self, now: float) -> bool:
        """Whether a call may go through while not closed; if so, it is the trial call."""
        if self.state == OPEN:
            if now - self.opened_at < self.sleep_s:
                return False
            self._breaker.half_open()
        elif self.trial_in_flight:
            return False
        self.trial_in_flight = True
        return True

    def settle_trial(self, failed: bool, now: float) -> None:
        # Another replica may have settled the circuit meanwhile; its word stands.
        if self.state == HALF_OPEN:
            if failed:
                self.trip(now)
            else:
                self._breaker.close()

    def trip(self, now: float) -> None:
        self.opened_at = now
        self._breaker.open()

    def retry_after(self, now: float) -> float:
        """Whole seconds left of the sleep window, at least 1 (also while a trial runs)."""
        return float(max(1, math.ceil(self.opened_at + self.sleep_s - now)))

    async def follow_shared(self, clock: Callable[[], float]) -> None:
        """Take the state another replica left in shared storage, if it differs."""
        if self.shared is None:
            return
        changes = self._changes
        found = await self.shared.read()
        if found is None or changes != self._changes or found[0] == self.state:
            return
        state, opened_at = found
        self._following = True
        try:
            if state == OPEN:
                # Shared storage stamps the opening in wall-clock seconds: on our clock,
                # the other replica's sleep window ends when it ends there.
                age = 0.0 if opened_at is None else time.time() - opened_at.timestamp()
                self.opened_at = clock() - max(0.0, age)
                self._breaker.open()
            elif state == HALF_OPEN:
                self._breaker.half_open()
            elif state == CLOSED:
                self._breaker.close()
        finally:
            self._following = False

    def _on_state_change(self, state: str) -> None:
        self.state = state
        if self.shared is not None and not self._following:
            self._changes += 1
            self.shared.write(state, datetime.now(UTC) if state == OPEN else None)
        if state == CLOSED:
            self._on_close()
        log = logger.warning if state == OPEN else logger.info
        log("circuit %s is now %s", self._name, state)
