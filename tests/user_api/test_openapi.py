"""The API describes itself: login body (form and JSON), responses with models, bearer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.inprocess import in_process_system


@pytest.fixture
async def doc(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async with in_process_system(tmp_path) as system:
        yield (await system.http.get("/openapi.json")).json()


async def test_the_login_body_is_declared_for_form_and_json(doc: dict[str, Any]) -> None:
    login = doc["paths"]["/user/login"]["post"]
    content = login["requestBody"]["content"]

    assert set(content) == {"application/x-www-form-urlencoded", "application/json"}
    fields = doc["components"]["schemas"]["LoginFields"]
    assert set(fields["required"]) == {"userName", "pwd"}
    for status in ("200", "401", "413", "422", "429", "503", "504"):
        assert status in login["responses"], status
    error = doc["components"]["schemas"]["ErrorDetail"]
    assert "reason" in error["properties"]


async def test_token_routes_declare_the_bearer_scheme(doc: dict[str, Any]) -> None:
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["paths"]["/user/me"]["get"]["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/user/logout"]["post"]["security"] == [{"bearerAuth": []}]
