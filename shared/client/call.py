"""What one call carries through the client's chain of middleware."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from shared.client.route import Route
from shared.selector import NodeState

Metadata = Sequence[tuple[str, str]]


class Call:
    """One call to a route: set up by `Client.invoke`, filled in by the links on the way in.

    `timeout` is the caller's bound on the whole call (retries included); the deadline link
    turns it and the caller's deadline into `give_up`, an absolute `time.monotonic()` time.
    The retry link sets `node` and `budget` (seconds left) for each attempt, the breaker
    `attempt_timeout`, the gRPC deadline the node is given. A link may replace `metadata`
    (it is a sequence of `(key, value)` pairs, shared with the caller: never mutate it).
    """

    __slots__ = (
        "attempt_timeout",
        "budget",
        "give_up",
        "metadata",
        "node",
        "request",
        "route",
        "timeout",
    )

    def __init__(
        self, route: Route, request: Any, metadata: Metadata | None, timeout: float | None
    ) -> None:
        self.route = route
        self.request = request
        self.metadata = metadata
        self.timeout = timeout
        self.give_up: float | None = None
        self.node: NodeState | None = None
        self.budget: float | None = None
        self.attempt_timeout: float | None = None

    def add_metadata(self, *pairs: tuple[str, str]) -> None:
        """Send `pairs` with the call, after what is there already."""
        self.metadata = (*self.metadata, *pairs) if self.metadata else pairs


# A handler may be a plain function returning the awaitable (a link with nothing to do
# after the call need not add a coroutine of its own).
Handler = Callable[[Call], Awaitable[Any]]
ClientMiddleware = Callable[[Handler], Handler]
