"""Settings come from the environment first, then config_service, then the defaults."""

from __future__ import annotations

import pytest

from shared.config import ServiceSettings, load_settings
from user_api.settings import UserApiSettings


def test_the_environment_wins_over_config_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUEST_BUDGET_S", "2.5")

    settings = load_settings(UserApiSettings, {"request_budget_s": 9.0, "http_port": 9090})

    assert settings.request_budget_s == 2.5  # pinned by the operator on this process
    assert settings.http_port == 9090  # from config_service
    assert settings.http_host == "127.0.0.1"  # the default


def test_keys_config_service_has_for_other_purposes_are_ignored() -> None:
    settings = load_settings(ServiceSettings, {"breakers": {"default": {}}, "log_level": "DEBUG"})

    assert settings.log_level == "DEBUG"
    assert not hasattr(settings, "breakers")


def test_an_invalid_value_is_refused_with_the_field_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PORT", "eighty")

    with pytest.raises(ValueError, match="http_port"):
        UserApiSettings()
