"""SharedState on a worker thread, over the kit's memory storage standing in for Redis."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from shared.breaker.circuit import CLOSED, HALF_OPEN, OPEN, Circuit
from shared.breaker.shared_state import SharedState
from shared.breaker.storage import MemoryStorage


@pytest.fixture
def worker() -> Iterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(1)
    yield executor
    executor.shutdown()


async def test_writes_land_in_order_before_the_next_read(worker: ThreadPoolExecutor) -> None:
    shared = SharedState("svc.Method", MemoryStorage(), worker)
    assert await shared.read() is None  # nothing recorded yet
    opened = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    shared.write(OPEN, opened)
    assert await shared.read() == (OPEN, opened)
    shared.write(HALF_OPEN, None)
    shared.write(CLOSED, None)
    assert await shared.read() == (CLOSED, None)


class _FlakyStorage(MemoryStorage):
    """Fails its first `failures` reads and writes, as a Redis that is down, then comes back."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def _fail_while_down(self) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("Redis is down")

    def read(self) -> tuple[str, datetime | None] | None:
        self._fail_while_down()
        return super().read()

    def write(self, state: str, opened_at: datetime | None) -> None:
        self._fail_while_down()
        super().write(state, opened_at)


async def test_a_failing_storage_reads_as_unknown_and_is_tried_again(
    worker: ThreadPoolExecutor, caplog: pytest.LogCaptureFixture
) -> None:
    storage = _FlakyStorage(failures=0)
    storage.write(OPEN, None)  # recorded before the outage
    storage.failures = 2
    shared = SharedState("svc.Method", storage, worker)
    with caplog.at_level(logging.INFO, logger="shared.breaker.shared_state"):
        assert await shared.read() is None  # unknown: not "closed"
        shared.write(CLOSED, None)  # dropped: there is nowhere to write it
        assert await shared.read() == (OPEN, None)
    said = [record.getMessage() for record in caplog.records]
    assert len([line for line in said if "unreachable" in line]) == 1  # once per outage
    assert any("reachable again" in line for line in said)


async def test_a_circuit_open_here_stays_open_while_the_storage_fails(
    worker: ThreadPoolExecutor,
) -> None:
    storage = _FlakyStorage(failures=0)
    circuit = Circuit(
        "svc.Method",
        sleep_s=5,
        on_close=lambda: None,
        shared=SharedState("svc.Method", storage, worker),
    )
    storage.failures = 1_000  # down before the circuit opens: its change is not shared
    circuit.trip(1000.0)
    for _ in range(3):  # the follower's reads, once per sync interval
        await circuit.follow_shared(lambda: 1001.0)
    assert circuit.state == OPEN
    assert not circuit.admit(1001.0)  # no call goes through before the sleep window ends


async def test_after_the_worker_stops_nothing_raises(worker: ThreadPoolExecutor) -> None:
    shared = SharedState("svc.Method", MemoryStorage(), worker)
    worker.shutdown()
    shared.write(OPEN, datetime.now(UTC))
    assert await shared.read() is None


class _SlowStorage(MemoryStorage):
    """Answers a read ("closed") only when the test lets it."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = threading.Event()
        self.answer = threading.Event()

    def read(self) -> tuple[str, datetime | None] | None:
        self.reading.set()
        self.answer.wait(5)
        return CLOSED, None


async def test_a_read_older_than_a_local_change_is_not_applied(
    worker: ThreadPoolExecutor,
) -> None:
    storage = _SlowStorage()
    circuit = Circuit(
        "svc.Method",
        sleep_s=5,
        on_close=lambda: None,
        shared=SharedState("svc.Method", storage, worker),
    )
    following = asyncio.create_task(circuit.follow_shared(lambda: 1000.0))
    await asyncio.to_thread(storage.reading.wait, 5)
    circuit.trip(1000.0)  # while the read of "closed" is under way
    storage.answer.set()
    await following
    assert circuit.state == OPEN
