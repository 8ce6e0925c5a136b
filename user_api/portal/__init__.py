"""The portal, `GET /portal`: a live page of the running system (see routes.py)."""

from user_api.portal.routes import router
from user_api.portal.settings import PortalSettings

__all__ = ["PortalSettings", "router"]
