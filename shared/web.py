"""What every HTTP front of the kit has, around a FastAPI app.

    app = web_app(title="order", version=settings.service_version, tracing=runtime.tracing)

gives the app, outermost first:
- one SERVER span per request (`shared.tracing.TracingMiddleware`; health and metrics
  paths get none), continuing the caller's `traceparent`;
- a time budget per request (`budget_s`), which the kit's client turns into the gRPC
  deadlines of the calls the request makes (`shared.deadline`);
- body limits (`shared.bodylimit`): 413 past `body_limit` bytes, or a path prefix's own;
- every error as the kit's JSON error with its reason (`shared.http_errors`), never a
  traceback; with `error_details=False` (production), a callee's failure without which
  method of which service failed, how busy it was or where its nodes are.

FastAPI's native telemetry is off: the span above is the request's one span, metrics
are Prometheus' and logs the kit's. (FastAPI 0.165 otherwise traces natively once a
global tracer provider exists, and looks the global providers up on every request.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fastapi import FastAPI

from shared import deadline, http_errors
from shared.bodylimit import MIB, ASGIApp, BodyLimit, Receive, Scope, Send
from shared.tracing import Tracing, TracingMiddleware

UNTRACED = ("/healthz", "/readyz", "/metrics")
DEFAULT_BUDGET_S = 5.0


class RequestBudget:
    """Gives every HTTP request a time budget that the kit's client turns into deadlines."""

    def __init__(self, app: ASGIApp, seconds: Callable[[], float]) -> None:
        self._app = app
        self._seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        with deadline.budget(self._seconds()):
            await self._app(scope, receive, send)


def web_app(
    *,
    title: str,
    version: str,
    tracing: Tracing,
    docs: bool = True,
    error_details: bool = True,
    budget_s: Callable[[], float] = lambda: DEFAULT_BUDGET_S,
    body_limit: int = MIB,
    body_limits: Mapping[str, int] | None = None,
    untraced: Iterable[str] = UNTRACED,
) -> FastAPI:
    """A FastAPI app with the kit's HTTP middleware and error rendering; add routes to it.

    `budget_s` is read per request, so that a configuration change applies to the next
    one; `docs=False` serves no /docs, /redoc or /openapi.json (production).
    """
    hidden: dict[str, Any] = (
        {} if docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
    )
    app = FastAPI(
        title=title,
        version=version,
        telemetry={"tracing": False, "metrics": False, "logs": False},
        **hidden,
    )
    http_errors.install(app, details=error_details)
    # Added innermost first: a 413 is inside the request's budget and its span.
    app.add_middleware(BodyLimit, default=body_limit, limits=body_limits)
    app.add_middleware(RequestBudget, seconds=budget_s)
    app.add_middleware(TracingMiddleware, tracing=tracing, exclude_paths=tuple(untraced))
    return app
