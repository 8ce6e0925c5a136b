"""The kit's GrpcServer with mTLS and the policy as a link of its chain, called through
the kit's Client with a certificate: the client checks the server by the service name it
routed to, the server checks the caller against the method's `allowed_callers`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from shared import healthcheck
from shared.breaker import Breakers
from shared.client import Client
from shared.errors import Reason, ServiceError
from shared.proto.config.v1 import config_pb2, config_pb2_grpc
from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.registry import MemoryRegistry, ServiceNode
from shared.security.credentials import secure_channel, server_credentials
from shared.security.policy import Policy
from shared.security.reload import ReloadingCertificate
from shared.security.workload import service_certificate
from shared.selector import Selector
from shared.server import GrpcServer
from tests.shared.security.test_policy import USER_SERVICE, Users
from tests.support import health

pytestmark = pytest.mark.integration

REQUEST = user_pb2.CreateUserRequest(name="ann", password="x")


def certificate(root: Path, name: str) -> ReloadingCertificate:
    return service_certificate(name, trust_domain="micro.local", tls_dir=None, dev_root=root)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[ServiceNode]:
    server = GrpcServer(
        name="user_service",
        version="1",
        credentials=server_credentials(certificate(tmp_path, "user_service")),
        policy=Policy({}, trust_domain="micro.local"),  # filled by add_service
        drain_s=0.1,
    )
    server.add_service(user_pb2_grpc.add_UserServiceServicer_to_server, Users(), USER_SERVICE)
    started = await server.start()
    await server.set_serving(True)
    yield started
    await server.stop()


@pytest.fixture
def registry() -> MemoryRegistry:
    return MemoryRegistry()


async def _client(registry: MemoryRegistry, tls: ReloadingCertificate) -> Client:
    return Client(Selector(registry), Breakers(), default_timeout_s=5, tls=tls)


async def test_the_caller_it_lists_is_served_another_is_denied_with_its_identity_logged(
    node: ServiceNode,
    registry: MemoryRegistry,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await registry.register(node)
    api = await _client(registry, certificate(tmp_path, "user_api"))
    auth = await _client(registry, certificate(tmp_path, "auth_service"))
    try:
        created = await api.call("user_service", "CreateUser", REQUEST)
        with caplog.at_level(logging.WARNING), pytest.raises(ServiceError) as denied:
            await auth.call("user_service", "CreateUser", REQUEST)
    finally:
        await api.stop()
        await auth.stop()

    assert created.user.name == "ann"
    assert denied.value.reason is Reason.PERMISSION_DENIED
    assert "spiffe://micro.local/service/auth_service" in caplog.text


async def test_a_node_registered_under_another_service_s_name_is_not_believed(
    node: ServiceNode, registry: MemoryRegistry, tmp_path: Path
) -> None:
    # user_service's node, registered as auth_service: its certificate names user_service.
    impostor = ServiceNode("auth_service", "auth_service-x", node.address)
    await registry.register(impostor)
    client = await _client(registry, certificate(tmp_path, "user_api"))
    try:
        with pytest.raises(ServiceError) as refused:
            await client.call("auth_service", "CreateUser", REQUEST)
    finally:
        await client.stop()

    assert refused.value.reason is Reason.UNAVAILABLE


async def test_health_needs_a_certificate_and_then_is_open_to_any_identity(
    node: ServiceNode, tmp_path: Path
) -> None:
    async with grpc.aio.insecure_channel(node.address) as plain:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health.check(plain, timeout=2)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE

    client = Client(Selector(MemoryRegistry()), Breakers(), tls=certificate(tmp_path, "any"))
    try:
        reply = await health.check(client.node_channel(node.address, "user_service"), timeout=5)
    finally:
        await client.stop()
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_container_healthcheck_shows_the_service_s_own_certificate(
    node: ServiceNode, tmp_path: Path
) -> None:
    port = node.address.rsplit(":", 1)[1]
    own = {"MTLS": "true", "TLS_DEV_ROOT": str(tmp_path), "SERVICE_NAME": "user_service"}

    with_cert = await asyncio.to_thread(healthcheck.main, ["grpc", "--port", port], own)
    without = await asyncio.to_thread(healthcheck.main, ["grpc", "--port", port], {})

    assert (with_cert, without) == (healthcheck.HEALTHY, healthcheck.UNHEALTHY)


class Configs(config_pb2_grpc.ConfigServiceServicer):
    async def GetConfig(
        self, request: config_pb2.GetConfigRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> config_pb2.ConfigSnapshot:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")

    async def SetConfig(
        self, request: config_pb2.SetConfigRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> config_pb2.ConfigSnapshot:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this test")

    async def WatchConfig(
        self, request: config_pb2.WatchConfigRequest, context: object
    ) -> AsyncIterator[config_pb2.ConfigSnapshot]:
        yield config_pb2.ConfigSnapshot(app=request.app, json="{}", version=1)


async def test_a_server_stream_is_checked_before_its_first_message(tmp_path: Path) -> None:
    server = GrpcServer(
        name="config_service",
        version="1",
        credentials=server_credentials(certificate(tmp_path, "config_service")),
        policy=Policy({}, trust_domain="micro.local"),
        drain_s=0.1,
    )
    descriptor = config_pb2.DESCRIPTOR.services_by_name["ConfigService"]
    server.add_service(config_pb2_grpc.add_ConfigServiceServicer_to_server, Configs(), descriptor)
    node = await server.start()
    # Same CA, another trust domain: not an identity of this deployment.
    stranger = service_certificate(
        "intruder", trust_domain="evil.local", tls_dir=None, dev_root=tmp_path
    )
    request = config_pb2.WatchConfigRequest(app="user_api")
    try:
        async with secure_channel(
            node.address, "config_service", certificate(tmp_path, "user_api")
        ) as ok:
            stream = config_pb2_grpc.ConfigServiceStub(ok).WatchConfig(request, timeout=5)
            first = await stream.read()
        async with secure_channel(node.address, "config_service", stranger) as no:
            stream = config_pb2_grpc.ConfigServiceStub(no).WatchConfig(request, timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await stream.read()
    finally:
        await server.stop()

    assert isinstance(first, config_pb2.ConfigSnapshot)
    assert first.app == "user_api"
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
