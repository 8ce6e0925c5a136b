from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from shared.throttle import parse_limit
from user_api.portal.settings import PortalSettings
from user_api.ws.settings import FrontDoorSettings


def _limit(text: str) -> str:
    parse_limit(text)  # ValueError names what is wrong: pydantic reports it on the field
    return text


Limit = Annotated[str, AfterValidator(_limit)]


class UserApiSettings(FrontDoorSettings, PortalSettings):
    service_name: str = "user_api"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Every request's time budget; what is left travels down as the gRPC deadline.
    request_budget_s: float = Field(3.0, gt=0, le=300)
    # Login throttling (user_api/throttling.py explains the keys and these defaults):
    # `limits` notation, e.g. "20/minute", "5 per 15 minutes".
    login_limit_per_address: Limit = "20/minute"
    login_limit_per_account: Limit = "5/15 minutes"
    # Share the windows with the other user_api replicas (redis://host:port/db); else in memory.
    rate_limit_redis_url: str | None = None
    dependencies: str = "user_service,auth_service"
    # Expose GET /debug/breakers (state and settings of every circuit).
    debug_endpoints: bool = True
    # POST /rpc/{service}/{method} (user_api/gateway.py): off unless enabled, and then only
    # for the comma-separated `service.Method` / `service.*` entries of the allow-list.
    gateway_enabled: bool = False
    gateway_allow: str = ""
