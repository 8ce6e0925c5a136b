"""Per-method policy from the proto options, on real grpc.aio servers with real certificates."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from shared.errors import ServiceError
from shared.proto.auth.v1 import auth_pb2
from shared.proto.config.v1 import config_pb2
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.security.credentials import secure_channel, server_credentials
from shared.security.identity import operator_identity, service_identity
from shared.security.pki import ensure_identity
from shared.security.policy import Policy, declared_callers
from shared.security.reload import ReloadingCertificate
from shared.server import ChainInterceptor
from shared.tracing import Tracing
from tests.shared.security.support import WHO_AM, ask, who_handler
from tests.support.health import check

pytestmark = pytest.mark.integration

DOMAIN = "micro.local"
USER_SERVICE = user_pb2.DESCRIPTOR.services_by_name["UserService"]


class Users(user_pb2_grpc.UserServiceServicer):
    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: Any
    ) -> user_pb2.CreateUserResponse:
        return user_pb2.CreateUserResponse(user=user_pb2.User(id=10002, name=request.name))

    async def GetUser(self, request: user_pb2.GetUserRequest, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not served in these tests")

    async def VerifyCredentials(
        self, request: user_pb2.VerifyCredentialsRequest, context: Any
    ) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not served in these tests")


def certificate(root: Path, name: str, *, operator: bool = False) -> ReloadingCertificate:
    identity = operator_identity(DOMAIN, name) if operator else service_identity(DOMAIN, name)
    return ReloadingCertificate(ensure_identity(root, identity))


@pytest.fixture
async def user_service(tmp_path: Path) -> AsyncIterator[str]:
    policy = Policy.from_services([USER_SERVICE], trust_domain=DOMAIN)
    server = grpc.aio.server(
        interceptors=[ChainInterceptor(Tracing.disabled(), (), policy)],
    )
    user_pb2_grpc.add_UserServiceServicer_to_server(Users(), server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    server.add_generic_rpc_handlers((who_handler(),))  # declares nobody
    port = server.add_secure_port(
        "127.0.0.1:0", server_credentials(certificate(tmp_path, "user_service"))
    )
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def create_user(address: str, caller: ReloadingCertificate) -> user_pb2.CreateUserResponse:
    async with secure_channel(address, "user_service", caller) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        return await stub.CreateUser(user_pb2.CreateUserRequest(name="mallory", password="x"))


def test_the_protos_declare_who_may_call() -> None:
    auth = declared_callers(auth_pb2.DESCRIPTOR.services_by_name["AuthService"])
    assert auth["/auth.v1.AuthService/MakeAccessToken"] == {"user_api"}
    users = declared_callers(USER_SERVICE)
    assert users["/user.v1.UserService/CreateUser"] == {"user_api", "operator"}
    assert users["/user.v1.UserService/VerifyCredentials"] == {"user_api"}
    # End users may read (themselves) through the gateway; no one may mint through it.
    assert "gateway" in users["/user.v1.UserService/GetUser"]
    assert "gateway" not in auth["/auth.v1.AuthService/MakeAccessToken"]
    config = declared_callers(config_pb2.DESCRIPTOR.services_by_name["ConfigService"])
    assert config["/config.v1.ConfigService/GetConfig"] == {"*", "operator"}


async def test_create_user_is_denied_to_auth_service(
    user_service: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(grpc.aio.AioRpcError) as denied:
        await create_user(user_service, certificate(tmp_path, "auth_service"))
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert ServiceError.from_rpc_error(denied.value).reason == "PERMISSION_DENIED"
    assert "spiffe://micro.local/service/auth_service" in caplog.text


async def test_create_user_is_allowed_to_user_api(user_service: str, tmp_path: Path) -> None:
    reply = await create_user(user_service, certificate(tmp_path, "user_api"))
    assert reply.user.name == "mallory"


async def test_an_operator_may_create_a_user(user_service: str, tmp_path: Path) -> None:
    reply = await create_user(user_service, certificate(tmp_path, "alice", operator=True))
    assert reply.user.name == "mallory"


async def test_an_operator_is_not_a_service(user_service: str, tmp_path: Path) -> None:
    # Only user_api checks passwords: to anyone else the method would be a guessing oracle.
    caller = certificate(tmp_path, "alice", operator=True)
    async with secure_channel(user_service, "user_service", caller) as channel:
        stub = user_pb2_grpc.UserServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.VerifyCredentials(
                user_pb2.VerifyCredentialsRequest(user_name="micro", password="123")
            )
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_a_method_that_declares_nobody_is_denied(user_service: str, tmp_path: Path) -> None:
    channel = secure_channel(user_service, "user_service", certificate(tmp_path, "user_api"))
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await ask(channel, WHO_AM)
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_health_is_open_to_every_identity(user_service: str, tmp_path: Path) -> None:
    for caller in (
        certificate(tmp_path, "auth_service"),
        certificate(tmp_path, "bob", operator=True),
    ):
        async with secure_channel(user_service, "user_service", caller) as channel:
            reply = await check(channel)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_not_enforced_lets_through_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    policy = Policy({}, trust_domain=DOMAIN, enforce=False)
    with caplog.at_level(logging.WARNING):
        policy.check("/x.v1.X/Y", service_identity(DOMAIN, "auth_service"))
    assert "would deny /x.v1.X/Y to spiffe://micro.local/service/auth_service" in caplog.text


def test_a_call_relayed_for_an_end_user_needs_the_gateway_entry_too() -> None:
    policy = Policy(
        {
            "/x.v1.X/MintToken": frozenset({"user_api"}),
            "/x.v1.X/ReadOwn": frozenset({"user_api", "gateway"}),
        },
        trust_domain=DOMAIN,
    )
    front, other = service_identity(DOMAIN, "user_api"), service_identity(DOMAIN, "auth_service")

    policy.check("/x.v1.X/MintToken", front)  # user_api, for itself
    policy.check("/x.v1.X/ReadOwn", front, relayed=True)
    with pytest.raises(ServiceError, match="not open to end users through"):
        policy.check("/x.v1.X/MintToken", front, relayed=True)
    with pytest.raises(ServiceError):  # "gateway" opens a method to the listed fronts only
        policy.check("/x.v1.X/ReadOwn", other, relayed=True)
    policy.check("/grpc.health.v1.Health/Check", front, relayed=True)  # open to everyone


def test_without_an_identity_everything_is_denied() -> None:
    policy = Policy({"/x.v1.X/Y": frozenset({"*"})}, trust_domain=DOMAIN)
    with pytest.raises(ServiceError):
        policy.check("/x.v1.X/Y", None)
