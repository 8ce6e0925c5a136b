"""Exponential backoff with jitter, so that replicas do not retry in step."""

from __future__ import annotations

import random
from collections.abc import Iterator


def delays(initial: float, maximum: float) -> Iterator[float]:
    """Endless waits: initial, doubling up to maximum, each scaled by a random 0.5 to 1."""
    delay = initial
    while True:
        yield delay * random.uniform(0.5, 1.0)
        delay = min(delay * 2, maximum)


def delay_for_attempt(attempt: int, initial: float, maximum: float) -> float:
    """The wait before retry number `attempt` (0 = the first retry)."""
    return min(initial * 2.0 ** min(attempt, 32), maximum) * random.uniform(0.5, 1.0)
