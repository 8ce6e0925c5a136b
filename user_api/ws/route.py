"""`GET /ws`: authenticate the upgrade, then hand the socket to a `Session`.

The token is the one /user/login gives: an `Authorization: Bearer` header on the upgrade,
or, for browsers (which cannot set headers on a WebSocket), a first frame
`{"token": "…"}` within WS_AUTH_TIMEOUT_S. It is checked as GET /user/me checks it; a
socket without a valid one is closed with 4401.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from shared import deadline, jsonbody
from shared.client.call import Metadata
from shared.errors import ServiceError
from shared.http_errors import without_details
from shared.reflection import Catalog, call_json
from shared.runtime import Runtime
from shared.security.policy import relay_metadata
from user_api.gateway import AllowList
from user_api.logic import UserView
from user_api.ws.pushes import EventHub
from user_api.ws.quota import SocketQuota
from user_api.ws.session import TOO_MANY_SOCKETS, UNAUTHENTICATED, Limits, Session
from user_api.ws.settings import FrontDoorSettings

if TYPE_CHECKING:  # user_api.settings imports this package (FrontDoorSettings)
    from user_api.settings import UserApiSettings

log = logging.getLogger(__name__)

Me = Callable[[str], Awaitable[UserView]]
# "Try again later": the token could not be checked (auth_service unreachable).
TRY_AGAIN_LATER = 1013


def router(runtime: Runtime[Any], me: Me, budget: Callable[[], float]) -> APIRouter:
    """The /ws route; `me` validates a token, `budget()` is each call's time budget (s)."""
    settings: UserApiSettings = runtime.settings
    hub = EventHub(runtime.broker, settings.service_name)
    call = json_caller(runtime, AllowList(settings.gateway_allow), budget)
    limits = Limits(
        max_frame_bytes=settings.ws_max_frame_bytes,
        max_in_flight=settings.ws_max_in_flight,
        idle_timeout_s=settings.ws_idle_timeout_s,
        send_queue=settings.ws_send_queue,
        recheck_s=settings.ws_recheck_s,
    )
    shown = _as_is if settings.error_details_on else without_details
    quota = SocketQuota(settings.ws_max_sockets_per_user)
    routes = APIRouter()

    @routes.websocket("/ws")
    async def ws(socket: WebSocket) -> None:
        await socket.accept()
        try:
            token = _bearer(socket) or await _first_frame_token(socket, settings)
            if token is None:
                await socket.close(UNAUTHENTICATED, "a bearer token is needed")
                return
            user = await me(token)
        except WebSocketDisconnect:
            return
        except ServiceError as error:
            if socket.application_state is WebSocketState.CONNECTED:
                code = UNAUTHENTICATED if error.http_status == 401 else TRY_AGAIN_LATER
                await socket.close(code, shown(error).message[:120])
            return

        async def check() -> None:
            await me(token)

        async def call_for_user(service: str, method: str, body: dict[str, Any]) -> dict[str, Any]:
            try:
                return await call(service, method, body, relay_metadata(user.id))
            except ServiceError as error:
                raise shown(error) from None

        if not quota.take(user.id):
            await socket.close(TOO_MANY_SOCKETS, f"at most {quota.per_user} sockets per user")
            return
        try:
            session = Session(
                socket, user_id=user.id, call=call_for_user, check=check, hub=hub, limits=limits
            )
            await session.run()
        finally:
            quota.give_back(user.id)

    return routes


def _as_is(error: ServiceError) -> ServiceError:
    return error


RelayedCall = Callable[[str, str, dict[str, Any], Metadata], Awaitable[dict[str, Any]]]


def json_caller(
    runtime: Runtime[Any], allow: AllowList, budget: Callable[[], float]
) -> RelayedCall:
    """A call through the kit's client and reflection, as POST /rpc makes it: relayed for
    a user (`metadata`), so only to methods open to "gateway"."""
    catalog = Catalog(runtime.client)

    async def call(
        service: str, method: str, body: dict[str, Any], metadata: Metadata
    ) -> dict[str, Any]:
        allow.require(service, method, "/ws")
        with deadline.budget(budget()):
            return await call_json(
                runtime.client,
                service,
                method,
                json.dumps(body),
                catalog=catalog,
                metadata=metadata,
            )

    return call


def _bearer(socket: WebSocket) -> str | None:
    scheme, _, token = socket.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _first_frame_token(socket: WebSocket, settings: FrontDoorSettings) -> str | None:
    try:
        async with asyncio.timeout(settings.ws_auth_timeout_s):
            message = await socket.receive()
    except TimeoutError:
        return None
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    raw = (message.get("text") or "").encode()
    if len(raw) > settings.ws_max_frame_bytes:
        return None
    try:
        frame = jsonbody.loads(raw)
    except jsonbody.JsonBodyError:
        return None
    token = frame.get("token") if isinstance(frame, dict) else None
    return token.strip() if isinstance(token, str) and token.strip() else None
