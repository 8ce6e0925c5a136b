"""A circuit's state, kept by pybreaker and moved on Hystrix's terms.

pybreaker owns the state machine, its listeners and its storage (which may be shared through
Redis). It counts consecutive failures and its `call()` blocks, so the kit never uses
`call()`: the state is read from a local copy that a pybreaker listener keeps current, and
changed through `open()`, `half_open()` and `close()`, which never wait on anything.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

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
        "_name",
        "_on_close",
        "_storage",
        "_sync_interval_s",
        "next_sync",
        "opened_at",
        "sleep_s",
        "state",
        "trial_in_flight",
    )

    def __init__(
        self,
        name: str,
        storage: pybreaker.CircuitBreakerStorage,
        *,
        sleep_s: float,
        now: float,
        on_close: Callable[[], None],
        sync_interval_s: float,
    ) -> None:
        self._name = name
        self._storage = storage
        self._on_close = on_close
        self._sync_interval_s = sync_interval_s
        self.sleep_s = sleep_s
        self.trial_in_flight = False
        self._breaker = pybreaker.CircuitBreaker(
            name=name,
            state_storage=storage,
            reset_timeout=sleep_s,
            listeners=[_StateListener(self)],
        )
        # Memory storage changes only through this object, so only shared storage is re-read.
        shared = not isinstance(storage, pybreaker.CircuitMemoryStorage)
        self.next_sync = now + sync_interval_s if shared else math.inf
        self.state: str = self._breaker.current_state
        self.opened_at = now - self._open_age() if self.state == OPEN else -math.inf

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

    def sync(self, now: float) -> None:
        """Pick up a state change made by another replica through shared storage."""
        self.next_sync = now + self._sync_interval_s
        was = self.state
        # Reading `.state` makes pybreaker notice the change and tell our listener.
        if self._breaker.state.name == OPEN and was != OPEN:
            self.opened_at = now - self._open_age()

    def _open_age(self) -> float:
        # Shared storage stamps the opening in wall-clock seconds; convert to our clock.
        opened_at = self._storage.opened_at
        if opened_at is None:
            return 0.0
        return max(0.0, time.time() - opened_at.timestamp())

    def _on_state_change(self, state: str) -> None:
        self.state = state
        if state == CLOSED:
            self._on_close()
        log = logger.warning if state == OPEN else logger.info
        log("circuit %s is now %s", self._name, state)
