"""A circuit's state as the replicas share it, kept off the event loop.

The shared storage (Redis) is synchronous. On the event loop, a black-holed Redis stalled
every call of the process for a socket timeout at each read or write of a state. So each
replica keeps its circuits in memory, and `SharedState` mirrors them through the storage on
one worker thread per `Breakers`: a local change is written behind the call that caused
it, and the other replicas' changes are read once per sync interval. A slow Redis then
delays what the replicas learn of each other, never a call; a failing one leaves each
circuit to its replica until it is back. One thread keeps the writes of a process in the
order they were made, and each read after them.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from datetime import datetime

from shared.breaker.storage import SharedStorage

logger = logging.getLogger(__name__)


class SharedState:
    """One command's state in shared storage."""

    def __init__(self, command: str, storage: SharedStorage, worker: Executor) -> None:
        self._command = command
        self._storage = storage
        self._worker = worker
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
        before; None when nothing is recorded, while the storage fails, or once the worker
        is shut down."""
        try:
            done = self._worker.submit(self._read)
        except RuntimeError:  # shut down
            return None
        return await asyncio.wrap_future(done)

    # What follows runs on the worker thread.

    def _write(self, state: str, opened_at: datetime | None) -> None:
        try:
            self._storage.write(state, opened_at)
        except Exception:  # whatever the storage raises, the circuit stays per replica
            self._failed()  # and the change is not shared: the next one will be
        else:
            self._reached()

    def _read(self) -> tuple[str, datetime | None] | None:
        try:
            found = self._storage.read()
        except Exception:
            self._failed()
            return None
        self._reached()
        return found

    def _failed(self) -> None:
        if not self._unreachable:
            logger.warning(
                "breaker %s: shared state unreachable, keeping it per replica until it is back",
                self._command,
                exc_info=True,
            )
        self._unreachable = True

    def _reached(self) -> None:
        if self._unreachable:
            logger.info("breaker %s: shared state reachable again", self._command)
            self._unreachable = False
