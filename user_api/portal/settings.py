"""The portal's settings (PORTAL_*, JAEGER_UI_URL), mixed into UserApiSettings."""

from __future__ import annotations

from shared.config import ServiceSettings


class PortalSettings(ServiceSettings):
    # GET /portal (user_api/portal): None means on in development and test, off in production.
    portal_enabled: bool | None = None
    # How often the page's live view is refreshed, in seconds.
    portal_refresh_s: float = 0.5
    # Jaeger's UI (e.g. http://localhost:16686): the portal links each service's traces.
    jaeger_ui_url: str = ""

    @property
    def portal_on(self) -> bool:
        if self.portal_enabled is not None:
            return self.portal_enabled
        return self.environment != "production"
