"""Small test helpers: a handler that records events and lets a test await them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from shared.broker.protocol import Event

WAIT_S = 10.0


class Collector:
    """A handler that records each event; `wait_for(n)` returns once it has n."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: Event) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    @property
    def ids(self) -> list[str]:
        return [event.event_id for event in self.events]

    async def wait_for(self, count: int, timeout: float = WAIT_S) -> list[Event]:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.events) >= count)
        return self.events


async def wait_until(predicate: Callable[[], bool], timeout: float = WAIT_S) -> None:
    """Poll a condition that has no event to await (a metric, a connection state)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - nothing to await: a metric, a state
            await asyncio.sleep(0.01)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def total(registry: CollectorRegistry, name: str) -> float:
    """Sum of a metric over all its label values."""
    return sum(s.value for metric in registry.collect() for s in metric.samples if s.name == name)
