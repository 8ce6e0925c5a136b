from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from shared.proto.user.v1.user_events_pb2 import UserLoggedIn, UserLoginFailed
from shared.security.roles import ServiceRole
from shared.throttle import parse_limit
from user_api.portal.settings import PortalSettings
from user_api.ws.settings import FrontDoorSettings


def _limit(text: str) -> str:
    parse_limit(text)  # ValueError names what is wrong: pydantic reports it on the field
    return text


Limit = Annotated[str, AfterValidator(_limit)]

# Its NATS user (scripts/nats_config.py): it publishes logins; /ws pushes user.logged_in.
ROLE = ServiceRole(publishes=(UserLoggedIn, UserLoginFailed), listens=(UserLoggedIn,))


class UserApiSettings(FrontDoorSettings, PortalSettings):
    service_name: str = "user_api"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Each request's head and body must arrive within this long of its first byte, or the
    # connection is closed (Slowloris; uvicorn itself has no such timeout).
    http_read_timeout_s: float = Field(10.0, gt=0, le=300)
    # The proxy in front (addresses or networks, comma-separated; `*` for any peer): its
    # X-Forwarded-For gives the client address that the login throttle counts and the
    # login events carry. Anyone else's is ignored, or a client could pick its address.
    forwarded_allow_ips: str = "127.0.0.1"
    # Every request's time budget; what is left travels down as the gRPC deadline.
    request_budget_s: float = Field(3.0, gt=0, le=300)
    # Login throttling (user_api/throttling.py explains the keys and these defaults):
    # `limits` notation, e.g. "20/minute", "5 per 15 minutes".
    login_limit_per_address: Limit = "20/minute"
    login_limit_per_account: Limit = "5/15 minutes"
    # Logins in progress at once per address, in this replica (past it: 429, Retry-After 1).
    login_in_flight_per_address: int = Field(4, ge=1)
    # Share the windows with the other user_api replicas (redis://host:port/db); else in memory.
    rate_limit_redis_url: str | None = None
    dependencies: str = "user_service,auth_service"
    # GET /debug/breakers (state and settings of every circuit), and /docs, /redoc and
    # /openapi.json: None means on in development and test, off in production.
    debug_endpoints: bool | None = None
    docs_enabled: bool | None = None
    # Which method of which service failed, how busy it was, where its nodes are: in the
    # message of a 503/504 (and of a /ws error frame). None means in development and test;
    # in production a public caller gets the reason and a plain message (the span keeps all).
    error_details: bool | None = None
    # POST /rpc/{service}/{method} (user_api/gateway.py): off unless enabled, and then only
    # for the comma-separated `service.Method` / `service.*` entries of the allow-list.
    gateway_enabled: bool = False
    gateway_allow: str = ""

    @property
    def debug_on(self) -> bool:
        return self.is_development if self.debug_endpoints is None else self.debug_endpoints

    @property
    def docs_on(self) -> bool:
        return self.is_development if self.docs_enabled is None else self.docs_enabled

    @property
    def error_details_on(self) -> bool:
        return self.is_development if self.error_details is None else self.error_details

    @property
    def metrics_on_http(self) -> bool:
        """GET /metrics on the HTTP app: in development without METRICS_PORT only; else
        metrics have their own port, which the public door does not reach."""
        return self.is_development and not self.metrics_port
