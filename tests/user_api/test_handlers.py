"""What a caller of the HTTP API sees, for good and bad input alike: never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.inprocess import InProcessSystem, in_process_system


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[InProcessSystem]:
    async with in_process_system(tmp_path) as system:
        yield system


@pytest.fixture
def api(system: InProcessSystem) -> httpx.AsyncClient:
    return system.http


async def test_login_takes_form_fields(api: httpx.AsyncClient) -> None:
    response = await api.post("/user/login", data={"userName": "micro", "pwd": "123"})

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {"id": 10001, "name": "micro"}
    assert body["token_type"] == "Bearer"
    assert body["token"].count(".") == 2


async def test_login_takes_the_same_fields_as_json(api: httpx.AsyncClient) -> None:
    response = await api.post("/user/login", json={"userName": "micro", "pwd": "123"})

    assert response.status_code == 200
    me = await api.get("/user/me", headers={"Authorization": f"Bearer {response.json()['token']}"})
    assert me.json() == {"id": 10001, "name": "micro"}


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"data": {"userName": "micro"}}, "pwd"),
        ({"data": {"pwd": "123"}}, "userName"),
        ({"data": {"userName": "", "pwd": "123"}}, "userName"),
        ({"json": {"userName": "micro", "pwd": 123}}, "pwd"),
        ({"data": {"userName": "x" * 65, "pwd": "123"}}, "userName"),
    ],
)
async def test_missing_or_malformed_fields_get_422_naming_the_field(
    api: httpx.AsyncClient, request_kwargs: dict[str, object], field: str
) -> None:
    response = await api.post("/user/login", **request_kwargs)  # type: ignore[arg-type]

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["reason"] == "INVALID_ARGUMENT"
    assert [f["field"] for f in error["fields"]] == [field]
    assert field in error["message"]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"'])
async def test_a_body_that_is_not_a_json_object_gets_422(
    api: httpx.AsyncClient, body: bytes
) -> None:
    response = await api.post(
        "/user/login", content=body, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"]["reason"] == "INVALID_ARGUMENT"


async def test_an_unsupported_content_type_gets_415(api: httpx.AsyncClient) -> None:
    response = await api.post("/user/login", content=b"x", headers={"Content-Type": "text/plain"})

    assert response.status_code == 415


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "UNAUTHENTICATED"),
        ({"Authorization": "Basic bWljcm86MTIz"}, "UNAUTHENTICATED"),
        ({"Authorization": "Bearer "}, "UNAUTHENTICATED"),
        ({"Authorization": "Bearer not.a.token"}, "TOKEN_INVALID"),
    ],
)
async def test_me_without_a_valid_token_is_401(
    api: httpx.AsyncClient, headers: dict[str, str], reason: str
) -> None:
    response = await api.get("/user/me", headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["reason"] == reason


async def test_an_unreachable_service_gives_503_with_retry_after(system: InProcessSystem) -> None:
    await system.user_server.stop()

    response = await system.http.post("/user/login", data={"userName": "micro", "pwd": "123"})

    assert response.status_code == 503
    assert response.json()["error"]["reason"] == "UNAVAILABLE"
    assert int(response.headers["Retry-After"]) >= 1


async def test_readyz_says_which_dependency_is_missing(system: InProcessSystem) -> None:
    assert (await system.http.get("/readyz")).status_code == 200

    await system.auth_server.stop()
    response = await system.http.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"user_service": True, "auth_service": False}
    assert (await system.http.get("/healthz")).status_code == 200


async def test_unknown_routes_and_methods_get_json_errors(api: httpx.AsyncClient) -> None:
    missing = await api.get("/nope")
    wrong_method = await api.get("/user/login")

    assert (missing.status_code, missing.json()["error"]["reason"]) == (404, "NOT_FOUND")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["reason"] == "METHOD_NOT_ALLOWED"
