"""A circuit's state as the replicas share it, kept off the event loop.

pybreaker's shared storage (Redis) is synchronous. On the event loop, a black-holed Redis
stalled every call of the process for a socket timeout at each read or write of a state.
So each replica keeps its circuits in memory, and `SharedState` mirrors them through the
storage on one worker thread per `Breakers`: a local change is written behind the call
that caused it, and the other replicas' changes are read once per sync interval. A slow
Redis then delays what the replicas learn of each other, never a call. One thread keeps
the writes of a process in the order they were made, and each read after them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime

import pybreaker

logger = logging.getLogger(__name__)


class SharedState:
    """One command's state in shared storage; `create` makes the storage (on the worker)."""

    def __init__(
        self,
        command: str,
        create: Callable[[], pybreaker.CircuitBreakerStorage],
        worker: Executor,
    ) -> None:
        self._command = command
        self._create = create
        self._worker = worker
        self._storage: pybreaker.CircuitBreakerStorage | None = None
        self._unreachable = False

    def write(self, state: str, opened_at: datetime | None) -> None:
        """Queue a change made here for the other replicas; returns at once."""
        try:
            self._worker.submit(self._write, state, opened_at)
        except RuntimeError:  # the worker is shut down: the process is stopping
            logger.info(
                "breaker %s: not shared, as the breakers are closed: %s", self._command, state
            )

    async def read(self) -> tuple[str, datetime | None] | None:
        """The shared state and when it opened (wall clock), read after every write queued
        before; None while the storage cannot be made, or once the worker is shut down."""
        try:
            done = self._worker.submit(self._read)
        except RuntimeError:  # shut down
            return None
        return await asyncio.wrap_future(done)

    # What follows runs on the worker thread.

    def _write(self, state: str, opened_at: datetime | None) -> None:
        storage = self._open()
        if storage is None:
            return
        if opened_at is not None:
            storage.opened_at = opened_at
        storage.state = state

    def _read(self) -> tuple[str, datetime | None] | None:
        storage = self._open()
        if storage is None:
            return None
        state = storage.state
        return state, storage.opened_at if state == pybreaker.STATE_OPEN else None

    def _open(self) -> pybreaker.CircuitBreakerStorage | None:
        if self._storage is None:
            try:
                self._storage = self._create()
            except Exception:  # whatever the storage raises, the circuit stays per replica
                if not self._unreachable:
                    logger.warning(
                        "breaker %s: shared state unreachable, keeping it per replica "
                        "until it is back",
                        self._command,
                        exc_info=True,
                    )
                self._unreachable = True
                return None
            if self._unreachable:
                logger.info("breaker %s: shared state reachable again", self._command)
                self._unreachable = False
        return self._storage
