"""A lean ASGI middleware: one SERVER span per HTTP request, named after the route template.

Pure ASGI rather than `BaseHTTPMiddleware` (which runs the app in a separate task and
copies bodies through streams). The route is only known once the router has run, so the
span starts as `GET` and is renamed to `GET /user/{id}` when the response is done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanKind, Status, StatusCode

from shared.tracing.propagation import parse_traceparent
from shared.tracing.setup import Tracing
from shared.tracing.spans import ROOT_CONTEXT, record_error, unsampled_parent

if TYPE_CHECKING:  # only for types: a gRPC-only service does not load starlette
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

_log = logging.getLogger(__name__)


class TracingMiddleware:
    """`app.add_middleware(TracingMiddleware, tracing=tracing)`; added last, it runs first.

    `exclude_paths` (exact paths such as `/healthz`, `/metrics`) get no span at all.
    """

    def __init__(
        self, app: ASGIApp, *, tracing: Tracing, exclude_paths: Iterable[str] = ()
    ) -> None:
        self.app = app
        self._tracing = tracing
        self._exclude = frozenset(exclude_paths)
        self._check_native = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._tracing.enabled or scope["path"] in self._exclude:
            await self.app(scope, receive, send)
            return
        if self._check_native:
            self._warn_if_fastapi_traces(scope)
        traceparent = tracestate = None
        for key, value in scope["headers"]:
            if key == b"traceparent":
                traceparent = value.decode("latin-1")
            elif key == b"tracestate":
                tracestate = value.decode("latin-1")
        parent = parse_traceparent(traceparent, tracestate) if traceparent else None
        tracing = self._tracing
        if unsampled_parent(parent, tracing.skip_unsampled):
            await self._run_unrecorded(NonRecordingSpan(parent), scope, receive, send)  # type: ignore[arg-type]
            return
        method: str = scope["method"]
        parent_context = (
            ROOT_CONTEXT
            if parent is None
            else trace.set_span_in_context(NonRecordingSpan(parent), ROOT_CONTEXT)
        )
        span = tracing.tracer.start_span(method, parent_context, SpanKind.SERVER)
        if not span.is_recording():
            await self._run_unrecorded(span, scope, receive, send)
            return
        # Set after the sampling decision, so that dropped requests never build them.
        span.set_attributes(_request_attributes(scope, method))
        await self._run_recorded(span, method, scope, receive, send)

    def _warn_if_fastapi_traces(self, scope: Scope) -> None:
        self._check_native = False
        # FastAPI's own telemetry (on when a global tracer provider is set) leaves its
        # request state here; with a span in it, every request would be traced twice.
        if getattr(scope.get("fastapi.telemetry"), "span", None) is not None:
            _log.warning(
                "FastAPI's native telemetry traces these requests too: build the app with "
                "FastAPI(telemetry={'tracing': False}) or do not set a global tracer provider"
            )

    async def _run_unrecorded(self, span: Span, scope: Scope, receive: Receive, send: Send) -> None:
        # Unsampled: no attributes, no send wrapper; only the context, for the calls below.
        token = context_api.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send)
        finally:
            context_api.detach(token)

    async def _run_recorded(
        self, span: Span, method: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        root_path: str = scope.get("root_path", "")
        status_code = 0

        async def send_with_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        token = context_api.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send_with_status)
        except Exception as exc:
            record_error(span, exc)
            status_code = status_code or 500  # what the server will answer
            raise
        finally:
            context_api.detach(token)
            route = _route_template(scope, root_path)
            if route is not None:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            if status_code:
                span.set_attribute("http.response.status_code", status_code)
                if status_code >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            span.end()


def _request_attributes(scope: Scope, method: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    return attributes


def _route_template(scope: Scope, root_path: str) -> str | None:
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    # Inside a Mount the router extends root_path by the mount's prefix.
    mount_prefix: str = scope.get("root_path", "")[len(root_path) :]
    return mount_prefix + template
