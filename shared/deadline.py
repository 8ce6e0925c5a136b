"""The caller's time budget, carried through a request in a context variable.

user_api opens a budget per HTTP request; the gRPC server opens one from the incoming
deadline; the client sends what is left as the next gRPC deadline. Times are absolute
`time.monotonic()` values so that a budget means the same thing in every task.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("deadline", default=None)


def remaining() -> float | None:
    """Seconds left of the current budget, or None when there is none."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def expires() -> float | None:
    """The `time.monotonic()` time the current budget ends, or None when there is none."""
    return _deadline.get()


@contextmanager
def budget(seconds: float | None) -> Iterator[None]:
    """Limit the work inside to `seconds` (never extending an outer, shorter budget)."""
    if seconds is None:
        yield
        return
    outer = _deadline.get()
    deadline = time.monotonic() + seconds
    token = _deadline.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _deadline.reset(token)
