"""SharedState on a worker thread, over pybreaker's memory storage standing in for Redis."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pybreaker
import pytest

from shared.breaker.circuit import CLOSED, HALF_OPEN, OPEN, Circuit
from shared.breaker.shared_state import SharedState


@pytest.fixture
def worker() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(1)
    yield executor
    executor.shutdown()


async def test_writes_land_in_order_before_the_next_read(worker: ThreadPoolExecutor) -> None:
    storage = pybreaker.CircuitMemoryStorage(CLOSED)
    shared = SharedState("svc.Method", lambda: storage, worker)
    opened = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    shared.write(OPEN, opened)
    assert await shared.read() == (OPEN, opened)
    shared.write(HALF_OPEN, None)
    shared.write(CLOSED, None)
    assert await shared.read() == (CLOSED, None)


async def test_a_storage_that_cannot_be_made_is_tried_again(
    worker: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    attempts = 0

    def create() -> pybreaker.CircuitBreakerStorage:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise ConnectionError("Redis is down")
        return pybreaker.CircuitMemoryStorage(OPEN)

    shared = SharedState("svc.Method", create, worker)
    with caplog.at_level(logging.INFO, logger="shared.breaker.shared_state"):
        assert await shared.read() is None
        shared.write(OPEN, None)  # dropped: there is nowhere to write it
        assert await shared.read() == (OPEN, None)
    said = [record.getMessage() for record in caplog.records]
    assert len([line for line in said if "unreachable" in line]) == 1  # once per outage
    assert any("reachable again" in line for line in said)


async def test_after_the_worker_stops_nothing_raises(worker: ThreadPoolExecutor) -> None:
    shared = SharedState("svc.Method", lambda: pybreaker.CircuitMemoryStorage(CLOSED), worker)
    worker.shutdown()
    shared.write(OPEN, datetime.now(UTC))
    assert await shared.read() is None


class _SlowStorage(pybreaker.CircuitMemoryStorage):
    """Answers a read only when the test lets it."""

    def __init__(self) -> None:
        super().__init__(CLOSED)
        self.reading = threading.Event()
        self.answer = threading.Event()

    @property
    def state(self) -> str:
        self.reading.set()
        self.answer.wait(5)
        return CLOSED

    @state.setter
    def state(self, state: str) -> None:
        pass


async def test_a_read_older_than_a_local_change_is_not_applied(
    worker: ThreadPoolExecutor,
) -> None:
    storage = _SlowStorage()
    circuit = Circuit(
        "svc.Method",
        sleep_s=5,
        on_close=lambda: None,
        shared=SharedState("svc.Method", lambda: storage, worker),
    )
    following = asyncio.create_task(circuit.follow_shared(lambda: 1000.0))
    await asyncio.to_thread(storage.reading.wait, 5)
    circuit.trip(1000.0)  # while the read of "closed" is under way
    storage.answer.set()
    await following
    assert circuit.state == OPEN
