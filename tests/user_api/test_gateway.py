"""POST /rpc/{service}/{method}: off by default; on, only with a token and the allow-list.

In one process (user_service and auth_service on a memory registry), the gateway calling
user_service as it would call any registered service: through reflection and the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.support.http import login
from tests.support.inprocess import InProcessSystem, in_process_system
from user_api.gateway import AllowList

ALLOW = "user_service.GetUser,ghost.*"


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[InProcessSystem]:
    async with in_process_system(tmp_path, gateway_enabled=True, gateway_allow=ALLOW) as system:
        yield system


@pytest.fixture
def api(system: InProcessSystem) -> httpx.AsyncClient:
    return system.http


@pytest.fixture
async def auth(api: httpx.AsyncClient) -> dict[str, str]:
    response = await login(api)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def test_it_is_off_unless_enabled(tmp_path: Path) -> None:
    async with in_process_system(tmp_path, gateway_allow="user_service.*") as system:
        token = (await login(system.http)).json()["token"]
        response = await system.http.post(
            "/rpc/user_service/GetUser",
            json={"id": 10001},
            headers={"Authorization": f"Bearer {token}"},
        )

    assert response.status_code == 404
    assert response.json()["error"]["reason"] == "NOT_FOUND"


async def test_an_allowed_method_is_called_with_json(
    api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await api.post("/rpc/user_service/GetUser", json={"id": 10001}, headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["user"]["name"] == "micro"
    assert response.json()["user"]["id"] == "10001"  # proto3 JSON: int64 as a string


async def test_the_method_may_be_named_with_its_grpc_service(
    api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await api.post(
        "/rpc/user_service/user.v1.UserService.GetUser", content='{"id": 10001}', headers=auth
    )

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic bWljcm86MTIz"}],
)
async def test_a_call_needs_a_valid_bearer_token(
    api: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await api.post("/rpc/user_service/GetUser", json={"id": 10001}, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"]["reason"] in ("UNAUTHENTICATED", "TOKEN_INVALID")


async def test_a_revoked_token_calls_nothing(api: httpx.AsyncClient, auth: dict[str, str]) -> None:
    assert (await api.post("/user/logout", headers=auth)).status_code == 200

    response = await api.post("/rpc/user_service/GetUser", json={"id": 10001}, headers=auth)

    assert response.status_code == 401
    assert response.json()["error"]["reason"] == "TOKEN_REVOKED"


@pytest.mark.parametrize(
    "path",
    ["/rpc/user_service/CreateUser", "/rpc/auth_service/MakeAccessToken", "/rpc/ghosts/Get"],
)
async def test_what_the_allow_list_does_not_name_is_forbidden(
    system: InProcessSystem, auth: dict[str, str], path: str
) -> None:
    response = await system.http.post(path, json={"id": 5, "name": "eve", "password": "x" * 8})

    assert response.status_code == 401  # without a token, not even the list is consulted
    response = await system.http.post(
        path, json={"id": 5, "name": "eve", "password": "x" * 8}, headers=auth
    )

    assert response.status_code == 403
    assert response.json()["error"]["reason"] == "PERMISSION_DENIED"
    assert "user_service.CreateUser" not in system.runtime.breakers.snapshot()


@pytest.mark.parametrize(
    "body", ["{", "[1]", '{"id": "ten"}', '{"id": 1, "extra": true}', '"text"']
)
async def test_json_that_does_not_fit_the_request_is_422(
    api: httpx.AsyncClient, auth: dict[str, str], body: str
) -> None:
    response = await api.post("/rpc/user_service/GetUser", content=body, headers=auth)

    assert response.status_code == 422
    assert response.json()["error"]["reason"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ('{"id": ' + "[" * 5000 + "]" * 5000 + "}", "nested deeper than 32 levels"),
        ('{"id": ' + "9" * 5000 + "}", "a number of 5000 characters"),
    ],
)
async def test_json_beyond_the_kits_bounds_is_422_with_a_plain_reason(
    api: httpx.AsyncClient, auth: dict[str, str], body: str, said: str
) -> None:
    # As every JSON body the kit takes, not Python's recursion or digit limits in the message.
    response = await api.post("/rpc/user_service/GetUser", content=body, headers=auth)

    assert response.status_code == 422
    assert said in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        # The service's own answer: an end user may read only their own record.
        ("/rpc/user_service/GetUser", 403, "PERMISSION_DENIED"),
        ("/rpc/ghost/Anything", 503, "UNAVAILABLE"),  # allowed, but nothing registered
    ],
)
async def test_errors_are_json_with_the_kits_reasons(
    api: httpx.AsyncClient, auth: dict[str, str], path: str, status: int, reason: str
) -> None:
    response = await api.post(path, json={"id": 404}, headers=auth)

    assert response.status_code == status, response.text
    assert response.json()["error"]["reason"] == reason
    assert response.json()["error"]["message"]


async def test_an_unknown_method_of_an_allowed_service_is_404(tmp_path: Path) -> None:
    async with in_process_system(
        tmp_path, gateway_enabled=True, gateway_allow="user_service.*"
    ) as system:
        token = (await login(system.http)).json()["token"]
        response = await system.http.post(
            "/rpc/user_service/Nope", headers={"Authorization": f"Bearer {token}"}
        )

    assert response.status_code == 404
    assert "user.v1.UserService" in response.json()["error"]["message"]


async def test_a_body_over_the_limit_is_refused_unread(
    api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    response = await api.post(
        "/rpc/user_service/GetUser", content=b" " * ((1 << 20) + 1), headers=auth
    )

    assert response.status_code == 413


async def test_calls_show_in_the_breakers_and_the_metrics(
    api: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for _ in range(3):
        await api.post("/rpc/user_service/GetUser", json={"id": 10001}, headers=auth)

    breakers = (await api.get("/debug/breakers")).json()["breakers"]
    metrics = (await api.get("/metrics")).text

    assert breakers["user_service.GetUser"]["state"] == "closed"
    assert 'breaker_calls_total{command="user_service.GetUser",outcome="success"}' in metrics


@pytest.mark.parametrize(
    ("spec", "allowed", "refused"),
    [
        ("", [], [("order", "CreateOrder")]),
        ("order.*", [("order", "CreateOrder"), ("order", "GetOrder")], [("orders", "Get")]),
        (" order.GetOrder , x.Y ", [("order", "GetOrder"), ("x", "Y")], [("order", "Create")]),
    ],
)
def test_the_allow_list(
    spec: str, allowed: list[tuple[str, str]], refused: list[tuple[str, str]]
) -> None:
    allow = AllowList(spec)

    assert all(allow.permits(*call) for call in allowed)
    assert not any(allow.permits(*call) for call in refused)


@pytest.mark.parametrize("spec", ["order", "*", ".Get", "order."])
def test_an_allow_list_entry_that_names_no_method_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="GATEWAY_ALLOW"):
        AllowList(spec)
