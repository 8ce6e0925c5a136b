"""JSON calls of a registered service through reflection, over real gRPC in this process.

The node serves the kit's own user and config contracts with fakes; it is registered as
"users" so that the breaker's name (registry name + method) can be told from the package.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool

from shared import reflection
from shared.breaker import Breakers
from shared.client import Client
from shared.errors import Reason, ServiceError
from shared.proto.config.v1 import config_pb2, config_pb2_grpc
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.reflection import Catalog, call_json, parse_method
from shared.selector import Selector
from shared.server import GrpcServer
from shared.testing import InProcess

SERVICE = "users"
Context = grpc.aio.ServicerContext[Any, Any]


class Users(user_pb2_grpc.UserServiceServicer):
    def __init__(self) -> None:
        self.users = {10001: user_pb2.User(id=10001, name="micro", created_at_ms=5)}

    async def GetUser(self, request: user_pb2.GetUserRequest, context: Context) -> Any:
        if request.id not in self.users:
            raise ServiceError(Reason.NOT_FOUND, f"no user {request.id}")
        return user_pb2.GetUserResponse(user=self.users[request.id])

    async def CreateUser(self, request: user_pb2.CreateUserRequest, context: Context) -> Any:
        user = self.users[request.id] = user_pb2.User(id=request.id, name=request.name)
        return user_pb2.CreateUserResponse(user=user)

    async def VerifyCredentials(
        self, request: user_pb2.VerifyCredentialsRequest, context: Context
    ) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not served in these tests")


class Config(config_pb2_grpc.ConfigServiceServicer):
    async def GetConfig(self, request: config_pb2.GetConfigRequest, context: Context) -> Any:
        return config_pb2.ConfigSnapshot(app=request.app, json="{}")

    async def SetConfig(self, request: config_pb2.SetConfigRequest, context: Context) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not served in these tests")

    async def WatchConfig(
        self, request: config_pb2.WatchConfigRequest, context: Context
    ) -> AsyncIterator[config_pb2.ConfigSnapshot]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not served in these tests")
        yield config_pb2.ConfigSnapshot()  # never reached: the yield makes it a stream


def _add_to(server: GrpcServer, _: None) -> None:
    server.add_service(
        user_pb2_grpc.add_UserServiceServicer_to_server,
        Users(),
        user_pb2.DESCRIPTOR.services_by_name["UserService"],
    )
    server.add_service(
        config_pb2_grpc.add_ConfigServiceServicer_to_server,
        Config(),
        config_pb2.DESCRIPTOR.services_by_name["ConfigService"],
    )


@contextlib.asynccontextmanager
async def client_of(in_process: InProcess, *, reflection: bool) -> AsyncIterator[Client]:
    """A client of the node `_add_to` serves, with reflection on or off."""
    await in_process.serve(SERVICE, _add_to, None, reflection=reflection)
    selector = Selector(in_process.registry)
    client = Client(selector, Breakers(), default_timeout_s=5)
    try:
        yield client
    finally:
        await client.stop()
        await selector.stop()


@pytest.fixture
async def client(in_process: InProcess) -> AsyncIterator[Client]:
    async with client_of(in_process, reflection=True) as client:
        yield client


async def test_json_in_json_out_with_the_proto_field_names(client: Client) -> None:
    reply = await call_json(client, SERVICE, "GetUser", '{"id": 10001}')

    # proto3 JSON: int64 as strings, and fields at their default value printed too.
    assert reply == {
        "user": {"id": "10001", "name": "micro", "created_at_ms": "5", "last_login_at_ms": "0"}
    }


@pytest.mark.parametrize(
    "method", ["GetUser", "user.v1.UserService/GetUser", "/user.v1.UserService/GetUser"]
)
async def test_a_method_is_named_alone_or_with_its_service(client: Client, method: str) -> None:
    reply = await call_json(client, SERVICE, method, '{"id": "10001"}')

    assert reply["user"]["name"] == "micro"


async def test_a_write_goes_through_and_an_empty_body_is_an_empty_request(client: Client) -> None:
    created = await call_json(client, SERVICE, "CreateUser", b'{"id": 7, "name": "ann"}')
    empty = await call_json(client, SERVICE, "user.v1.UserService.CreateUser", "")

    assert created["user"]["name"] == "ann"
    assert (await call_json(client, SERVICE, "GetUser", '{"id": 7}')) == created
    assert empty["user"]["id"] == "0"


async def test_calls_run_through_the_breaker_named_by_registry_name_and_method(
    client: Client,
) -> None:
    await call_json(client, SERVICE, "GetUser", '{"id": 10001}')
    with pytest.raises(ServiceError):
        await call_json(client, SERVICE, "GetUser", '{"id": 1}')

    breaker = client.breakers.snapshot()[f"{SERVICE}.GetUser"]

    assert breaker["state"] == "closed"
    assert breaker["error_percent"] == 0.0  # NOT_FOUND is a business outcome


async def test_safety_to_retry_comes_from_the_services_descriptors(client: Client) -> None:
    catalog = Catalog(client)

    get = await catalog.method(SERVICE, "GetUser")
    create = await catalog.method(SERVICE, "CreateUser")

    assert (get.endpoint.path, get.endpoint.method) == ("/user.v1.UserService/GetUser", "GetUser")
    assert (get.endpoint.retryable, create.endpoint.retryable) == (True, False)


async def test_descriptors_are_fetched_once_per_service_even_by_concurrent_first_calls(
    client: Client,
) -> None:
    catalog = Catalog(client)

    await asyncio.gather(
        *(call_json(client, SERVICE, "GetUser", '{"id": 10001}', catalog=catalog) for _ in range(5))
    )
    await call_json(client, SERVICE, "GetConfig", '{"app": "x"}', catalog=catalog)

    assert catalog.fetches == 1


async def test_an_unknown_method_fetches_again_once_the_descriptors_are_old(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog = Catalog(client)
    await catalog.method(SERVICE, "GetUser")
    with pytest.raises(ServiceError):
        await catalog.method(SERVICE, "Nope")
    assert catalog.fetches == 1  # fresh descriptors: a bad name costs no round trip

    monkeypatch.setattr(reflection, "_REFRESH_AFTER_S", 0.0)
    with pytest.raises(ServiceError):
        await catalog.method(SERVICE, "Nope")

    assert catalog.fetches == 2  # the service may have been upgraded since


@pytest.mark.parametrize(
    "body",
    ["{", "[1]", '"text"', '{"id": "x"}', '{"id": 1, "unknown": 2}', '{"id": {"a": 1}}'],
)
async def test_json_that_does_not_fit_the_request_is_invalid_argument(
    client: Client, body: str
) -> None:
    with pytest.raises(ServiceError) as refused:
        await call_json(client, SERVICE, "GetUser", body)

    assert refused.value.reason is Reason.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("service", "method", "reason"),
    [
        (SERVICE, "Nope", Reason.NOT_FOUND),
        (SERVICE, "other.v1.Service/GetUser", Reason.NOT_FOUND),
        (SERVICE, "GetUser/", Reason.INVALID_ARGUMENT),
        (SERVICE, "WatchConfig", Reason.INVALID_ARGUMENT),  # a server stream
        ("nobody", "GetUser", Reason.UNAVAILABLE),
    ],
)
async def test_what_cannot_be_called_says_why(
    client: Client, service: str, method: str, reason: Reason
) -> None:
    with pytest.raises(ServiceError) as refused:
        await call_json(client, service, method, "{}")

    assert refused.value.reason is reason


async def test_the_services_own_errors_come_back_with_their_reason(client: Client) -> None:
    with pytest.raises(ServiceError) as missing:
        await call_json(client, SERVICE, "GetUser", '{"id": 404}')

    assert (missing.value.reason, missing.value.message) == (Reason.NOT_FOUND, "no user 404")


@pytest.fixture
async def without_reflection(in_process: InProcess) -> AsyncIterator[Client]:
    """The node as production serves it: REFLECTION_ENABLED off."""
    async with client_of(in_process, reflection=False) as client:
        yield client


async def test_without_reflection_the_projects_own_contracts_serve(
    without_reflection: Client,
) -> None:
    catalog = Catalog(without_reflection)
    reply = await call_json(
        without_reflection, SERVICE, "GetUser", '{"id": 10001}', catalog=catalog
    )
    assert reply["user"]["name"] == "micro"
    # The descriptors, safety to retry included, are the generated code's.
    get = await catalog.method(SERVICE, "GetUser")
    assert (get.input, get.endpoint.retryable) == (user_pb2.GetUserRequest, True)


async def test_without_reflection_a_contract_not_known_here_says_so(
    without_reflection: Client,
) -> None:
    nothing_known = Catalog(without_reflection, local=descriptor_pool.DescriptorPool)
    with pytest.raises(ServiceError) as refused:
        await nothing_known.method(SERVICE, "GetUser")
    assert refused.value.reason is Reason.UNAVAILABLE
    assert "not among this project's" in refused.value.message


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("GetUser", (None, "GetUser")),
        ("user.v1.UserService/GetUser", ("user.v1.UserService", "GetUser")),
        ("/user.v1.UserService/GetUser", ("user.v1.UserService", "GetUser")),
        ("user.v1.UserService.GetUser", ("user.v1.UserService", "GetUser")),
    ],
)
def test_method_names(text: str, parsed: tuple[str | None, str]) -> None:
    assert parse_method(text) == parsed


@pytest.mark.parametrize("text", ["", "a/b/c", "pkg.Service/", "1x", "Get-User"])
def test_not_method_names(text: str) -> None:
    with pytest.raises(ServiceError) as refused:
        parse_method(text)

    assert refused.value.reason is Reason.INVALID_ARGUMENT
