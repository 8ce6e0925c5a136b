"""The signing key: JWT_SECRET wins; else one key file, created once and shared."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from auth_service.keys import signing_key
from auth_service.settings import AuthServiceSettings


def test_jwt_secret_wins_over_the_key_file(tmp_path: Path) -> None:
    assert signing_key("s" * 40, tmp_path / "key") == "s" * 40
    assert not (tmp_path / "key").exists()


async def test_replicas_starting_together_end_up_with_one_shared_key(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "jwt_secret"

    keys = await asyncio.gather(*(asyncio.to_thread(signing_key, None, key_file) for _ in range(8)))

    assert len(set(keys)) == 1
    assert len(keys[0]) >= 32
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert signing_key(None, key_file) == keys[0]  # a restart keeps it


def test_without_a_secret_or_a_file_it_refuses_to_start() -> None:
    with pytest.raises(SystemExit, match="JWT_SECRET"):
        signing_key(None, None)


def test_a_key_file_that_is_too_short_is_refused(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("short")

    with pytest.raises(SystemExit, match="fewer than 32"):
        signing_key(None, tmp_path / "key")


def test_accepted_keys_are_a_comma_separated_list_of_long_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = "a" * 32, "b" * 40
    monkeypatch.setenv("JWT_ACCEPTED_SECRETS", f"{first}, {second}")
    assert AuthServiceSettings(use_config_service=False).accepted_keys() == [first, second]

    monkeypatch.setenv("JWT_ACCEPTED_SECRETS", f"{first},short")
    with pytest.raises(ValidationError, match="each key must be at least 32 characters"):
        AuthServiceSettings(use_config_service=False)

    monkeypatch.setenv("JWT_ACCEPTED_SECRETS", "")
    assert AuthServiceSettings(use_config_service=False).accepted_keys() == []
