"""The order of the client's chain of middleware, written here and nowhere else.

A call runs, outermost first:

    tracing    one CLIENT span per call, its context sent in the metadata
    metrics    grpc_client_handled_total / grpc_client_handling_seconds
    deadline   the call gives up at the caller's deadline or its own timeout
    (yours)    links given to `Client(middleware=...)` or `client.use(...)`, in that order
    retry      picks the node; retryable methods go to another node after UNAVAILABLE,
               OVERLOADED (shed) or a timeout of a node that never answered
    breaker    per attempt: circuit, bulkhead, timeout (the node's gRPC deadline)
    transport  the gRPC call to the node the retry link picked

A link is `Callable[[Handler], Handler]` (kratos' `middleware.Middleware`), a handler
`Callable[[Call], Awaitable[Any]]`. The chain is composed once per route, when the
route is first resolved (and again for every route after `client.use`).
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.client import links
from shared.client.call import ClientMiddleware, Handler
from shared.client.metrics import ClientMetrics
from shared.client.route import Route
from shared.middleware import chain
from shared.selector import Selector
from shared.tracing import Tracing


def compose(
    route: Route,
    transport: Handler,
    *,
    tracing: Tracing,
    metrics: ClientMetrics | None,
    selector: Selector,
    max_retries: int,
    middleware: Sequence[ClientMiddleware] = (),
) -> Handler:
    """The handler a call to `route` runs: the kit's links and the user's around `transport`."""
    return chain(
        [
            links.tracing(tracing, route),
            links.metrics(metrics, route),
            links.deadline,
            *middleware,
            links.retry(selector, route, max_retries),
            links.breaker(route.command),
        ],
        transport,
    )
