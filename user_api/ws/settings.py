"""The WebSocket front door's settings (WS_*), mixed into UserApiSettings."""

from __future__ import annotations

from pydantic import Field

from shared.config import ServiceSettings


class FrontDoorSettings(ServiceSettings):
    # GET /ws (user_api/ws): off unless enabled. Its calls obey the gateway's allow-list
    # (GATEWAY_ALLOW), whether or not the HTTP gateway (GATEWAY_ENABLED) is on too.
    ws_enabled: bool = False
    # Larger frames close the socket (1009): requests to services are small.
    ws_max_frame_bytes: int = 64 * 1024
    # Sockets one user may hold on one replica (tabs, devices); one more is closed (4429).
    ws_max_sockets_per_user: int = Field(8, ge=1)
    # Calls of one socket running at once; more are answered REJECTED at once.
    ws_max_in_flight: int = 100
    # A socket that sends nothing for this long is closed (4408).
    ws_idle_timeout_s: float = 120.0
    # Time for a browser's first frame {"token": "…"} when the upgrade had no bearer token.
    ws_auth_timeout_s: float = 5.0
    # Frames waiting to be sent to one socket; a reader that lets more pile up is too slow
    # and is disconnected (1008) rather than buffered without bound.
    ws_send_queue: int = 256
    # The token is checked again this often (revoked or expired: the socket closes, 4401).
    ws_recheck_s: float = 60.0
