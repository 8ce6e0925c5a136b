"""The one place that wires user_api together."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared import deadline, http_errors
from shared.app import App
from shared.bodylimit import KIB, MIB, BodyLimit
from shared.config import load_settings
from shared.runtime import Runtime
from shared.throttle import Throttle
from shared.tracing import TracingMiddleware
from user_api import gateway, portal, throttling, ws
from user_api import openapi as openapi_doc
from user_api.handlers import router
from user_api.logic import AccountLogic
from user_api.presence import HttpPresence
from user_api.readiness import reachable
from user_api.repository import AUTH_SERVICE, USER_SERVICE, AccountsClient
from user_api.settings import UserApiSettings

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class RequestBudget:
    """Gives every HTTP request a time budget that the kit's client turns into deadlines."""

    def __init__(self, app: ASGIApp, seconds: Callable[[], float]) -> None:
        self._app = app
        self._seconds = seconds

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        with deadline.budget(self._seconds()):
            await self._app(scope, receive, send)


def create_app(runtime: Runtime[UserApiSettings]) -> FastAPI:
    settings = runtime.settings
    # FastAPI's own telemetry is off: the kit's middleware makes the one span per request,
    # metrics are Prometheus' and logs the kit's. (With only tracing off, FastAPI still looks
    # up the global meter and logger providers on every request: 2 % of user_api's CPU.)
    docs: dict[str, Any] = (
        {} if settings.docs_on else dict(docs_url=None, redoc_url=None, openapi_url=None)
    )
    app = FastAPI(
        title="user_api",
        version=settings.service_version,
        telemetry={"tracing": False, "metrics": False, "logs": False},
        **docs,
    )
    throttle = throttling.LoginThrottle(
        Throttle(settings.rate_limit_redis_url, namespace=f"micro:{settings.service_name}"),
        settings.login_limit_per_address,
        settings.login_limit_per_account,
    )
    app.state.logic = AccountLogic(AccountsClient(runtime.client), runtime.broker, throttle)
    app.state.budget_s = settings.request_budget_s

    async def readiness() -> dict[str, bool]:
        return {s: await reachable(runtime.client, s) for s in (USER_SERVICE, AUTH_SERVICE)}

    app.state.readiness = readiness

    def follow_budget(config: dict[str, Any]) -> None:
        # Validated (a positive bound) and below the environment, as at start.
        app.state.budget_s = load_settings(UserApiSettings, config).request_budget_s

    runtime.on_config_change(follow_budget)
    http_errors.install(app)
    throttling.install(app)
    _describe(app)
    # The API's own routes go on the app itself: FastAPI (0.165) walks an included router's
    # routes on every request to see whether they changed, 8 % of user_api's CPU on
    # GET /user/me under load (py-spy). The optional routers below stay included.
    app.router.routes.extend(router.routes)
    if settings.gateway_enabled:  # opt-in: JSON calls of registered services, see gateway.py
        allow = gateway.AllowList(settings.gateway_allow)
        app.include_router(gateway.router(runtime.client, allow))
    if settings.ws_enabled:  # GET /ws, calls obeying the same allow-list: see user_api/ws
        app.include_router(ws.router(runtime, app.state.logic.me, lambda: app.state.budget_s))
    if settings.portal_on:  # GET /portal, a live view of the system: see user_api/portal
        app.include_router(portal.router(runtime))

    if settings.metrics_on_http:

        @app.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    if settings.debug_on:

        @app.get("/debug/breakers")
        async def breakers() -> dict[str, Any]:
            return {"breakers": runtime.breakers.snapshot()}

    # Innermost, so that a 413 is traced; the gateway's calls may carry up to 1 MiB.
    app.add_middleware(BodyLimit, default=MIB, limits={"/user/": 64 * KIB})
    app.add_middleware(RequestBudget, seconds=lambda: app.state.budget_s)
    app.add_middleware(
        TracingMiddleware,
        tracing=runtime.tracing,
        exclude_paths=("/healthz", "/readyz", "/metrics", "/portal/events"),
    )
    return app


def _describe(app: FastAPI) -> None:
    """The generated OpenAPI document, completed by user_api/openapi.py."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_doc.describe(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


async def run(settings: UserApiSettings) -> None:
    async with App.open(settings) as app:
        settings = app.settings
        app.http_server(create_app(app.runtime), host=settings.http_host, port=settings.http_port)
        # Registered once HTTP listens, so that the portal and `micro services` show it.
        app.add(HttpPresence(app.runtime, settings.http_host, settings.http_port))
        url = f"http://{settings.http_host}:{settings.http_port}"
        log.info(
            "user_api on %s; try: curl -s -X POST %s/user/login --data 'userName=micro&pwd=123'",
            url,
            url,
        )
        await app.run()
