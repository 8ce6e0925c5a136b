"""`GET /portal` (the page), `/portal/events` (its live part, SSE), `/portal/snapshot` (JSON)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from shared.runtime import Runtime
from user_api.portal.overview import Overview
from user_api.portal.page import fragment, page
from user_api.portal.settings import PortalSettings

# A comment line this often keeps proxies from closing a quiet stream.
_KEEPALIVE_S = 15.0


def router(runtime: Runtime[Any]) -> APIRouter:
    settings: PortalSettings = runtime.settings
    overview = Overview(runtime, settings.portal_refresh_s)
    jaeger = settings.jaeger_ui_url
    routes = APIRouter(include_in_schema=False)

    @routes.get("/portal", response_class=HTMLResponse)
    async def portal() -> str:
        return page(await overview.snapshot(), title=settings.service_name, jaeger_ui_url=jaeger)

    @routes.get("/portal/snapshot")
    async def snapshot() -> dict[str, Any]:
        return (await overview.snapshot()).to_json()

    @routes.get("/portal/events")
    async def events(request: Request) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            last, quiet = "", 0.0
            while not await request.is_disconnected():
                html = fragment(await overview.snapshot(), jaeger_ui_url=jaeger).replace("\n", " ")
                if html != last:
                    last, quiet = html, 0.0
                    yield f"data: {html}\n\n"
                elif quiet >= _KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keepalive\n\n"
                await asyncio.sleep(settings.portal_refresh_s)
                quiet += settings.portal_refresh_s

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)

    return routes
