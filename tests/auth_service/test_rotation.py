"""Rotating the signing key on running processes: auth_service signs with its new key and
still accepts tokens of the old one (JWT_ACCEPTED_SECRETS), as user_api's /user/me shows."""

from __future__ import annotations

import httpx
import pytest

from auth_service.logic import TokenLogic
from auth_service.repository import MemoryRevocationStore
from tests.conftest import StartService
from tests.support.http import login, wait_until_ready
from tests.support.ports import free_port
from tests.support.services import TEST_SECRET

pytestmark = pytest.mark.integration

NEW_KEY = "the-key-after-the-rotation-0123456789abcdefg"


async def test_a_token_of_the_old_key_is_served_after_the_rotation(
    start_service: StartService,
) -> None:
    port = free_port()
    start_service("config_service")
    start_service("auth_service", JWT_SECRET=NEW_KEY, JWT_ACCEPTED_SECRETS=TEST_SECRET)
    start_service("user_service")
    start_service("user_api", HTTP_PORT=str(port))
    base_url = f"http://127.0.0.1:{port}"
    await wait_until_ready(base_url)
    # Made as the services made tokens before (their issuer, the old key).
    old = TokenLogic(TEST_SECRET, "pymicro-kit", 600, MemoryRevocationStore())
    unknown = "a-key-nobody-gave-auth-service-0123456789"
    forged_elsewhere = TokenLogic(unknown, "pymicro-kit", 600, MemoryRevocationStore())

    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        fresh = (await login(http)).json()["token"]
        answers = {
            name: (await http.get("/user/me", headers={"Authorization": f"Bearer {token}"}))
            for name, token in (
                ("old", old.make_token(10001, "micro").token),
                ("new", fresh),
                ("unknown", forged_elsewhere.make_token(10001, "micro").token),
            )
        }

    assert {name: answer.status_code for name, answer in answers.items()} == {
        "old": 200,
        "new": 200,
        "unknown": 401,
    }
