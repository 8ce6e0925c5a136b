"""The README's settings section names every setting a service reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from auth_service.settings import AuthServiceSettings
from config_service.settings import ConfigServiceSettings
from user_api.settings import UserApiSettings
from user_api.ws.settings import FrontDoorSettings
from user_service.settings import UserServiceSettings

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize(
    "settings",
    [
        AuthServiceSettings,
        ConfigServiceSettings,
        FrontDoorSettings,
        UserApiSettings,
        UserServiceSettings,
    ],
)
def test_every_setting_is_documented(settings: type[BaseSettings]) -> None:
    text = README.read_text()
    prefix = settings.model_config.get("env_prefix", "")
    names = [(prefix + field).upper() for field in settings.model_fields]
    assert [name for name in names if f"`{name}" not in text] == []
