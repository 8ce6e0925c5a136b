"""ws://…/ws through real processes: config, auth and user services, user_api, etcd, NATS.

A real WebSocket client (the `websockets` package) against user_api served by uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypedDict

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from shared.registry import EtcdRegistry
from tests.conftest import StartService
from tests.support.eventually import eventually
from tests.support.http import login, wait_until_ready
from tests.support.nats import NatsServer
from tests.support.ports import free_port
from tests.support.system import start_system

pytestmark = pytest.mark.integration


class WsEnv(TypedDict):
    WS_ENABLED: str
    GATEWAY_ALLOW: str


# The allow-list names a method user_api calls for itself: the token service must refuse it.
WS_ENV: WsEnv = {
    "WS_ENABLED": "true",
    "GATEWAY_ALLOW": "user_service.GetUser,auth_service.MakeAccessToken",
}


@dataclass
class Api:
    http: httpx.AsyncClient
    ws_url: str


@contextlib.asynccontextmanager
async def front(start_service: StartService, **env: str) -> AsyncIterator[Api]:
    """The services, and user_api with /ws on (WS_ENV) and `env`."""
    port = free_port()
    for module in ("config_service", "auth_service", "user_service"):
        start_service(module)
    start_service("user_api", HTTP_PORT=str(port), **env, **WS_ENV)
    await wait_until_ready(f"http://127.0.0.1:{port}")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        yield Api(http, f"ws://127.0.0.1:{port}/ws")


@pytest.fixture
async def api(start_service: StartService) -> AsyncIterator[Api]:
    async with front(start_service) as api:
        yield api


async def token(http: httpx.AsyncClient) -> str:
    response = await login(http)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


async def receive(socket: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        frame: dict[str, Any] = json.loads(await socket.recv())
    return frame


async def closed_with(socket: ClientConnection, timeout: float = 10.0) -> int | None:
    """The code the server closed the socket with (frames before the close are skipped)."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await socket.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic bWljcm86MTIz"])
async def test_a_socket_without_a_valid_token_is_closed_with_4401(
    api: Api, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    async with connect(api.ws_url, additional_headers=headers) as socket:
        if header is None:
            await socket.send(json.dumps({"token": "forged"}))
        assert await closed_with(socket) == 4401


async def test_a_browser_authenticates_with_its_first_frame(api: Api) -> None:
    async with connect(api.ws_url) as socket:
        await socket.send(json.dumps({"token": await token(api.http)}))
        await socket.send(
            json.dumps(
                {"id": "a", "service": "user_service", "method": "GetUser", "body": {"id": 10001}}
            )
        )

        frame = await receive(socket)

    assert frame["id"] == "a"
    assert frame["body"]["user"]["name"] == "micro"


async def test_100_concurrent_calls_on_one_socket_are_answered_by_id(api: Api) -> None:
    headers = {"Authorization": f"Bearer {await token(api.http)}"}
    async with connect(api.ws_url, additional_headers=headers) as socket:
        for n in range(100):
            user_id = 10001 if n % 2 else 99999  # half their own record, half another's
            request = {"id": f"c{n}", "service": "user_service", "method": "GetUser"}
            await socket.send(json.dumps({**request, "body": {"id": user_id}}))
        frames = [await receive(socket) for _ in range(100)]

    by_id = {frame["id"]: frame for frame in frames}
    assert sorted(by_id) == sorted(f"c{n}" for n in range(100))
    for n in range(100):
        if n % 2:
            assert by_id[f"c{n}"]["body"]["user"]["name"] == "micro"
        else:
            assert by_id[f"c{n}"]["error"]["reason"] == "PERMISSION_DENIED"


async def test_calls_are_made_for_the_user_not_as_user_api(api: Api) -> None:
    """user_api may mint tokens for anyone; its users, through /ws, may not."""
    headers = {"Authorization": f"Bearer {await token(api.http)}"}
    mint = {"service": "auth_service", "method": "MakeAccessToken"}
    async with connect(api.ws_url, additional_headers=headers) as socket:
        await socket.send(json.dumps({"id": "m", **mint, "body": {"user_id": 1, "user_name": "x"}}))
        minted = await receive(socket)

    assert minted["id"] == "m"
    assert minted["error"]["reason"] == "PERMISSION_DENIED"
    assert "end users through spiffe://" in minted["error"]["message"]


async def test_what_the_allow_list_does_not_name_and_bad_frames_get_error_frames(
    api: Api,
) -> None:
    headers = {"Authorization": f"Bearer {await token(api.http)}"}
    async with connect(api.ws_url, additional_headers=headers) as socket:
        await socket.send(
            json.dumps({"id": "x", "service": "user_service", "method": "CreateUser"})
        )
        denied = await receive(socket)
        await socket.send("{not json")
        garbled = await receive(socket)
        await socket.send(json.dumps({"id": "y", "subscribe": "everything"}))
        unknown = await receive(socket)
        await socket.send(
            json.dumps(
                {"id": "z", "service": "user_service", "method": "GetUser", "body": {"id": "ten"}}
            )
        )
        unfit = await receive(socket)
        # json's own parser recursed per level: this frame of 10 kB ended the socket.
        await socket.send('{"id": ' + "[" * 5000 + "]" * 5000 + "}")
        deep = await receive(socket)
        await socket.send(json.dumps({"id": "after", "subscribe": "everything"}))
        still_open = await receive(socket)

    assert deep["id"] is None
    assert deep["error"]["reason"] == "INVALID_ARGUMENT"
    assert "nested deeper than" in deep["error"]["message"]
    assert still_open["id"] == "after"
    assert denied["id"] == "x"
    assert denied["error"]["reason"] == "PERMISSION_DENIED"
    assert garbled["id"] is None
    assert garbled["error"]["reason"] == "INVALID_ARGUMENT"
    assert unknown["id"] == "y"
    assert unknown["error"]["reason"] == "INVALID_ARGUMENT"
    assert unfit["id"] == "z"
    assert unfit["error"]["reason"] == "INVALID_ARGUMENT"


@pytest.fixture
async def limited(start_service: StartService) -> AsyncIterator[Api]:
    """user_api with small limits: 1000-byte frames, 8 unread frames, 1 s of idleness."""
    limits = {"WS_MAX_FRAME_BYTES": "1000", "WS_SEND_QUEUE": "8", "WS_IDLE_TIMEOUT_S": "1"}
    async with front(start_service, **limits) as api:
        yield api


@pytest.fixture
async def capped(start_service: StartService) -> AsyncIterator[Api]:
    """user_api allowing 2 sockets per user."""
    async with front(start_service, WS_MAX_SOCKETS_PER_USER="2") as api:
        yield api


async def answers(socket: ClientConnection) -> bool:
    request = {"id": "r", "service": "user_service", "method": "GetUser", "body": {"id": 10001}}
    await socket.send(json.dumps(request))
    return "body" in await receive(socket)


async def test_a_user_holds_at_most_the_sockets_allowed(capped: Api) -> None:
    headers = {"Authorization": f"Bearer {await token(capped.http)}"}
    async with (
        connect(capped.ws_url, additional_headers=headers) as first,
        connect(capped.ws_url, additional_headers=headers) as second,
    ):
        assert await answers(first)
        assert await answers(second)
        async with connect(capped.ws_url, additional_headers=headers) as third:
            assert await closed_with(third) == 4429
        await first.close()
        assert await answers(second)

    async def a_socket_that_answers() -> bool:
        # The server gives the place back once it has seen the close: soon, not at once.
        async with connect(capped.ws_url, additional_headers=headers) as socket:
            with contextlib.suppress(ConnectionClosed):
                return await answers(socket)
        return False

    assert await eventually(a_socket_that_answers, lambda ok: ok, timeout=10)


async def test_an_oversized_frame_closes_the_socket(limited: Api) -> None:
    headers = {"Authorization": f"Bearer {await token(limited.http)}"}
    async with connect(limited.ws_url, additional_headers=headers) as socket:
        await socket.send(json.dumps({"id": "big", "body": "x" * 2000}))
        assert await closed_with(socket) == 1009


async def test_an_idle_socket_is_closed(limited: Api) -> None:
    headers = {"Authorization": f"Bearer {await token(limited.http)}"}
    async with connect(limited.ws_url, additional_headers=headers) as socket:
        assert await closed_with(socket, timeout=5) == 4408


async def test_a_reader_too_slow_for_its_answers_is_disconnected(limited: Api) -> None:
    headers = {"Authorization": f"Bearer {await token(limited.http)}"}
    # The client buffers one frame and then stops reading from the connection.
    async with connect(limited.ws_url, additional_headers=headers, max_queue=1) as socket:
        for _ in range(20_000):  # each bad frame earns an error frame nobody reads
            await socket.send("{}")
        assert await closed_with(socket, timeout=20) == 1008


async def test_an_open_circuit_is_answered_as_an_error_frame(
    start_service: StartService, registry: EtcdRegistry
) -> None:
    """Default breaker settings: 20 calls that time out (1 s) open the circuit. Without
    error details (production's default), the frames say what failed, not where."""
    system = await start_system(start_service, registry, ERROR_DETAILS="false", **WS_ENV)
    try:
        headers = {"Authorization": f"Bearer {await token(system.http)}"}
        ws_url = system.base_url.replace("http", "ws", 1) + "/ws"
        async with connect(ws_url, additional_headers=headers) as socket:
            request = {"service": "user_service", "method": "GetUser", "body": {"id": 10001}}
            await socket.send(json.dumps({"id": "warm", **request}))
            assert "body" in await receive(socket)  # authenticated, and the call path is up
            with system.frozen(system.users[0]):
                for n in range(20):
                    await socket.send(json.dumps({"id": f"f{n}", **request}))
                timed_out = [await receive(socket) for _ in range(20)]
                await socket.send(json.dumps({"id": "open", **request}))
                fast = await receive(socket, timeout=1.0)
    finally:
        await system.close()

    assert {frame["error"]["reason"] for frame in timed_out} == {"TIMEOUT"}
    assert {frame["error"]["message"] for frame in timed_out} == {
        "the service did not answer in time"
    }
    assert fast["id"] == "open"
    assert fast["error"] == {
        "reason": "CIRCUIT_OPEN",
        "message": "the service is unavailable; try again later",
    }


async def test_a_login_elsewhere_is_pushed_to_the_users_socket_on_another_replica(
    start_service: StartService, nats_server: NatsServer
) -> None:
    env = {"NATS_URL": nats_server.url, **WS_ENV}
    for module in ("config_service", "auth_service", "user_service"):
        start_service(module, **env)
    ports = [free_port(), free_port()]
    for port in ports:
        start_service("user_api", HTTP_PORT=str(port), **env)
    for port in ports:
        await wait_until_ready(f"http://127.0.0.1:{port}")
    first, second = (httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", timeout=10) for p in ports)
    async with first, second:
        headers = {"Authorization": f"Bearer {await token(first)}"}
        async with connect(f"ws://127.0.0.1:{ports[0]}/ws", additional_headers=headers) as socket:
            await socket.send(json.dumps({"id": "s", "subscribe": "user.logged_in"}))
            assert await receive(socket) == {"id": "s", "body": {"subscribed": "user.logged_in"}}

            response = await second.post(
                "/user/login",
                data={"userName": "micro", "pwd": "123"},
                headers={"User-Agent": "other"},
            )
            assert response.status_code == 200
            pushed = await receive(socket, timeout=10)

    assert pushed["event"] == "user.logged_in"
    assert pushed["body"]["user_id"] == "10001"
    assert pushed["body"]["user_agent"] == "other"
