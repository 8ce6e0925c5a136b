"""`POST /rpc/{service}/{method}`: a JSON call of any registered service, through reflection.

In the manner of `micro api --handler=rpc`, and off unless GATEWAY_ENABLED is true. Then a
call needs a bearer token that /user/me would accept, and a method the allow-list names:

    GATEWAY_ALLOW=order.CreateOrder,order.GetOrder    # or order.* for all of order

The call goes through user_api's client, so it has the breaker `service.Method`, the
request's deadline and the retries of any call; errors are JSON with the kit's reasons.
It carries the user's id, and the service's policy admits it only to methods that list
"gateway" among their callers: the allow-list cannot open what user_api calls for itself.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException

from shared.client import Client
from shared.errors import Reason, ServiceError
from shared.reflection import Catalog, call_json, parse_method
from shared.security.policy import relay_metadata
from user_api.handlers import Logic, Token

__all__ = ["AllowList", "router"]

# Larger bodies are refused before they are read: JSON requests to services are small.
MAX_BODY_BYTES = 1 << 20


class AllowList:
    """`service.Method` and `service.*` entries, comma-separated; empty allows nothing."""

    def __init__(self, spec: str) -> None:
        self._methods: set[tuple[str, str]] = set()
        self._services: set[str] = set()
        for entry in filter(None, (part.strip() for part in spec.split(","))):
            service, dot, method = entry.rpartition(".")
            if not dot or not service or not method:
                raise ValueError(f"GATEWAY_ALLOW: {entry!r} is not service.Method or service.*")
            if method == "*":
                self._services.add(service)
            else:
                self._methods.add((service, method))

    def permits(self, service: str, method: str) -> bool:
        return service in self._services or (service, method) in self._methods

    def require(self, service: str, method: str, door: str) -> None:
        """PERMISSION_DENIED unless the list names `method` (`Method` or `pkg.Service/Method`)
        of `service`; `door` says which front door refuses it."""
        _, name = parse_method(method)
        if not self.permits(service, name):
            raise ServiceError(Reason.PERMISSION_DENIED, f"{service}.{name} is not open to {door}")


def router(client: Client, allow: AllowList) -> APIRouter:
    catalog = Catalog(client)  # one per app: descriptors are fetched once per service
    routes = APIRouter()

    @routes.post("/rpc/{service}/{method}")
    async def rpc(service: str, method: str, request: Request, token: Token, logic: Logic) -> Any:
        user = await logic.me(token)  # valid, not revoked, and its user still exists
        allow.require(service, method, "the gateway")
        body = await _body(request)
        # For the user: the method must also be open to "gateway" (shared/security/policy.py).
        relayed = relay_metadata(user.id)
        return await call_json(client, service, method, body, catalog=catalog, metadata=relayed)

    return routes


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    return bytes(body)
