from __future__ import annotations

from user_api.portal.settings import PortalSettings
from user_api.ws.settings import FrontDoorSettings


class UserApiSettings(FrontDoorSettings, PortalSettings):
    service_name: str = "user_api"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Every request's time budget; what is left travels down as the gRPC deadline.
    request_budget_s: float = 3.0
    dependencies: str = "user_service,auth_service"
    # Expose GET /debug/breakers (state and settings of every circuit).
    debug_endpoints: bool = True
    # POST /rpc/{service}/{method} (user_api/gateway.py): off unless enabled, and then only
    # for the comma-separated `service.Method` / `service.*` entries of the allow-list.
    gateway_enabled: bool = False
    gateway_allow: str = ""
