"""Service identity and least privilege on the real processes (real etcd): every gRPC hop
is mutual TLS with the deployment's CA, and each method answers only the callers it lists."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.registry import EtcdRegistry, ServiceNode
from shared.security.credentials import secure_channel
from shared.security.identity import service_identity
from shared.security.layout import CA_FILE, CERT_FILE, KEY_FILE, identity_directory
from shared.security.pki import ensure_authority, issue
from tests.conftest import StartService
from tests.support import health
from tests.support.eventually import eventually
from tests.support.services import wait_for_nodes
from tests.support.tls import TRUST_DOMAIN, channel_as, service_certificate, tls_root

pytestmark = pytest.mark.integration

SERVICES = ("config_service", "auth_service", "user_service")
NEW_USER = user_pb2.CreateUserRequest(name="mallory", password="a-long-password-1")


async def _nodes(start_service: StartService, registry: EtcdRegistry) -> dict[str, ServiceNode]:
    for module in SERVICES:
        start_service(module, TLS_RELOAD_S="0.2")
    return {name: (await wait_for_nodes(registry, name, 1))[0] for name in SERVICES}


async def _health(channel: grpc.aio.Channel) -> grpc.StatusCode | int:
    async with channel:
        try:
            reply = await health.check(channel, timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return reply.status


async def _create_user(channel: grpc.aio.Channel) -> grpc.StatusCode:
    async with channel:
        try:
            await user_pb2_grpc.UserServiceStub(channel).CreateUser(NEW_USER, timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def test_no_certificate_or_another_ca_fails_the_handshake_and_each_method_lists_its_callers(
    start_service: StartService, registry: EtcdRegistry, tmp_path: Path
) -> None:
    root = tls_root(tmp_path)
    nodes = await _nodes(start_service, registry)
    stranger = service_certificate(tmp_path / "another-ca", "user_api")
    serving = health_pb2.HealthCheckResponse.SERVING

    for name, node in nodes.items():
        plain = grpc.aio.insecure_channel(node.address)
        assert await _health(plain) == grpc.StatusCode.UNAVAILABLE, name
        foreign = secure_channel(node.address, name, stranger)
        assert await _health(foreign) == grpc.StatusCode.UNAVAILABLE, name
        # Health stays open to every identity of the deployment (probes, `micro health`).
        assert await _health(channel_as(root, "auth_service", node.address, name)) == serving

    user_service = nodes["user_service"].address
    as_auth = channel_as(root, "auth_service", user_service, "user_service")
    assert await _create_user(as_auth) == grpc.StatusCode.PERMISSION_DENIED
    as_api = channel_as(root, "user_api", user_service, "user_service")
    assert await _create_user(as_api) == grpc.StatusCode.OK

    logs = (tmp_path / "user_service-2.log").read_text()
    denied = "denied /user.v1.UserService/CreateUser to spiffe://micro.local/service/auth_service"
    assert denied in logs


async def test_a_certificate_rotated_on_disk_is_served_to_new_connections_without_a_restart(
    start_service: StartService, registry: EtcdRegistry, tmp_path: Path
) -> None:
    root = tls_root(tmp_path)
    nodes = await _nodes(start_service, registry)
    address = nodes["user_service"].address
    # The platform rotates user_service onto a new CA (trusting both while it rolls over).
    new_root = tmp_path / "new-ca"
    old_ca = (root / "ca" / CA_FILE).read_bytes()
    new_authority = ensure_authority(new_root, TRUST_DOMAIN)
    cert, key = issue(new_authority, service_identity(TRUST_DOMAIN, "user_service"))
    on_new_ca = service_certificate(new_root, "user_api")  # trusts the new CA only
    assert await _create_user(secure_channel(address, "user_service", on_new_ca)) != (
        grpc.StatusCode.OK
    )
    # New files first, then renamed into place (as a cert-manager volume's update is atomic).
    directory = identity_directory(root, service_identity(TRUST_DOMAIN, "user_service"))
    for name, content in (
        (CA_FILE, old_ca + new_authority.cert_pem),
        (KEY_FILE, key),
        (CERT_FILE, cert),
    ):
        draft = directory / f".{name}.new"
        draft.write_bytes(content)
        os.chmod(draft, 0o600)
        os.replace(draft, directory / name)

    async def create() -> grpc.StatusCode:
        return await _create_user(secure_channel(address, "user_service", on_new_ca))

    assert await eventually(create, lambda code: code == grpc.StatusCode.OK, timeout=10)
    # The same process: it was never restarted.
    [node] = await wait_for_nodes(registry, "user_service", 1)
    assert node.id == nodes["user_service"].id
