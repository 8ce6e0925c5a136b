"""The README's flow through real processes: etcd, config, auth, user services and the API."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.registry import EtcdRegistry
from tests.conftest import StartService
from tests.support.etcd import EtcdServer
from tests.support.http import login, wait_until_ready
from tests.support.ports import free_port
from tests.support.services import wait_for_nodes

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(start_service: StartService) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    for module in ("config_service", "auth_service", "user_service"):
        start_service(module)
    start_service("user_api", HTTP_PORT=str(port))
    base_url = f"http://127.0.0.1:{port}"
    await wait_until_ready(base_url)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        yield http


async def test_login_me_logout_as_in_the_readme(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/user/login",
        content="userName=micro&pwd=123",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user"] == {"id": 10001, "name": "micro"}
    headers = {"Authorization": f"Bearer {body['token']}"}

    me = await api.get("/user/me", headers=headers)
    assert (me.status_code, me.json()) == (200, {"id": 10001, "name": "micro"})

    assert (await api.post("/user/logout", headers=headers)).status_code == 200
    after = await api.get("/user/me", headers=headers)
    assert after.status_code == 401
    assert after.json()["error"]["reason"] == "TOKEN_REVOKED"


async def test_unknown_user_and_wrong_password_get_the_same_answer(api: httpx.AsyncClient) -> None:
    unknown = await login(api, "nobody", "123")
    wrong = await login(api, "micro", "wrong")

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


async def test_logins_spread_over_two_user_services_and_survive_one_killed(
    api: httpx.AsyncClient, start_service: StartService, registry: EtcdRegistry
) -> None:
    metrics_port = free_port()
    second = start_service("user_service", METRICS_PORT=str(metrics_port))
    await wait_for_nodes(registry, "user_service", 2)

    for _ in range(10):
        assert (await login(api)).status_code == 200
    async with httpx.AsyncClient() as scraper:
        scraped = (await scraper.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
    served = [
        line
        for line in scraped.splitlines()
        if line.startswith("grpc_server_handled_total")
        and "VerifyCredentials" in line
        and 'grpc_code="OK"' in line
    ]
    assert served, scraped
    assert 1 <= float(served[0].split()[-1]) <= 9, served

    second.signal(signal.SIGKILL)
    statuses = [(await login(api)).status_code for _ in range(10)]
    assert statuses == [200] * 10


async def test_logins_keep_working_from_the_cache_while_etcd_is_down(
    api: httpx.AsyncClient, etcd: EtcdServer
) -> None:
    assert (await login(api)).status_code == 200
    etcd.stop(signal.SIGKILL)

    statuses = [(await login(api)).status_code for _ in range(5)]

    assert statuses == [200] * 5
