"""Typed settings from the environment and config_service, with live updates."""

from shared.config.remote import CONFIG_SERVICE, ConfigWatcher, fetch_config
from shared.config.settings import ServiceSettings, load_settings

__all__ = ["CONFIG_SERVICE", "ConfigWatcher", "ServiceSettings", "fetch_config", "load_settings"]
