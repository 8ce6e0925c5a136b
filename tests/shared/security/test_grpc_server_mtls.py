"""The kit's GrpcServer with mTLS credentials and the policy (it no longer registers itself)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from shared.proto.user.v1 import user_pb2, user_pb2_grpc
from shared.security.credentials import secure_channel, server_credentials
from shared.security.policy import Policy, PolicyInterceptor
from shared.security.reload import ReloadingCertificate
from shared.security.workload import service_certificate
from shared.server import GrpcServer
from tests.shared.security.test_policy import USER_SERVICE, Users
from tests.support.health import check

pytestmark = pytest.mark.integration


async def test_grpc_server_serves_mtls_with_the_policy(tmp_path: Path) -> None:
    def certificate(name: str) -> ReloadingCertificate:
        return service_certificate(
            name, trust_domain="micro.local", tls_dir=None, dev_root=tmp_path
        )

    policy = Policy.from_services([USER_SERVICE], trust_domain="micro.local")
    server = GrpcServer(
        name="user_service",
        version="1",
        credentials=server_credentials(certificate("user_service")),
        interceptors=[PolicyInterceptor(policy)],
    )
    server.add_service(user_pb2_grpc.add_UserServiceServicer_to_server, Users(), USER_SERVICE)
    node = await server.start()
    try:
        request = user_pb2.CreateUserRequest(name="ann", password="x")
        async with secure_channel(node.address, "user_service", certificate("user_api")) as ok:
            assert (await user_pb2_grpc.UserServiceStub(ok).CreateUser(request)).user.name == "ann"
        async with secure_channel(node.address, "user_service", certificate("auth_service")) as no:
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await user_pb2_grpc.UserServiceStub(no).CreateUser(request)
        assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
        async with grpc.aio.insecure_channel(node.address) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await check(plain, timeout=2)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await server.stop()
