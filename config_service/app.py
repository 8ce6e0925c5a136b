"""The one place that wires config_service together."""

from __future__ import annotations

from config_service.handlers import ConfigHandlers
from config_service.logic import ConfigLogic
from config_service.repository import ConfigRepository
from config_service.schemas import Schemas
from config_service.settings import ConfigServiceSettings
from shared.proto.config.v1 import config_pb2, config_pb2_grpc
from shared.registry import etcd_client
from shared.retry import until_done
from shared.runtime import Runtime, serve


async def run(settings: ConfigServiceSettings) -> None:
    async with Runtime.open(settings) as runtime, etcd_client(settings.etcd_endpoint) as etcd:
        repository = ConfigRepository(etcd, settings.config_prefix)
        await until_done(lambda: repository.seed(settings.seed_dir), "seeding configuration")
        server = runtime.grpc_server()
        server.add_service(
            config_pb2_grpc.add_ConfigServiceServicer_to_server,
            ConfigHandlers(ConfigLogic(repository, Schemas.load())),
            config_pb2.DESCRIPTOR.services_by_name["ConfigService"],
        )
        await serve(server)
