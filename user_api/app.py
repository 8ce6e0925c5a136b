"""The one place that wires user_api together."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.app import App
from shared.bodylimit import KIB
from shared.config import load_settings
from shared.runtime import Runtime
from shared.throttle import Throttle
from shared.web import UNTRACED, web_app
from user_api import gateway, portal, throttling, ws
from user_api import openapi as openapi_doc
from user_api.handlers import router
from user_api.logic import AccountLogic
from user_api.presence import HttpPresence
from user_api.readiness import reachable
from user_api.repository import AUTH_SERVICE, USER_SERVICE, AccountsClient
from user_api.settings import UserApiSettings

log = logging.getLogger(__name__)


def create_app(runtime: Runtime[UserApiSettings]) -> FastAPI:
    settings = runtime.settings
    app = web_app(
        title="user_api",
        version=settings.service_version,
        tracing=runtime.tracing,
        docs=settings.docs_on,
        error_details=settings.error_details_on,
        budget_s=lambda: app.state.budget_s,  # read per request: config changes apply
        body_limits={"/user/": 64 * KIB},  # the gateway's calls may carry up to 1 MiB
        untraced=(*UNTRACED, "/portal/events"),
    )
    redis_url = settings.rate_limit_redis_url
    throttle = throttling.LoginThrottle(
        Throttle(
            redis_url,
            namespace=f"micro:{settings.service_name}",
            # Redis's breaker among the others: /debug/breakers, the metrics, the config.
            guard=runtime.breakers.command("redis.throttle") if redis_url else None,
        ),
        settings.login_limit_per_address,
        settings.login_limit_per_account,
        settings.login_in_flight_per_address,
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
        app.http_server(
            create_app(app.runtime),
            host=settings.http_host,
            port=settings.http_port,
            read_timeout_s=settings.http_read_timeout_s,
            forwarded_allow_ips=settings.forwarded_allow_ips,
        )
        # Registered once HTTP listens, so that the portal and `micro services` show it.
        app.add(HttpPresence(app.runtime, settings.http_host, settings.http_port))
        url = f"http://{settings.http_host}:{settings.http_port}"
        log.info(
            "user_api on %s; try: curl -s -X POST %s/user/login --data 'userName=micro&pwd=123'",
            url,
            url,
        )
        await app.run()
