"""The WebSocket front door, `GET /ws`: calls of registered services and pushed events.

See route.py (authentication), session.py (frames, limits) and pushes.py (events).
"""

from user_api.ws.route import router
from user_api.ws.settings import FrontDoorSettings

__all__ = ["FrontDoorSettings", "router"]
