"""GetConfig over mTLS: a service reads its own app's configuration only, an operator any."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aetcd
import grpc
import pytest

from config_service.handlers import ConfigHandlers
from config_service.logic import ConfigLogic
from config_service.repository import EtcdConfigRepository
from shared.proto.config.v1 import config_pb2, config_pb2_grpc
from shared.security.credentials import secure_channel, server_credentials
from shared.security.identity import Identity, operator_identity, service_identity
from shared.security.pki import ensure_identity
from shared.security.policy import Policy
from shared.security.reload import ReloadingCertificate
from shared.server import ChainInterceptor
from shared.tracing import Tracing
from tests.support.etcd import EtcdServer

pytestmark = pytest.mark.integration

DOMAIN = "micro.local"
PREFIX = "/micro/config/"


@pytest.fixture
async def config_service(etcd: EtcdServer, tmp_path: Path) -> AsyncIterator[str]:
    host, port = etcd.endpoint.split(":")
    async with aetcd.Client(host, int(port)) as client:
        for app in ("auth_service", "user_api"):
            await client.put(f"{PREFIX}{app}".encode(), f'{{"app": "{app}"}}'.encode())
        descriptor = config_pb2.DESCRIPTOR.services_by_name["ConfigService"]
        policy = Policy.from_services([descriptor], trust_domain=DOMAIN)
        server = grpc.aio.server(
            interceptors=[ChainInterceptor(Tracing.disabled(), (), policy)],
        )
        config_pb2_grpc.add_ConfigServiceServicer_to_server(
            ConfigHandlers(ConfigLogic(EtcdConfigRepository(client, PREFIX))), server
        )
        me = ensure_identity(tmp_path, service_identity(DOMAIN, "config_service"))
        bound = server.add_secure_port("127.0.0.1:0", server_credentials(ReloadingCertificate(me)))
        await server.start()
        yield f"127.0.0.1:{bound}"
        await server.stop(None)


async def get_config(address: str, root: Path, caller: Identity, app: str) -> str:
    source = ReloadingCertificate(ensure_identity(root, caller))
    async with secure_channel(address, "config_service", source) as channel:
        stub = config_pb2_grpc.ConfigServiceStub(channel)
        return (await stub.GetConfig(config_pb2.GetConfigRequest(app=app))).json


async def test_a_service_reads_its_own_configuration(config_service: str, tmp_path: Path) -> None:
    own = await get_config(
        config_service, tmp_path, service_identity(DOMAIN, "user_api"), "user_api"
    )
    assert '"user_api"' in own


async def test_a_service_cannot_read_another_apps_configuration(
    config_service: str, tmp_path: Path
) -> None:
    caller = service_identity(DOMAIN, "user_api")
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await get_config(config_service, tmp_path, caller, "auth_service")
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_an_operator_reads_any_configuration(config_service: str, tmp_path: Path) -> None:
    caller = operator_identity(DOMAIN, "alice")
    assert '"auth_service"' in await get_config(config_service, tmp_path, caller, "auth_service")
